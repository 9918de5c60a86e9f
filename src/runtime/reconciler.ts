import { randomUUID } from 'node:crypto';
import type { Org, StatusRow, Workspace } from '../../schema/index.js';
import type { CloudView } from '../cloud/inventory.js';
import type { TargetName, TargetSettings } from '../cloud/targets.js';
import type { Config } from '../config.js';
import type { DesiredStateRepository, OwnerRef } from '../db/desired.js';
import type { Fence } from '../db/fence.js';
import type { FinalizerRepository } from '../db/finalizers.js';
import type { DesiredSnapshot } from '../db/snapshot.js';
import type { AuditEntry, StatusPatch, StatusRepository } from '../db/status.js';
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
  RolloutGate,
} from './controller.js';
import { describeError, errorClassOf, FencedOutError, NotLeaderError, TerminalError } from './errors.js';
import type { Failpoint } from './failpoints.js';
import { sameJson } from './json.js';
import type { Outcome } from './queue.js';
import type { ControllerRegistry, RegisteredController } from './registry.js';

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
  fromSnapshot: boolean;
}

/** A target as the reconciler sees it. */
export interface ReconcileTarget {
  settings: TargetSettings;
  /** Controllers that run in this target. */
  enabled: ReadonlySet<ControllerName>;
  /** Targeted reads of this target's cloud. */
  liveView: CloudView;
}

/**
 * Everything a reconciler needs besides its own controller, built once by the composition root
 * (src/operator.ts) and shared by every controller's reconciler.
 */
export interface ReconcilerDeps {
  config: Config;
  registry: ControllerRegistry;
  targets: ReadonlyMap<TargetName, ReconcileTarget>;
  /** The target an org's resources live in. */
  placement: (org: Org) => TargetName;
  desired: DesiredStateRepository;
  /** Fresh rows of one owner's org (DesiredSnapshot.loadOwner). */
  loadOwner: (owner: OwnerRef) => Promise<DesiredSnapshot>;
  status: StatusRepository;
  finalizers: FinalizerRepository;
  /** AMI and image pins: a value while cached, a promise when they must be read. */
  pins: () => Pins | Promise<Pins>;
  /** The order of redeploys across the fleet (absent in `plan`: nothing is started there). */
  rollout?: RolloutGate;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  /** Throws NotLeaderError unless this replica leads the target; checked before every write and mutation. */
  assertLeader: (target: TargetName) => void;
  /** The lease term every database write of the target's reconciles is fenced by (db/fence.ts). */
  fence: (target: TargetName) => Fence;
  /** Told when the database refused a write of an earlier term of `lease`: step down now. */
  onFencedOut?: (lease: string) => void;
  /** Chaos suite only (runtime/failpoints.ts): called between capturing a write's term and making it. */
  failpoint?: (point: Failpoint) => void;
  /** Whether this replica leads the target: an owner of a target another replica leads is left to it. */
  leads: (target: TargetName) => boolean;
  /** Wakes another controller for an owner (dependency became ready, finalizer released). */
  wake: (controller: ControllerName, owner: OwnerRef) => void;
  /** Interval to look again at something that changes by itself (instance pending, create in flight). */
  pollIntervalMs: number;
  /** Per-resync allowance of deep checks (e.g. tunnel configurations), shared by all owners. */
  deepCheckBudget?: { take(key: string): boolean };
}

export const finalizerName = (controller: ControllerName) => `molecule.dev/${controller}`;

/** The end of a reconcile that changes nothing in the cloud: what it records, and when to look again. */
interface Settlement {
  /** The status to write when it differs from the row. */
  patch: StatusPatch | undefined;
  /** A resource found in place of a create we could not confirm, or never recorded. */
  adopted: AuditEntry | undefined;
  /** The finalizer is not on the owner yet. */
  addFinalizer: boolean;
  /** Became Ready: what waited for it may go on. */
  wakeDependents: boolean;
  outcome: Outcome;
}

