import { randomUUID } from 'node:crypto';
import type { Org, StatusRow, Workspace } from '../../schema/index.js';
import type { CloudView } from '../cloud/inventory.js';
import type { Config } from '../config.js';
import type { DesiredStateRepository, OwnerRef } from '../db/desired.js';
import type { DesiredSnapshot } from '../db/snapshot.js';
import type { StatusPatch, StatusRepository } from '../db/status.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Clock } from './clock.js';
import { conditionForError } from './conditions.js';
import type {
  ActContext,
  AnyController,
  ControllerName,
  DesiredInput,
  Observation,
  ObserveContext,
  Pins,
} from './controller.js';
import { describeError, errorClassOf, NotLeaderError, TerminalError } from './errors.js';
import type { Finalizers } from './finalizers.js';
import type { Outcome } from './queue.js';

/** What the reconciler decided to do for one owner, from desired + observed state. Pure data (used by `plan`). */
export type Action =
  | { type: 'none' }
  | { type: 'wait'; reason: string; message: string; afterMs?: number }
  | { type: 'create'; token: string }
  | { type: 'adopt' }
  | { type: 'update'; diff: string[]; drift: boolean }
  | { type: 'delete' }
  | { type: 'release' };

export interface PlannedAction {
  action: Action;
  diff: string[];
  externalIds?: Record<string, string>;
  note?: string;
}

export interface OwnerState {
  owner: OwnerRef;
  org: Org;
  workspace: Workspace | undefined;
  /** The org's live workspaces (for org owners). */
  workspaces: Workspace[];
  deleting: boolean;
  generation: number;
  finalizers: string[];
  status: StatusRow | undefined;
  self: Partial<Record<ControllerName, StatusRow>>;
  org_: Partial<Record<ControllerName, StatusRow>>;
  /** Read from a resync's snapshot, not the database: good only for concluding there is nothing to do. */
  fromSnapshot?: boolean;
}

/**
 * Thrown when a reconcile that started from a resync snapshot reaches anything that writes or
 * acts: the reconcile starts over on fresh rows (see {@link Reconciler.reconcile}).
 */
class StaleSnapshot extends Error {}

/** What one reconcile call carries across its passes (snapshot, then fresh). */
interface Run {
  /** The reconcile's child logger, built on first use: most reconciles log nothing. */
  log(): Logger;
  /** Whether this reconcile may spend a deep check, decided once (the budget is taken once). */
  deepCheck(): boolean;
}

export interface ReconcilerDeps {
  config: Config;
  controllers: ReadonlyMap<ControllerName, AnyController>;
  enabled: ReadonlySet<ControllerName>;
  desired: DesiredStateRepository;
  /** Fresh rows of one owner's org (DesiredSnapshot.loadOwner). */
  loadOwner: (owner: OwnerRef) => Promise<DesiredSnapshot>;
  status: StatusRepository;
  finalizers: Finalizers;
  liveView: CloudView;
  /** AMI and image pins: a value while cached, a promise when they must be read. */
  pins: () => Pins | Promise<Pins>;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  assertLeader: () => void;
  /** Wakes another controller for an owner (dependency became ready, finalizer released). */
  wake: (controller: ControllerName, owner: OwnerRef) => void;
  /** Interval to look again at something that changes by itself (instance pending, create in flight). */
  pollIntervalMs: number;
  /** Per-resync allowance of deep checks (e.g. tunnel configurations), shared by all owners. */
  deepCheckBudget?: { take(key: string): boolean };
}

export const finalizerName = (controller: ControllerName) => `molecule.dev/${controller}`;

/**
 * The one reconcile loop every controller runs through (crossplane's managed reconciler,
 * kubebuilder's numbered steps). Controllers only observe, create, update and delete.
 */
export class Reconciler {
  /** Metric series of this controller, looked up once (every reconcile records them). */
  private readonly durationSeconds;
  private readonly totals = new Map<Outcome['result'], { inc(): void }>();

  constructor(
    private readonly controller: AnyController,
    private readonly deps: ReconcilerDeps,
  ) {
    this.deps = fenced(deps);
    this.durationSeconds = deps.metrics.reconcileDuration.labels(controller.name);
  }

  private total(result: Outcome['result']): { inc(): void } {
    let series = this.totals.get(result);
    if (!series) {
      series = this.deps.metrics.reconcileTotal.labels(this.name, result);
      this.totals.set(result, series);
    }
    return series;
  }

