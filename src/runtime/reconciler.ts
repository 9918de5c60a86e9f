import { randomUUID } from 'node:crypto';
import type { Org, StatusRow, Workspace } from '../../schema/index.js';
import type { CloudView } from '../cloud/inventory.js';
import type { Config } from '../config.js';
import type { DesiredStateRepository, OwnerRef } from '../db/desired.js';
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
}

export interface ReconcilerDeps {
  config: Config;
  controllers: ReadonlyMap<ControllerName, AnyController>;
  enabled: ReadonlySet<ControllerName>;
  desired: DesiredStateRepository;
  status: StatusRepository;
  finalizers: Finalizers;
  liveView: CloudView;
  pins: () => Promise<Pins>;
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
  constructor(
    private readonly controller: AnyController,
    private readonly deps: ReconcilerDeps,
  ) {}

  get name(): ControllerName {
    return this.controller.name;
  }

  async reconcile(owner: OwnerRef, view: CloudView | undefined): Promise<Outcome> {
    const started = performance.now();
    const log = this.deps.logger.child({ controller: this.name, owner: owner.id, reconcileId: randomUUID() });
    let outcome: Outcome;
    try {
      outcome = await this.reconcileOnce(owner, view ?? this.deps.liveView, log);
    } catch (err) {
      outcome = await this.handleError(owner, err, log);
    }
    this.deps.metrics.reconcileDuration.labels(this.name).observe((performance.now() - started) / 1000);
    this.deps.metrics.reconcileTotal.labels(this.name, outcome.result).inc();
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

  private async reconcileOnce(owner: OwnerRef, firstView: CloudView, log: Logger): Promise<Outcome> {
    const d = this.deps;
    const c = this.controller;

    // 1: Load the desired owner row, its org and the status rows this controller reads.
    const state = await this.load(owner);
    if (!state) return { result: 'success' }; // owner purged or never existed: nothing is ours to do
    const fin = finalizerName(c.name);

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
    const desired = c.desired(this.desiredInput(state, await d.pins()));
    const ctx = this.actContext(state);
    let view = firstView;
    let obs = await c.observe(desired, this.observeContext(ctx, view, state));
    let action = this.decide(state, obs, desired);

    // 5: Never act on a snapshot: re-read live before any mutation decided from the inventory.
    if (view.source === 'inventory' && isMutation(action)) {
      view = d.liveView;
      obs = await c.observe(desired, this.observeContext(ctx, view, state));
      action = this.decide(state, obs, desired);
    }
    const patch: StatusPatch = {
      externalIds: { ...(state.status?.externalIds ?? {}), ...obs.externalIds },
      state: { ...(state.status?.state ?? {}), ...(obs.state ?? {}) },
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
        log.info(
          { op: 'delete', externalIds: obs.externalIds, gone: res.gone },
          'deleting external resource',
        );
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
        log.info({ op: 'release' }, 'released finalizer');
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
        if (!state.finalizers.includes(fin)) await d.finalizers.add(owner, fin);
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
        const res = await c.create(desired, action.token, ctx);
        await d.status.audit([
          {
            ...this.auditEntry(state, obs, res.adopted ? 'adopted' : 'created', res.details),
            externalId: firstId(res.externalIds) ?? action.token,
          },
        ]);
        log.info(
          { op: 'create', externalIds: res.externalIds, adopted: !!res.adopted },
          'created external resource',
        );
        const created = res.externalIds ?? {};
        await d.status.upsert(this.key(state), {
          externalIds: { ...patch.externalIds, ...created },
          state: { ...patch.state, token: action.token, ...(res.state ?? {}), createdIds: created },
          lastReconciledAt: patch.lastReconciledAt,
          // Keep the marker until the created resource is observed; with no id to wait for, observe afresh.
          ...(Object.keys(created).length === 0 ? { pending: null } : {}),
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
      const created = (state.status.state as { createdIds?: Record<string, string> }).createdIds ?? {};
      const known = Object.values(created);
      const adopted = !Object.values(obs.externalIds).some((id) => known.includes(id));
      if (adopted) {
        await d.status.audit([this.auditEntry(state, obs, 'adopted', { token: state.status.pending.token })]);
        log.info({ op: 'adopt', externalIds: obs.externalIds }, 'adopted external resource');
      }
      patch.pending = null;
    } else if (!state.status?.externalIds || Object.keys(state.status.externalIds).length === 0) {
      if (Object.keys(obs.externalIds).length > 0 && state.status?.reason !== 'Creating') {
        // Exists but we never recorded it (restored database, row re-created): adopt.
        await d.status.audit([this.auditEntry(state, obs, 'adopted', { reason: 'found by tags or name' })]);
      }
    }
    if (!state.finalizers.includes(fin)) await d.finalizers.add(owner, fin);

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
      log.info({ op: 'update', diff: action.diff, drift: action.drift }, 'updated external resource');
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
    const wasReady = state.status?.ready === true;
    await this.writeStatus(state, {
      ...patch,
      ready: true,
      reason: obs.readyCondition?.reason ?? 'Available',
      message: obs.readyCondition?.message ?? 'resource is up to date',
      observedGeneration: state.generation,
    });
    if (!wasReady) this.wakeDependents(state);
    return { result: 'success' };
  }

  /** The pure decision at the heart of the loop. */
  decide(state: OwnerState, obs: Observation, desired: unknown): Action {
    if (state.deleting) return obs.exists ? { type: 'delete' } : { type: 'release' };
    if (!obs.exists) {
      const pending = state.status?.pending;
      if (pending) {
        const age = this.deps.clock.now() - Date.parse(pending.startedAt);
        const grace = this.deps.config.CREATE_GRACE;
        if (age < grace) {
          return {
            type: 'wait',
            reason: 'Creating',
            message: 'created, waiting for it to become visible',
            afterMs: Math.min(this.deps.pollIntervalMs, grace - age),
          };
        }
      }
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

  /** Loads everything one reconcile reads from the database. Undefined when the owner is gone. */
  async load(owner: OwnerRef): Promise<OwnerState | undefined> {
    const d = this.deps;
    let org: Org | undefined;
    let workspace: Workspace | undefined;
    if (owner.kind === 'org') {
      org = await d.desired.getOrg(owner.id);
    } else {
      workspace = await d.desired.getWorkspace(owner.id);
      if (workspace) org = await d.desired.getOrg(workspace.orgId);
    }
    if (!org || org.purgedAt || (workspace && workspace.purgedAt)) return undefined;
    const workspaces = owner.kind === 'org' ? await d.desired.listWorkspaces([org.id]) : [];
    const ids = owner.kind === 'org' ? [org.id] : [owner.id, org.id];
    const rows = await d.status.getMany([...d.controllers.keys()], ids);
    const self: OwnerState['self'] = {};
    const org_: OwnerState['org_'] = {};
    for (const r of rows) {
      if (r.ownerId === owner.id) self[r.controller as ControllerName] = r;
      if (r.ownerId === org.id) org_[r.controller as ControllerName] = r;
    }
    const row = workspace ?? org;
    return {
      owner,
      org,
      workspace,
      workspaces,
      deleting: !!(row.deletionRequestedAt || org.deletionRequestedAt),
      generation: row.generation,
      finalizers: row.finalizers,
      status: self[this.name],
      self,
      org_,
    };
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
      await d.desired.purge(state.owner);
      // The org may have been waiting for this workspace.
      for (const name of d.controllers.keys()) d.wake(name, { kind: 'org', id: state.org.id });
      return;
    }
    const fresh = await d.desired.listWorkspaces([state.org.id]);
    if (fresh.some((w) => w.finalizers.length > 0)) return;
    const org = await d.desired.getOrg(state.org.id);
    if (!org || org.finalizers.length > 0 || org.purgedAt) return;
    await d.desired.purge(state.owner);
    this.deps.logger.info({ controller: this.name, owner: state.owner.id }, 'purged owner');
  }

  private actContext(state: OwnerState): ActContext {
    return { assertLeader: this.deps.assertLeader, status: state.status };
  }

  private observeContext(ctx: ActContext, view: CloudView, state: OwnerState): ObserveContext {
    const budget = this.deps.deepCheckBudget;
    return {
      ...ctx,
      view,
      deleting: state.deleting,
      resync: view.source === 'inventory',
      allowDeepCheck: () => view.source === 'live' || !budget || budget.take(state.owner.id),
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
    await this.deps.status.upsert(this.key(state), patch);
  }

  private async handleError(owner: OwnerRef, err: unknown, log: Logger): Promise<Outcome> {
    if (err instanceof NotLeaderError) return { result: 'success' }; // stepping down: the new leader takes over
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

function isMutation(a: Action): boolean {
  return a.type === 'create' || a.type === 'update' || a.type === 'delete' || a.type === 'release';
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
    if (JSON.stringify(cur[f] ?? null) !== JSON.stringify((patch as Record<string, unknown>)[f] ?? null))
      return true;
  }
  // Clearing a recorded error is a change too.
  if ('lastError' in patch && (cur.lastError ?? null) !== (patch.lastError ?? null)) return true;
  return false;
}