/** A decision with everything needed to carry it out. */
type Decision =
  | { kind: 'purge'; state: OwnerState; action: Action }
  | { kind: 'settle'; state: OwnerState; action: Action; settle: Settlement; obs?: Observation }
  | {
      kind: 'mutate';
      state: OwnerState;
      action: Extract<Action, { type: 'create' | 'update' | 'delete' | 'release' }>;
      desired: unknown;
      obs: Observation;
      client: AnyController;
      /** Bookkeeping of the observation, merged into the status row. */
      patch: StatusPatch;
      /** An update first records what the adoption steps found. */
      adoption: Pick<Settlement, 'adopted' | 'addFinalizer'> | undefined;
    };

/** What one reconcile call carries across its passes (snapshot, then fresh rows and live reads). */
interface Run {
  /** The reconcile's child logger, built on first use: most reconciles log nothing. */
  log(): Logger;
  /** Whether this reconcile may spend a deep check, decided once (the budget is taken once). */
  deepCheck(): boolean;
}

/**
 * The one reconcile loop every controller runs through (crossplane's managed reconciler,
 * kubebuilder's numbered steps). Controllers only observe, create, update and delete.
 */
export class Reconciler {
  /** Metric series of this controller, looked up once (every reconcile records them). */
  private readonly durationSeconds;
  private readonly totals = new Map<Outcome['result'], { inc(): void }>();
  private readonly fin: string;
  /** For reads. Every write goes through {@link leaseOf}'s deps, behind the owner's target's lease. */
  private readonly deps: ReconcilerDeps;
  private readonly fenced: Map<TargetName, ReconcilerDeps>;

  /**
   * @param spec the controller's registry entry
   * @param clients its client in each target where it runs
   */
  constructor(
    readonly spec: RegisteredController,
    private readonly clients: ReadonlyMap<TargetName, AnyController>,
    deps: ReconcilerDeps,
  ) {
    this.deps = deps;
    this.fenced = new Map([...deps.targets.keys(), 'primary' as TargetName].map((t) => [t, fenced(deps, t)]));
    this.fin = finalizerName(spec.name);
    this.durationSeconds = deps.metrics.reconcileDuration.labels(spec.name);
  }

  get name(): ControllerName {
    return this.spec.name;
  }

  private total(result: Outcome['result']): { inc(): void } {
    let series = this.totals.get(result);
    if (!series) {
      series = this.deps.metrics.reconcileTotal.labels(this.name, result);
      this.totals.set(result, series);
    }
    return series;
  }