  get name(): ControllerName {
    return this.controller.name;
  }

  /**
   * One reconcile of one owner. With a resync `snapshot` of the desired and status rows, an owner
   * that needs nothing costs no database read; anything that would write or act starts the
   * reconcile over on fresh rows first (desired state is never acted on from a snapshot, as
   * cloud state is never acted on from the inventory).
   */
  async reconcile(
    owner: OwnerRef,
    view: CloudView | undefined,
    snapshot?: DesiredSnapshot,
  ): Promise<Outcome> {
    const started = performance.now();
    let child: Logger | undefined;
    let deep: boolean | undefined;
    const budget = this.deps.deepCheckBudget;
    const run: Run = {
      log: () =>
        (child ??= this.deps.logger.child({
          controller: this.name,
          owner: owner.id,
          reconcileId: randomUUID(),
        })),
      deepCheck: () => (deep ??= !budget || budget.take(owner.id)),
    };
    let outcome: Outcome;
    try {
      const firstView = view ?? this.deps.liveView;
      try {
        outcome = await this.reconcileOnce(owner, firstView, run, snapshot);
      } catch (err) {
        if (!(err instanceof StaleSnapshot)) throw err;
        outcome = await this.reconcileOnce(owner, firstView, run, undefined);
      }
    } catch (err) {
      outcome = await this.handleError(owner, err, run.log());
    }
    this.durationSeconds.observe((performance.now() - started) / 1000);
    this.total(outcome.result).inc();
    return outcome;
  }

  /**
   * What this controller would do for an owner right now, from the same loading, observing and
   * decision steps as {@link reconcile}, without changing anything (`molecule-operator plan`).
   */
  async plan(owner: OwnerRef, view: CloudView): Promise<PlannedAction | undefined> {
    const state = await this.load(owner);
    if (!state) return undefined;
    const fin = finalizerName(this.controller.name);
    if (state.deleting && !state.finalizers.includes(fin) && !state.status?.pending) {
      return { action: { type: 'none' }, diff: [], note: 'nothing to delete' };
    }
    const blocker = state.deleting ? this.deletionBlocker(state) : this.creationBlocker(state);
    if (blocker) return { action: { type: 'wait', ...blocker }, diff: [] };
    const desired = this.controller.desired(this.desiredInput(state, await this.deps.pins()));
    const ctx = this.actContext(state);
    const readOnly: ActContext = {
      ...ctx,
      assertLeader: () => {
        throw new Error('plan never acts');
      },
    };
    const obs = await this.controller.observe(desired, this.observeContext(readOnly, view, state));
    return { action: this.decide(state, obs, desired), diff: obs.diff, externalIds: obs.externalIds };
  }

  private async reconcileOnce(
    owner: OwnerRef,
    firstView: CloudView,
    run: Run,
    snapshot: DesiredSnapshot | undefined,
  ): Promise<Outcome> {
    const d = this.deps;
    const c = this.controller;

    // 1: Load the desired owner row, its org and the status rows this controller reads (from
    //    the resync's snapshot without an await when it covers the owner: most reconciles).
    const covered = snapshot ? this.loadFromSnapshot(owner, snapshot) : 'uncovered';
    const state = covered === 'uncovered' ? await this.load(owner) : covered;
    if (!state) return { result: 'success' }; // owner purged or never existed: nothing is ours to do
    const fin = finalizerName(c.name);
    if (state.deleting) this.fresh(state); // the deletion cascade always runs on fresh rows

    // 2: Being deleted and never created anything? Then there is nothing to clean up.
    if (state.deleting && !state.finalizers.includes(fin) && !state.status?.pending) {
      await this.maybePurge(state);
      return { result: 'success' };
    }

    // 3: Wait for what must exist first (creation) or be gone first (deletion).
    const blocker = state.deleting ? this.deletionBlocker(state) : this.creationBlocker(state);
    if (blocker) {
      await this.writeStatus(state, { ready: false, reason: blocker.reason, message: blocker.message });
      return { result: 'success' }; // the dependency wakes us when it changes
    }

    // 4: Compute the desired resource and observe the actual one.
    const cachedPins = d.pins();
    const pins = cachedPins instanceof Promise ? await cachedPins : cachedPins;
    const desired = c.desired(this.desiredInput(state, pins));
    const ctx = this.actContext(state);
    let view = firstView;
    let obs = await c.observe(desired, this.observeContext(ctx, view, state, run));
    let action = this.decide(state, obs, desired);

    // 5: Never act on a snapshot: re-read the rows, then the cloud live, before any mutation
    //    decided from the resync's snapshot or inventory.
    if (isMutation(action)) this.fresh(state);
    if (view.source === 'inventory' && isMutation(action)) {
      view = d.liveView;
      obs = await c.observe(desired, this.observeContext(ctx, view, state, run));
      action = this.decide(state, obs, desired);
    }
    const patch: StatusPatch = {
      externalIds: merged(state.status?.externalIds, obs.externalIds),
      state: merged(state.status?.state, obs.state),
      lastReconciledAt: new Date(d.clock.now()),
      attempts: 0,
      lastError: null,
      nextAttemptAt: null,
    };

    switch (action.type) {
      // 6a: Deleting and the resource still exists: delete it (dependents are already gone).
      case 'delete': {
        d.assertLeader();
        const res = await c.delete(desired, obs, ctx);
        await d.status.audit([this.auditEntry(state, obs, 'deleted', res.details)]);
        run
          .log()
          .info({ op: 'delete', externalIds: obs.externalIds, gone: res.gone }, 'deleting external resource');
        if (!res.gone) {
          await this.writeStatus(state, {
            ...patch,
            ready: false,
            reason: 'Deleting',
            message: 'waiting for the resource to go away',
          });
          return { result: 'requeue', afterMs: d.pollIntervalMs };
        }
        return { result: 'requeue', afterMs: 0 }; // confirm it is gone before releasing
      }
      // 6b: Deleting and confirmed gone: release the finalizer, wake what waited for us, purge if last.
      case 'release': {
        await d.finalizers.remove(owner, fin);
        await this.writeStatus(state, {
          ...patch,
          pending: null,
          ready: false,
          reason: 'Deleted',
          message: 'resource deleted',
        });
        run.log().info({ op: 'release' }, 'released finalizer');
        this.wakeDeletionWaiters(state);
        await this.maybePurge({ ...state, finalizers: state.finalizers.filter((f) => f !== fin) });
        return { result: 'success' };
      }
      // 7: Missing, but a create is in flight and may not be visible yet: wait, do not create again.
      case 'wait':
        await this.writeStatus(state, {
          ...patch,
          ready: false,
          reason: action.reason,
          message: action.message,
        });
        return { result: 'requeue', afterMs: action.afterMs ?? d.pollIntervalMs };
      // 8: Missing: record the token first, then create. A crash after this point is adopted.
      case 'create': {
        // Purged since it was loaded: nothing may be created for it any more.
        if (!state.finalizers.includes(fin) && !(await d.finalizers.add(owner, fin)))
          return { result: 'success' };
        const startedAt = new Date(d.clock.now()).toISOString();
        await d.status.upsert(this.key(state), {
          pending: { token: action.token, startedAt },
          state: { ...patch.state, token: action.token },
          ready: false,
          reason: 'Creating',
          message: 'creating the resource',
          observedGeneration: state.status?.observedGeneration ?? 0,
        });
        d.assertLeader();
        // The create grace runs from the end of the attempt, not its start: the call may have
        // waited long in the rate limiter and retries, and a lost response may have created the
        // resource at any moment until it failed. Until then, not seeing it proves nothing.
        const attempted = () => ({ token: action.token, startedAt: new Date(d.clock.now()).toISOString() });
        let res: Awaited<ReturnType<typeof c.create>>;
        try {
          res = await c.create(desired, action.token, ctx);
        } catch (err) {
          if (errorClassOf(err) === 'Transient' && !(err instanceof NotLeaderError))
            await d.status.upsert(this.key(state), { pending: attempted() }).catch(() => {});
          throw err;
        }
        await d.status.audit([
          {
            ...this.auditEntry(state, obs, res.adopted ? 'adopted' : 'created', res.details),
            externalId: firstId(res.externalIds) ?? action.token,
          },
        ]);
        run
          .log()
          .info(
            { op: 'create', externalIds: res.externalIds, adopted: !!res.adopted },
            'created external resource',
          );
        const created = res.externalIds ?? {};
        await d.status.upsert(this.key(state), {
          externalIds: { ...patch.externalIds, ...created },
          state: { ...patch.state, token: action.token, ...(res.state ?? {}), createdIds: created },
          lastReconciledAt: patch.lastReconciledAt,
          // Keep the marker until the created resource is observed; with no id to wait for, observe afresh.
          pending: Object.keys(created).length === 0 ? null : attempted(),
        });
        return { result: 'requeue', afterMs: 0 }; // observe what was created
      }
      // 9: It exists after a create we could not confirm: take it over.
      case 'adopt':
        break;
      case 'update':
      case 'none':
        break;
    }

    if (state.status?.pending) {
      this.fresh(state);
      const created = (state.status.state as { createdIds?: Record<string, string> }).createdIds ?? {};
      const known = Object.values(created);
      const adopted = !Object.values(obs.externalIds).some((id) => known.includes(id));
      if (adopted) {
        await d.status.audit([this.auditEntry(state, obs, 'adopted', { token: state.status.pending.token })]);
        run.log().info({ op: 'adopt', externalIds: obs.externalIds }, 'adopted external resource');
      }
      patch.pending = null;
    } else if (!state.status?.externalIds || Object.keys(state.status.externalIds).length === 0) {
      if (Object.keys(obs.externalIds).length > 0 && state.status?.reason !== 'Creating') {
        this.fresh(state);
        // Exists but we never recorded it (restored database, row re-created): adopt.
        await d.status.audit([this.auditEntry(state, obs, 'adopted', { reason: 'found by tags or name' })]);
      }
    }
    if (!state.finalizers.includes(fin)) {
      this.fresh(state);
      await d.finalizers.add(owner, fin);
    }

    // 10: Exists but differs: update. Drift (the spec did not change) is counted.
    if (action.type === 'update') {
      d.assertLeader();
      const res = await c.update(desired, obs, ctx);
      if (action.drift) d.metrics.driftCorrections.labels(c.name).inc();
      await d.status.audit([
        this.auditEntry(state, obs, action.drift ? 'drift_corrected' : 'updated', {
          diff: action.diff,
          ...res.details,
        }),
      ]);
      run.log().info({ op: 'update', diff: action.diff, drift: action.drift }, 'updated external resource');
      await this.writeStatus(state, {
        ...patch,
        externalIds: { ...patch.externalIds, ...(res.externalIds ?? {}) },
        state: { ...patch.state, ...(res.state ?? {}) },
        ready: false,
        reason: action.drift ? 'CorrectingDrift' : 'Updating',
        message: action.diff.join('; ').slice(0, 500),
      });
      return { result: 'requeue', afterMs: Math.min(d.pollIntervalMs, 250) };
    }

    // 11: Changing state by itself (instance pending/stopping): not ready, look again soon.
    if (obs.progressing) {
      await this.writeStatus(state, {
        ...patch,
        ready: false,
        reason: 'Progressing',
        message: obs.progressing,
      });
      return { result: 'requeue', afterMs: d.pollIntervalMs };
    }

    // 12: Up to date: Ready at this generation. Wake what waited for us.
    //     (Set on the patch rather than spread into a new object: nearly every reconcile of a
    //     steady fleet ends here, and a spread followed by more members is slow in V8.)
    const wasReady = state.status?.ready === true;
    patch.ready = true;
    patch.reason = obs.readyCondition?.reason ?? 'Available';
    patch.message = obs.readyCondition?.message ?? 'resource is up to date';
    patch.observedGeneration = state.generation;
    if (!state.status || statusChanged(state.status, patch)) await this.writeStatus(state, patch);
    if (!wasReady) this.wakeDependents(state);
    return { result: 'success' };
  }