  /**
   * One reconcile of one owner. `view` is a resync's inventory of the owner's target, and
   * `snapshot` its rows: with both, an owner that needs nothing costs no database read and no
   * cloud call. Anything that would write or act is decided again on fresh rows, and any cloud
   * mutation on a live observation (desired state is never acted on from a snapshot, as cloud
   * state is never acted on from the inventory).
   */
  async reconcile(owner: OwnerRef, view?: CloudView, snapshot?: DesiredSnapshot): Promise<Outcome> {
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
      outcome = await this.reconcileOwner(owner, view, snapshot, run);
    } catch (err) {
      outcome = await this.handleError(owner, err, run.log());
    }
    this.durationSeconds.observe((performance.now() - started) / 1000);
    this.total(outcome.result).inc();
    return outcome;
  }

  /**
   * What this controller would do for an owner right now, from the same loading, observing and
   * deciding steps as {@link reconcile}, without changing anything (`molecule-operator plan`).
   */
  async plan(owner: OwnerRef, view: CloudView): Promise<PlannedAction | undefined> {
    const state = await this.load(owner);
    if (!state) return undefined;
    const decision = await this.decide(state, view, undefined, true);
    if (decision.kind === 'purge') return { action: decision.action, diff: [], note: 'nothing to delete' };
    const obs = decision.obs;
    // Nothing to do but wait (a command running, a rollout holding it back): say for what.
    const action: Action =
      decision.action.type === 'none' && obs?.progressing
        ? { type: 'wait', reason: obs.progressReason ?? 'Progressing', message: obs.progressing }
        : decision.action;
    return {
      action,
      diff: obs?.diff ?? [],
      ...(obs ? { externalIds: obs.externalIds } : {}),
    };
  }

  private async reconcileOwner(
    owner: OwnerRef,
    inventory: CloudView | undefined,
    snapshot: DesiredSnapshot | undefined,
    run: Run,
  ): Promise<Outcome> {
    // 1: Load the owner row, its org and their status rows: from the resync's snapshot without
    //    an await when it covers the owner (most reconciles), else fresh. A deletion cascade
    //    always runs on fresh rows.
    const covered = snapshot ? this.fromSnapshot(owner, snapshot) : 'uncovered';
    let state: OwnerState | undefined =
      covered === 'uncovered' || covered?.deleting ? await this.load(owner) : covered;
    if (!state) return { result: 'success' }; // owner purged or never existed: nothing is ours to do
    if (!this.deps.leads(this.leaseTarget(state))) return { result: 'success' }; // another replica's

    // 2-5: Decide (see decide). Whatever would write is decided again on fresh rows, and a cloud
    //      mutation decided from the inventory again on a live observation.
    let view = inventory;
    for (;;) {
      const decision = await this.decide(state, view, run, false);
      const mutates = decision.kind === 'mutate';
      if (state.fromSnapshot && (mutates || writes(decision))) {
        state = await this.load(owner);
        if (!state) return { result: 'success' };
        continue;
      }
      if (mutates && view?.source === 'inventory') {
        view = undefined; // live
        continue;
      }
      const outcome = await this.carryOut(decision, run);
      // Nothing written (the rows are still the snapshot's) and nothing left to do.
      if (state.fromSnapshot && view?.source === 'inventory' && outcome.result === 'success') return STEADY;
      return outcome;
    }
  }

  /**
   * Steps 2-5, pure but for the cloud reads of step 4: what to do for an owner in a given state.
   */
  private async decide(
    state: OwnerState,
    inventory: CloudView | undefined,
    run: Run | undefined,
    planning: boolean,
  ): Promise<Decision> {
    const d = this.deps;

    // 2: Being deleted and never created anything? Then there is nothing to clean up.
    if (state.deleting && !state.finalizers.includes(this.fin) && !state.status?.pending)
      return { kind: 'purge', state, action: { type: 'none' } };

    // 3: The owner's target must be configured; never act for it anywhere else. Then wait for
    //    what must exist first (creation) or be gone first (deletion).
    const targetName = d.placement(state.org);
    const target = d.targets.get(targetName);
    if (!target) {
      const message = `the org is placed in the ${targetName} target, which this operator is not configured for`;
      return {
        kind: 'settle',
        state,
        action: { type: 'wait', reason: 'TargetNotConfigured', message },
        settle: settled({ ready: false, reason: 'TargetNotConfigured', message }, { result: 'success' }),
      };
    }
    const client = this.clients.get(targetName);
    // Not running in this target (its configuration is missing there): as for a controller off
    // everywhere, nothing is recorded, and what waits for it goes on without it.
    if (!client)
      return {
        kind: 'settle',
        state,
        action: { type: 'none' },
        settle: settled(undefined, { result: 'success' }),
      };
    const blocker = state.deleting ? this.deletionBlocker(state) : this.creationBlocker(state, target);
    if (blocker) {
      return {
        kind: 'settle',
        state,
        action: { type: 'wait', ...blocker },
        // The dependency wakes us when it changes.
        settle: settled(
          { ready: false, reason: blocker.reason, message: blocker.message },
          { result: 'success' },
        ),
      };
    }

    // 4: Compute the desired resource and observe the actual one, in the owner's target.
    const cachedPins = d.pins();
    const pins = cachedPins instanceof Promise ? await cachedPins : cachedPins;
    const desired = client.desired(this.desiredInput(state, target, pins));
    const view = inventory ?? target.liveView;
    const obs = await client.observe(desired, this.observeContext(state, view, run, planning));

    // 5: Decide from desired and observed.
    const action = decideAction(state, obs, (previous) => client.createToken(desired, obs, previous), {
      now: d.clock.now(),
      createGraceMs: d.config.CREATE_GRACE,
      pollIntervalMs: d.pollIntervalMs,
    });
    const patch: StatusPatch = {
      externalIds: merged(state.status?.externalIds, obs.externalIds),
      state: merged(state.status?.state, obs.state),
      lastReconciledAt: new Date(d.clock.now()),
      attempts: 0,
      lastError: null,
      nextAttemptAt: null,
    };
    switch (action.type) {
      case 'create':
      case 'delete':
      case 'release':
        return { kind: 'mutate', state, action, desired, obs, client, patch, adoption: undefined };
      case 'update':
        return {
          kind: 'mutate',
          state,
          action,
          desired,
          obs,
          client,
          patch,
          adoption: this.adoption(state, obs, patch),
        };
      case 'wait':
        patch.ready = false;
        patch.reason = action.reason;
        patch.message = action.message;
        return {
          kind: 'settle',
          state,
          action,
          obs,
          settle: settled(patch, { result: 'requeue', afterMs: action.afterMs ?? d.pollIntervalMs }),
        };
      default:
        return { kind: 'settle', state, action, obs, settle: this.settle(state, obs, patch) };
    }
  }

  /**
   * 9: What an existing resource's owner must record before anything else: a create we could
   * not confirm is taken over (its marker cleared), a resource never recorded is adopted, and the
   * finalizer is held. Clears the pending marker on `patch`.
   */
  private adoption(
    state: OwnerState,
    obs: Observation,
    patch: StatusPatch,
  ): Pick<Settlement, 'adopted' | 'addFinalizer'> {
    const s = state.status;
    let adopted: AuditEntry | undefined;
    if (s?.pending) {
      // It exists after a create we could not confirm: take it over.
      const known = Object.values((s.state as { createdIds?: Record<string, string> }).createdIds ?? {});
      if (!Object.values(obs.externalIds).some((id) => known.includes(id)))
        adopted = this.auditEntry(state, obs, 'adopted', { token: s.pending.token });
      patch.pending = null;
    } else if (!s?.externalIds || Object.keys(s.externalIds).length === 0) {
      // Exists but we never recorded it (restored database, row re-created): adopt.
      if (Object.keys(obs.externalIds).length > 0 && s?.reason !== 'Creating')
        adopted = this.auditEntry(state, obs, 'adopted', { reason: 'found by tags or name' });
    }
    return { adopted, addFinalizer: !state.finalizers.includes(this.fin) };
  }

  /**
   * How a reconcile that changes nothing in the cloud ends: the adoption steps, then progress
   * or Ready.
   */
  private settle(state: OwnerState, obs: Observation, patch: StatusPatch): Settlement {
    const { adopted, addFinalizer } = this.adoption(state, obs, patch);

    // 11: Changing state by itself (instance pending/stopping): not ready, look again soon.
    if (obs.progressing) {
      patch.ready = false;
      patch.reason = obs.progressReason ?? 'Progressing';
      patch.message = obs.progressing;
      return {
        patch,
        adopted,
        addFinalizer,
        wakeDependents: false,
        outcome: { result: 'requeue', afterMs: obs.retryAfterMs ?? this.deps.pollIntervalMs },
      };
    }

    // 12: Up to date: Ready at this generation. Wake what waited for us.
    //     (Set on the patch rather than spread into a new object: nearly every reconcile of a
    //     steady fleet ends here, and a spread followed by more members is slow in V8.)
    patch.ready = true;
    patch.reason = obs.readyCondition?.reason ?? 'Available';
    patch.message = obs.readyCondition?.message ?? 'resource is up to date';
    patch.observedGeneration = state.generation;
    return {
      patch,
      adopted,
      addFinalizer,
      wakeDependents: state.status?.ready !== true,
      outcome: { result: 'success' },
    };
  }

  /** Steps 6-12: carries a decision out. Rows are fresh here whenever anything is written. */
  private async carryOut(decision: Decision, run: Run): Promise<Outcome> {
    const { state } = decision;
    const d = this.leaseOf(state);
    switch (decision.kind) {
      case 'purge':
        await this.maybePurge(d, state);
        return { result: 'success' };
      case 'settle':
        if (!(await this.record(d, decision.settle, state, run))) return { result: 'success' };
        if (decision.settle.wakeDependents) {
          this.wakeDependents(state);
          this.wakeFollowers(state);
        }
        return decision.settle.outcome;
    }
    const { action, desired, obs, client, patch } = decision;
    const target = d.placement(state.org);
    const ctx = this.actContext(d, state);
    switch (action.type) {
      // 6a: Deleting and the resource still exists: delete it (dependents are already gone).
      case 'delete': {
        d.assertLeader(target);
        const res = await client.delete(desired, obs, ctx);
        // A deletion that is only waiting (the provider refused for now) changed nothing to audit.
        if (!res.waiting) await d.status.audit([this.auditEntry(state, obs, 'deleted', res.details)]);
        run
          .log()
          .info({ op: 'delete', externalIds: obs.externalIds, gone: res.gone }, 'deleting external resource');
        if (!res.gone) {
          await this.writeStatus(d, state, {
            ...patch,
            ...(res.state ? { state: { ...patch.state, ...res.state } } : {}),
            ready: false,
            reason: res.waiting?.reason ?? 'Deleting',
            message: res.waiting?.message ?? 'waiting for the resource to go away',
          });
          return { result: 'requeue', afterMs: res.waiting?.afterMs ?? d.pollIntervalMs };
        }
        return { result: 'requeue', afterMs: 0 }; // confirm it is gone before releasing
      }

      // 6b: Deleting and confirmed gone: release the finalizer, wake what waited for us, purge if last.
      case 'release': {
        await d.finalizers.remove(state.owner, this.fin);
        await this.writeStatus(d, state, {
          ...patch,
          pending: null,
          ready: false,
          reason: 'Deleted',
          message: 'resource deleted',
        });
        run.log().info({ op: 'release' }, 'released finalizer');
        this.wakeDeletionWaiters(state);
        await this.maybePurge(d, { ...state, finalizers: state.finalizers.filter((f) => f !== this.fin) });
        return { result: 'success' };
      }

      // 8: Missing: record the token first, then create. A crash after this point is adopted.
      case 'create': {
        // Purged since it was loaded: nothing may be created for it any more.
        if (!state.finalizers.includes(this.fin) && !(await d.finalizers.add(state.owner, this.fin)))
          return { result: 'success' };
        await d.status.upsert(this.key(state), {
          pending: { token: action.token, startedAt: new Date(d.clock.now()).toISOString() },
          state: { ...patch.state, token: action.token },
          ready: false,
          reason: 'Creating',
          message: 'creating the resource',
          observedGeneration: state.status?.observedGeneration ?? 0,
        });
        d.assertLeader(target);
        // The create grace runs from the end of the attempt, not its start: the call may have
        // waited long in the rate limiter and retries, and a lost response may have created the
        // resource at any moment until it failed. Until then, not seeing it proves nothing.
        const attempted = () => ({ token: action.token, startedAt: new Date(d.clock.now()).toISOString() });
        let res: Awaited<ReturnType<AnyController['create']>>;
        try {
          res = await client.create(desired, action.token, ctx);
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
        this.wakeFollowers(state);
        return { result: 'requeue', afterMs: 0 }; // observe what was created
      }

      // 10: Exists but differs: update (after recording what the adoption steps found). Drift
      //     (the spec did not change) is counted.
      case 'update': {
        const { adopted, addFinalizer } = decision.adoption!;
        if (
          !(await this.record(
            d,
            settled(undefined, { result: 'success' }, adopted, addFinalizer),
            state,
            run,
          ))
        )
          return { result: 'success' };
        d.assertLeader(target);
        const res = await client.update(desired, obs, ctx);
        if (action.drift) d.metrics.driftCorrections.labels(this.name).inc();
        await d.status.audit([
          this.auditEntry(state, obs, action.drift ? 'drift_corrected' : 'updated', {
            diff: action.diff,
            ...res.details,
          }),
        ]);
        run.log().info({ op: 'update', diff: action.diff, drift: action.drift }, 'updated external resource');
        await this.writeStatus(d, state, {
          ...patch,
          externalIds: { ...patch.externalIds, ...(res.externalIds ?? {}) },
          state: { ...patch.state, ...(res.state ?? {}) },
          ready: false,
          reason: action.drift ? 'CorrectingDrift' : 'Updating',
          message: action.diff.join('; ').slice(0, 500),
        });
        return { result: 'requeue', afterMs: Math.min(d.pollIntervalMs, 250) };
      }
    }
  }

  /**
   * Writes what a settlement found (adoption audit, finalizer, status); false when the owner was
   * purged meanwhile and nothing may be recorded for it.
   */
  private async record(d: ReconcilerDeps, s: Settlement, state: OwnerState, run: Run): Promise<boolean> {
    if (s.adopted) {
      await d.status.audit([s.adopted]);
      run
        .log()
        .info({ op: 'adopt', externalIds: s.adopted.details?.externalIds }, 'adopted external resource');
    }
    if (s.addFinalizer && !(await d.finalizers.add(state.owner, this.fin))) return false;
    if (s.patch) await this.writeStatus(d, state, s.patch);
    return true;
  }

  /**
   * Loads everything one reconcile reads: the owner's org, its live workspaces and their status
   * rows, fresh, in one round trip. Undefined when the owner is gone.
   */
  async load(owner: OwnerRef): Promise<OwnerState | undefined> {
    const state = this.fromSnapshot(owner, await this.deps.loadOwner(owner));
    if (state === 'uncovered') return undefined; // no such owner (or a purged workspace)
    if (state) state.fromSnapshot = false;
    return state;
  }

  private fromSnapshot(owner: OwnerRef, snap: DesiredSnapshot): OwnerState | undefined | 'uncovered' {
    let workspace: Workspace | undefined;
    if (owner.kind === 'workspace') {
      workspace = snap.workspace(owner.id);
      if (!workspace) return 'uncovered';
    } else if (!snap.covers(owner.id)) return 'uncovered';
    const org = snap.org(workspace ? workspace.orgId : owner.id);
    if (!org || org.purgedAt || workspace?.purgedAt) return undefined;
    const self: OwnerState['self'] = {};
    const org_: OwnerState['org_'] = {};
    const registry = this.deps.registry;
    for (const r of snap.statusOf(owner.id)) if (registry.get(r.controller)) self[r.controller] = r;
    for (const r of snap.statusOf(org.id)) if (registry.get(r.controller)) org_[r.controller] = r;
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

  private desiredInput(state: OwnerState, target: ReconcileTarget, pins: Pins): DesiredInput {
    return {
      config: this.deps.config,
      target: target.settings,
      owner: state.owner,
      org: state.org,
      workspace: state.workspace,
      self: state.self,
      org_: state.org_,
      pins,
      enabled: target.enabled,
      now: this.deps.clock.now(),
      ...(this.deps.rollout ? { rollout: this.deps.rollout } : {}),
    };
  }

  private creationBlocker(
    state: OwnerState,
    target: ReconcileTarget,
  ): { reason: string; message: string } | undefined {
    for (const dep of this.spec.dependsOn) {
      if (!target.enabled.has(dep.controller.name)) continue; // disabled: proceed without it, the controller says so
      const row = dep.scope === 'self' ? state.self[dep.controller.name] : state.org_[dep.controller.name];
      if (!row?.ready) {
        return {
          reason: `WaitingFor${dep.label}`,
          message: `waiting for the ${dep.scope === 'org' ? "org's " : ''}${dep.controller.name} to be ready`,
        };
      }
    }
    return undefined;
  }

  private deletionBlocker(state: OwnerState): { reason: string; message: string } | undefined {
    for (const dep of this.spec.deletesAfter) {
      const fin = finalizerName(dep.controller.name);
      const holders =
        dep.scope === 'self'
          ? state.finalizers.includes(fin)
            ? 1
            : 0
          : state.owner.kind === 'org'
            ? state.workspaces.filter((w) => w.finalizers.includes(fin)).length
            : 0;
      if (holders > 0) {
        return {
          reason: `WaitingFor${dep.label}Deletion`,
          message: `waiting for ${holders} ${dep.controller.name} resource(s) to be deleted first`,
        };
      }
    }
    return undefined;
  }

  private wakeDependents(state: OwnerState): void {
    for (const other of this.deps.registry.controllers) {
      for (const dep of other.dependsOn) {
        if (dep.controller.name !== this.name) continue;
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

  /** Wakes the controllers whose desired state names this one's resource (ControllerSpec.follows). */
  private wakeFollowers(state: OwnerState): void {
    for (const other of this.deps.registry.controllers)
      for (const dep of other.following)
        if (
          dep.controller.name === this.name &&
          dep.scope === 'self' &&
          other.owners.includes(state.owner.kind)
        )
          this.deps.wake(other.name, state.owner);
  }

  private wakeDeletionWaiters(state: OwnerState): void {
    for (const other of this.deps.registry.controllers) {
      for (const dep of other.deletesAfter) {
        if (dep.controller.name !== this.name) continue;
        if (dep.scope === 'self' && other.owners.includes(state.owner.kind))
          this.deps.wake(other.name, state.owner);
        if (dep.scope === 'workspaces' && state.owner.kind === 'workspace' && other.owners.includes('org')) {
          this.deps.wake(other.name, { kind: 'org', id: state.org.id });
        }
      }
    }
  }

  /** Marks the owner purged once every finalizer is released (an org also waits for its workspaces). */
  private async maybePurge(d: ReconcilerDeps, state: OwnerState): Promise<void> {
    if (!state.deleting || state.finalizers.length > 0) return;
    if (state.owner.kind === 'workspace') {
      if (!state.workspace?.deletionRequestedAt && !state.org.deletionRequestedAt) return;
      // Decided from rows read a moment ago: purged only if no finalizer holds it now.
      if (!(await d.desired.purgeIfReleased(state.owner))) return;
      // The org may have been waiting for this workspace.
      for (const name of d.registry.names) d.wake(name, { kind: 'org', id: state.org.id });
      return;
    }
    const fresh = await d.desired.listWorkspaces([state.org.id]);
    if (fresh.some((w) => w.finalizers.length > 0)) return;
    const org = await d.desired.getOrg(state.org.id);
    if (!org || org.finalizers.length > 0 || org.purgedAt) return;
    if (!(await d.desired.purgeIfReleased(state.owner))) return;
    this.deps.logger.info({ controller: this.name, owner: state.owner.id }, 'purged owner');
  }

  /**
   * The deps whose writes are behind the lease of the owner's target (the primary's for an org
   * placed in a target this operator is not configured for): a replica that does not lead it,
   * or lost it (paused, partitioned), writes nothing and starts no mutation.
   */
  private leaseOf(state: OwnerState): ReconcilerDeps {
    return this.fenced.get(this.leaseTarget(state))!;
  }

  private leaseTarget(state: OwnerState): TargetName {
    const placed = this.deps.placement(state.org);
    return this.deps.targets.has(placed) ? placed : 'primary';
  }

  private actContext(d: ReconcilerDeps, state: OwnerState): ActContext {
    return {
      assertLeader: () => d.assertLeader(d.placement(state.org)),
      status: state.status,
      now: () => d.clock.now(),
    };
  }

  private observeContext(
    state: OwnerState,
    view: CloudView,
    run: Run | undefined,
    planning: boolean,
  ): ObserveContext {
    const budget = this.deps.deepCheckBudget;
    return {
      assertLeader: planning
        ? () => {
            throw new Error('plan never acts');
          }
        : () => this.deps.assertLeader(this.deps.placement(state.org)),
      status: state.status,
      view,
      deleting: state.deleting,
      resync: view.source === 'inventory',
      allowDeepCheck: () => {
        if (view.source === 'live') return true;
        // A check that finds nothing wrong writes nothing, so it may run on the snapshot; one
        // that finds drift leads to an update, which is decided again on fresh rows and live reads.
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
  ): AuditEntry {
    return {
      ownerKind: state.owner.kind,
      ownerId: state.owner.id,
      orgId: state.org.id,
      kind: this.spec.kinds[0]?.kind ?? this.spec.auditKind ?? 'other',
      externalId: firstId(obs.externalIds) ?? '',
      controller: this.name,
      action,
      details: { ...(details ?? {}), externalIds: obs.externalIds },
    };
  }

  /** Writes the status row only when something an operator can see changed. */
  private async writeStatus(d: ReconcilerDeps, state: OwnerState, patch: StatusPatch): Promise<void> {
    const cur = state.status;
    if (cur && !statusChanged(cur, patch)) return;
    await d.status.upsert(this.key(state), patch);
  }

  private async handleError(owner: OwnerRef, err: unknown, log: Logger): Promise<Outcome> {
    if (err instanceof FencedOutError) {
      log.warn({ err: describeError(err) }, 'write refused by the lease fence: not the leader any more');
      this.deps.onFencedOut?.(err.lease);
    }
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
        // Behind the lease: a replica that lost it meanwhile records nothing.
        await this.leaseOf(state).status.upsert(this.key(state), {
          ready: false,
          reason: cond.reason,
          message: cond.message,
          attempts,
          lastError: describeError(err),
          lastReconciledAt: new Date(this.deps.clock.now()),
        });
      }
    } catch (e) {
      if (e instanceof NotLeaderError) return { result: 'success' }; // not ours to record
      log.warn({ err: describeError(e) }, 'cannot record reconcile failure');
    }
    return { result: terminal ? 'terminal' : 'error' };
  }
}

/**
 * The pure decision at the heart of the loop: from what the owner's rows say and what was
 * observed, what to do (`createToken` names the next create from the previous attempt's token).
 */
export function decideAction(
  state: Pick<OwnerState, 'deleting' | 'generation' | 'status'>,
  obs: Observation,
  createToken: (previous: string | undefined) => string,
  timing: { now: number; createGraceMs: number; pollIntervalMs: number },
): Action {
  const pending = state.status?.pending;
  if (!obs.exists && pending) {
    // Created moments ago and not visible yet (eventual consistency): its absence proves
    // nothing, neither that it must be created again nor that a deletion is done.
    const age = timing.now - Date.parse(pending.startedAt);
    if (age < timing.createGraceMs) {
      return {
        type: 'wait',
        reason: state.deleting ? 'Deleting' : 'Creating',
        message: state.deleting
          ? 'created moments ago, waiting for it to become visible to delete it'
          : 'created, waiting for it to become visible',
        afterMs: Math.min(timing.pollIntervalMs, timing.createGraceMs - age),
      };
    }
  }
  if (state.deleting) return obs.exists ? { type: 'delete' } : { type: 'release' };
  if (!obs.exists) {
    const previous = (state.status?.state as { token?: string } | undefined)?.token ?? pending?.token;
    return { type: 'create', token: createToken(previous) };
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

const STEADY: Outcome = { result: 'success', steady: true };

function settled(
  patch: StatusPatch | undefined,
  outcome: Outcome,
  adopted?: AuditEntry,
  addFinalizer = false,
): Settlement {
  return { patch, adopted, addFinalizer, wakeDependents: false, outcome };
}

/** Whether carrying a decision out writes anything (then it must be decided on fresh rows). */
function writes(decision: Decision): boolean {
  if (decision.kind !== 'settle') return true;
  const { patch, adopted, addFinalizer } = decision.settle;
  const status = decision.state.status;
  return (
    adopted !== undefined ||
    addFinalizer ||
    (patch !== undefined && (!status || statusChanged(status, patch)))
  );
}

/**
 * The deps with every database write of a reconcile behind the lease: checked in memory right
 * before the write (cheap, catches a replica that knows it lost), and fenced in the database by
 * the lease term (db/fence.ts: the write commits only if the lease row is still held at that
 * epoch). A replica that lost the lease (paused, partitioned) writes nothing, just as it sends
 * nothing mutating to the cloud (CloudOptions.mutationGuard).
 */
function fenced(deps: ReconcilerDeps, target: TargetName): ReconcilerDeps {
  const fence = (point: Failpoint) => () => {
    deps.assertLeader(target);
    const f = deps.fence(target);
    deps.failpoint?.(point);
    return f;
  };
  const statusFence = fence('before-status-write');
  const auditFence = fence('before-audit-write');
  const status = Object.assign(Object.create(deps.status.fenced(statusFence)) as StatusRepository, {
    audit: (entries: AuditEntry[]) => deps.status.fenced(auditFence).audit(entries),
  });
  return {
    ...deps,
    status,
    finalizers: deps.finalizers.fenced(fence('before-finalizer-write')),
    desired: deps.desired.fenced(fence('before-purge')),
  };
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