  /** The pure decision at the heart of the loop. */
  decide(state: OwnerState, obs: Observation, desired: unknown): Action {
    const pending = state.status?.pending;
    if (!obs.exists && pending) {
      // Created moments ago and not visible yet (eventual consistency): its absence proves
      // nothing, neither that it must be created again nor that a deletion is done.
      const age = this.deps.clock.now() - Date.parse(pending.startedAt);
      const grace = this.deps.config.CREATE_GRACE;
      if (age < grace) {
        return {
          type: 'wait',
          reason: state.deleting ? 'Deleting' : 'Creating',
          message: state.deleting
            ? 'created moments ago, waiting for it to become visible to delete it'
            : 'created, waiting for it to become visible',
          afterMs: Math.min(this.deps.pollIntervalMs, grace - age),
        };
      }
    }
    if (state.deleting) return obs.exists ? { type: 'delete' } : { type: 'release' };
    if (!obs.exists) {
      const previous = (state.status?.state as { token?: string } | undefined)?.token ?? pending?.token;
      return { type: 'create', token: this.controller.createToken(desired, obs, previous) };
    }
    if (!obs.upToDate) {
      const drift =
        state.status?.ready === true &&
        (state.status?.observedGeneration ?? 0) >= state.generation &&
        !state.status.pending;
      return { type: 'update', diff: obs.diff, drift };
    }
    return state.status?.pending ? { type: 'adopt' } : { type: 'none' };
  }

  /**
   * Loads everything one reconcile reads from the database (or from a resync's snapshot, when it
   * covers the owner). Undefined when the owner is gone.
   */
  async load(owner: OwnerRef, snapshot?: DesiredSnapshot): Promise<OwnerState | undefined> {
    if (snapshot) {
      const state = this.loadFromSnapshot(owner, snapshot);
      if (state !== 'uncovered') return state;
    }
    // Fresh rows: the owner's org, its live workspaces and their status rows, in one round trip.
    const state = this.loadFromSnapshot(owner, await this.deps.loadOwner(owner));
    if (state === 'uncovered') return undefined; // no such owner (or a purged workspace)
    if (state) state.fromSnapshot = false;
    return state;
  }

  private loadFromSnapshot(owner: OwnerRef, snap: DesiredSnapshot): OwnerState | undefined | 'uncovered' {
    let workspace: Workspace | undefined;
    if (owner.kind === 'workspace') {
      workspace = snap.workspace(owner.id);
      if (!workspace) return 'uncovered';
    } else if (!snap.covers(owner.id)) return 'uncovered';
    const org = snap.org(workspace ? workspace.orgId : owner.id);
    if (!org || org.purgedAt || workspace?.purgedAt) return undefined;
    const self: OwnerState['self'] = {};
    const org_: OwnerState['org_'] = {};
    const controllers = this.deps.controllers;
    for (const r of snap.statusOf(owner.id))
      if (controllers.has(r.controller as ControllerName)) self[r.controller as ControllerName] = r;
    for (const r of snap.statusOf(org.id))
      if (controllers.has(r.controller as ControllerName)) org_[r.controller as ControllerName] = r;
    const row = workspace ?? org;
    return {
      owner,
      org,
      workspace,
      workspaces: owner.kind === 'org' ? snap.workspacesOf(org.id) : [],
      deleting: !!(row.deletionRequestedAt || org.deletionRequestedAt),
      generation: row.generation,
      finalizers: row.finalizers,
      status: self[this.name],
      self,
      org_,
      fromSnapshot: true,
    };
  }

  /** Refuses to go on from a snapshot: the caller starts the reconcile over on fresh rows. */
  private fresh(state: OwnerState): void {
    if (state.fromSnapshot) throw new StaleSnapshot();
  }

  desiredInput(state: OwnerState, pins: Pins): DesiredInput {
    return {
      config: this.deps.config,
      owner: state.owner,
      org: state.org,
      workspace: state.workspace,
      self: state.self,
      org_: state.org_,
      pins,
      enabled: this.deps.enabled,
    };
  }

  private creationBlocker(state: OwnerState): { reason: string; message: string } | undefined {
    for (const dep of this.controller.dependsOn) {
      if (!this.deps.enabled.has(dep.controller)) continue; // disabled: proceed without it, the controller says so
      const row = dep.scope === 'self' ? state.self[dep.controller] : state.org_[dep.controller];
      if (!row?.ready) {
        return {
          reason: `WaitingFor${dep.label}`,
          message: `waiting for the ${dep.scope === 'org' ? "org's " : ''}${dep.controller} to be ready`,
        };
      }
    }
    return undefined;
  }

  private deletionBlocker(state: OwnerState): { reason: string; message: string } | undefined {
    for (const dep of this.controller.deleteAfter) {
      const fin = finalizerName(dep.controller);
      const holders =
        dep.scope === 'self'
          ? state.finalizers.includes(fin)
            ? [state.owner.id]
            : []
          : state.owner.kind === 'org'
            ? state.workspaces.filter((w) => w.finalizers.includes(fin)).map((w) => w.id)
            : [];
      if (holders.length > 0) {
        return {
          reason: `WaitingFor${dep.label}Deletion`,
          message: `waiting for ${holders.length} ${dep.controller} resource(s) to be deleted first`,
        };
      }
    }
    return undefined;
  }

  private wakeDependents(state: OwnerState): void {
    for (const other of this.deps.controllers.values()) {
      for (const dep of other.dependsOn) {
        if (dep.controller !== this.name) continue;
        if (dep.scope === 'self' && other.owners.includes(state.owner.kind))
          this.deps.wake(other.name, state.owner);
        if (dep.scope === 'org' && state.owner.kind === 'org') {
          if (other.owners.includes('org')) this.deps.wake(other.name, state.owner);
          if (other.owners.includes('workspace')) {
            for (const w of state.workspaces) this.deps.wake(other.name, { kind: 'workspace', id: w.id });
          }
        }
      }
    }
  }

  private wakeDeletionWaiters(state: OwnerState): void {
    for (const other of this.deps.controllers.values()) {
      for (const dep of other.deleteAfter) {
        if (dep.controller !== this.name) continue;
        if (dep.scope === 'self' && other.owners.includes(state.owner.kind))
          this.deps.wake(other.name, state.owner);
        if (dep.scope === 'workspaces' && state.owner.kind === 'workspace' && other.owners.includes('org')) {
          this.deps.wake(other.name, { kind: 'org', id: state.org.id });
        }
      }
    }
  }

  /** Marks the owner purged once every finalizer is released (an org also waits for its workspaces). */
  private async maybePurge(state: OwnerState): Promise<void> {
    if (!state.deleting || state.finalizers.length > 0) return;
    const d = this.deps;
    if (state.owner.kind === 'workspace') {
      if (!state.workspace?.deletionRequestedAt && !state.org.deletionRequestedAt) return;
      // Decided from rows read a moment ago: purged only if no finalizer holds it now.
      if (!(await d.desired.purgeIfReleased(state.owner))) return;
      // The org may have been waiting for this workspace.
      for (const name of d.controllers.keys()) d.wake(name, { kind: 'org', id: state.org.id });
      return;
    }
    const fresh = await d.desired.listWorkspaces([state.org.id]);
    if (fresh.some((w) => w.finalizers.length > 0)) return;
    const org = await d.desired.getOrg(state.org.id);
    if (!org || org.finalizers.length > 0 || org.purgedAt) return;
    if (!(await d.desired.purgeIfReleased(state.owner))) return;
    this.deps.logger.info({ controller: this.name, owner: state.owner.id }, 'purged owner');
  }

  private actContext(state: OwnerState): ActContext {
    return { assertLeader: this.deps.assertLeader, status: state.status };
  }

  private observeContext(ctx: ActContext, view: CloudView, state: OwnerState, run?: Run): ObserveContext {
    const budget = this.deps.deepCheckBudget;
    return {
      assertLeader: ctx.assertLeader,
      status: ctx.status,
      view,
      deleting: state.deleting,
      resync: view.source === 'inventory',
      allowDeepCheck: () => {
        if (view.source === 'live') return true;
        // A check that finds nothing wrong writes nothing, so it may run on the snapshot; one
        // that finds drift leads to an update, which starts over on fresh rows and reads live.
        return run ? run.deepCheck() : !budget || budget.take(state.owner.id);
      },
    };
  }

  private key(state: OwnerState) {
    return {
      controller: this.name,
      ownerId: state.owner.id,
      ownerKind: state.owner.kind,
      orgId: state.org.id,
    };
  }

  private auditEntry(
    state: OwnerState,
    obs: Observation,
    action: 'created' | 'adopted' | 'updated' | 'drift_corrected' | 'deleted',
    details?: Record<string, unknown>,
  ) {
    return {
      ownerKind: state.owner.kind,
      ownerId: state.owner.id,
      orgId: state.org.id,
      kind: this.controller.kind,
      externalId: firstId(obs.externalIds) ?? '',
      controller: this.name,
      action,
      details: { ...(details ?? {}), externalIds: obs.externalIds },
    };
  }

  /** Writes the status row only when something an operator can see changed. */
  private async writeStatus(state: OwnerState, patch: StatusPatch): Promise<void> {
    const cur = state.status;
    if (cur && !statusChanged(cur, patch)) return;
    this.fresh(state);
    await this.deps.status.upsert(this.key(state), patch);
  }

  private async handleError(owner: OwnerRef, err: unknown, log: Logger): Promise<Outcome> {
    if (err instanceof NotLeaderError) return { result: 'success' }; // stepping down: the new leader takes over
    try {
      this.deps.assertLeader();
    } catch {
      return { result: 'success' }; // lost the lease meanwhile: not ours to record
    }
    const terminal = err instanceof TerminalError || errorClassOf(err) === 'Terminal';
    const cond = conditionForError(err);
    log[terminal ? 'error' : 'warn'](
      { err: describeError(err), errorClass: errorClassOf(err) },
      'reconcile failed',
    );
    try {
      const state = await this.load(owner);
      if (state) {
        const attempts = (state.status?.attempts ?? 0) + 1;
        await this.deps.status.upsert(this.key(state), {
          ready: false,
          reason: cond.reason,
          message: cond.message,
          attempts,
          lastError: describeError(err),
          lastReconciledAt: new Date(this.deps.clock.now()),
        });
      }
    } catch (e) {
      log.warn({ err: describeError(e) }, 'cannot record reconcile failure');
    }
    return { result: terminal ? 'terminal' : 'error' };
  }
}

/**
 * The deps with every database write of a reconcile behind the lease, checked right before the
 * write: a replica that lost the lease (paused, partitioned) writes nothing, just as it sends
 * nothing mutating to the cloud (CloudOptions.mutationGuard).
 */
function fenced(deps: ReconcilerDeps): ReconcilerDeps {
  const guard =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      deps.assertLeader();
      return fn(...args);
    };
  const { status, finalizers, desired } = deps;
  return {
    ...deps,
    status: Object.assign(Object.create(status), {
      upsert: guard(status.upsert.bind(status)),
      audit: guard(status.audit.bind(status)),
    }),
    finalizers: Object.assign(Object.create(finalizers), {
      add: guard(finalizers.add.bind(finalizers)),
      remove: guard(finalizers.remove.bind(finalizers)),
    }),
    desired: Object.assign(Object.create(desired), {
      purgeIfReleased: guard(desired.purgeIfReleased.bind(desired)),
    }),
  };
}

function isMutation(a: Action): boolean {
  return a.type === 'create' || a.type === 'update' || a.type === 'delete' || a.type === 'release';
}

/**
 * `{ ...base, ...extra }`, or `base` itself when `extra` changes none of its members (the steady
 * state: what was observed is what was recorded), which spares a copy per reconcile.
 */
export function merged<T extends Record<string, unknown>>(
  base: T | undefined | null,
  extra: T | undefined,
): T {
  if (!base) return { ...(extra ?? ({} as T)) };
  if (!extra) return base;
  for (const k in extra) {
    if (extra[k] !== undefined && !sameJson(base[k] ?? null, extra[k])) return { ...base, ...extra };
  }
  return base;
}

function firstId(ids: Record<string, string> | undefined): string | undefined {
  return ids ? Object.values(ids)[0] : undefined;
}

const STATUS_FIELDS = [
  'ready',
  'reason',
  'message',
  'observedGeneration',
  'externalIds',
  'state',
  'pending',
] as const;

export function statusChanged(cur: StatusRow, patch: StatusPatch): boolean {
  for (const f of STATUS_FIELDS) {
    if (!(f in patch)) continue;
    if (!sameJson(cur[f] ?? null, (patch as Record<string, unknown>)[f] ?? null)) return true;
  }
  // Clearing a recorded error is a change too.
  if ('lastError' in patch && (cur.lastError ?? null) !== (patch.lastError ?? null)) return true;
  return false;
}

/**
 * Equality as the database stores it: jsonb keeps no key order and JSON drops undefined members.
 * (Compared field by field rather than through JSON.stringify: every reconcile asks.)
 */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Date || b instanceof Date) return JSON.stringify(a) === JSON.stringify(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i] ?? null, b[i] ?? null)) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    if (x[k] === undefined) continue;
    n++;
    if (y[k] === undefined || !sameJson(x[k], y[k])) return false;
  }
  for (const k in y) if (y[k] !== undefined) n--;
  return n === 0;
}
