import type { Org, StatusRow, Workspace } from '../../schema/index.js';
import type { CloudView } from '../cloud/inventory.js';
import type { CloudPorts, ResourceKind } from '../cloud/ports.js';
import type { TargetSettings } from '../cloud/targets.js';
import type { Config } from '../config.js';
import type { OwnerKind, OwnerRef } from '../db/desired.js';

/** A controller's name as status rows, finalizers and metric labels carry it. Declared in the registry alone. */
export type ControllerName = string;

/** Another controller's resource this one waits for, for the same owner (`self`) or the owner's org (`org`). */
export interface Dependency {
  controller: ControllerSpec;
  scope: 'self' | 'org';
  /** Used in the waiting reason: `WaitingFor<Label>`. */
  label: string;
}

/**
 * A controller whose resources must be gone before this one deletes its own: for the same
 * owner (`self`), or — when this owner is an org — for each of the org's workspaces (`workspaces`).
 */
export interface DeletionDependency {
  controller: ControllerSpec;
  scope: 'self' | 'workspaces';
  label: string;
}

/** One kind of cloud resource a controller keeps, and where its status row records the id. */
export interface OwnedKind {
  kind: ResourceKind;
  /** The key of `externalIds` in the controller's status row that holds this resource's id. */
  statusKey: string;
  /**
   * Deletes one resource of this kind by id, for the orphan scan. Idempotent: already gone is
   * not an error. Without it, orphans of the kind are reported only.
   */
  remove?(
    ports: CloudPorts,
    resource: { externalId: string; name: string | undefined },
    config: Config,
  ): Promise<void>;
}

/**
 * One entry of the controller registry (controllers/index.ts): everything the runtime, `plan`,
 * metrics, the orphan scan and the CLI need to know about a controller, declared once
 * (kube-controller-manager's controller descriptors).
 */
export interface ControllerSpec<D = unknown, R = unknown> {
  readonly name: ControllerName;
  /** What it keeps, main kind first (the audit trail records that one). */
  readonly kinds: readonly OwnedKind[];
  /** The kind its audit rows name when it keeps no resource of its own (a redeploy's command). */
  readonly auditKind?: string;
  /** Owner kinds it keeps a resource for. */
  readonly owners: readonly OwnerKind[];
  /** What must be Ready before it creates. A function: specs refer to each other. */
  readonly waitsFor: () => readonly Dependency[];
  /** What must be gone before it deletes. */
  readonly deleteAfter: () => readonly DeletionDependency[];
  /**
   * Controllers whose resources this one's desired state names without waiting for them (the
   * bundle's policy names the tenant instance): it is woken when one of theirs is created or
   * becomes Ready.
   */
  readonly follows?: () => readonly Dependency[];
  /**
   * Its desired state reads the AMI / image pins: a pin change queues it for every owner the
   * pin applies to, at once rather than at the next resync.
   */
  readonly readsPins?: boolean;
  /**
   * It reads, in turn, what no listing shows (a tunnel's configuration: DeepCheckBudget): a
   * resync that skips an unchanged batch still queues the batch's owners whose turn it is.
   */
  readonly deepChecks?: boolean;
  /**
   * Why it cannot run in this target with this configuration (a sentence naming what to set),
   * or undefined. A disabled controller stays registered: deletion ordering still counts it.
   */
  disabledBecause(target: TargetSettings, ports: CloudPorts, config: Config): string | undefined;
  /** Its client over one target's ports. */
  create(ports: CloudPorts): Controller<D, R>;
}

/** Everything a controller may read to compute what it wants. Pure data. */
export interface DesiredInput {
  config: Config;
  /** Where the owner's AWS resources live. */
  target: TargetSettings;
  owner: OwnerRef;
  org: Org;
  workspace: Workspace | undefined;
  /** Status rows of this owner's and its org's resources, by controller (`self` and `org` scopes). */
  self: Partial<Record<ControllerName, StatusRow>>;
  org_: Partial<Record<ControllerName, StatusRow>>;
  pins: Pins;
  /** Which controllers run; a dependency on a disabled one is skipped and noted. */
  enabled: ReadonlySet<ControllerName>;
  /** The reconciler's clock, read once per reconcile (ms). */
  now: number;
  /** Says when a redeploy may start (DESIGN §11); absent where nothing is gated (`plan`). */
  rollout?: RolloutGate;
}

/** A redeploy an owner wants to start. */
export interface RolloutRequest {
  owner: OwnerRef;
  orgId: string;
  /** A canary org, or a workspace of one. */
  canary: boolean;
  imageKind: 'tenant' | 'workspace';
  image: string;
  /** When its last redeploy to this image failed (ms), if it did. */
  failedAt?: number;
}

export type Admission =
  | { admitted: true }
  | { admitted: false; reason: string; message: string; retryAfterMs: number };

/**
 * The fleet-wide order of redeploys (canaries first, soak, in-flight limit, pause): asked by
 * the redeploy controller right before it would send a command. An admission holds a slot
 * until the controller's status records the command. An owner held back is woken when it may
 * go (a slot freed, the canaries done and soaked, a resume), not left to poll.
 */
export interface RolloutGate {
  admit(request: RolloutRequest): Promise<Admission>;
  /** What `admit` would answer now, without taking a slot. */
  preview(request: RolloutRequest): Promise<Admission>;
  /** An owner's command ended (seen by its reconcile, before the status row says so). */
  finished(owner: OwnerRef, ended: RolloutEnd): void;
}

/** How a redeploy command ended. */
export type RolloutEnd =
  | { image: string; outcome: 'done'; at: number }
  | { image: string; outcome: 'failed'; at: number; retryAt: number };

export interface Pins {
  ami(runtime: string, region: string): string | undefined;
  image(runtime: string): string | undefined;
}

/** What a controller saw of its resource. Observing never changes anything in the cloud. */
export interface Observation<R = unknown> {
  /** False only when the resource is confirmed absent; a failed read throws instead. */
  exists: boolean;
  /** When it exists: does it match the desired state? */
  upToDate: boolean;
  /** Human-readable differences, e.g. `ingress: extra tcp/22 from 0.0.0.0/0`. */
  diff: string[];
  /** Set while the resource is changing state by itself (instance pending): not ready, look again soon. */
  progressing?: string;
  /** The condition reason while progressing (default `Progressing`). */
  progressReason?: string;
  /** When to look again while progressing (default: the poll interval). */
  retryAfterMs?: number;
  /** Ids to record in status (instanceId, groupId, tunnelId…). */
  externalIds: Record<string, string>;
  /** Bookkeeping to persist in the status row (never a secret). */
  state?: Record<string, unknown>;
  /** Reason/message for the Ready condition when not the default. */
  readyCondition?: { reason: string; message: string };
  resource?: R;
}

export interface MutationResult {
  externalIds?: Record<string, string>;
  state?: Record<string, unknown>;
  /** What was done, for the audit trail (never a secret). */
  details?: Record<string, unknown>;
  /** The create found the resource already there (lost response, existing name) and took it over. */
  adopted?: boolean;
}

export interface DeleteResult {
  /** True once the resource is gone; false while it is still going away (poll again). */
  gone: boolean;
  details?: Record<string, unknown>;
  /**
   * While not gone: what the deletion waits for (the condition's reason and message, e.g.
   * `WaitingForDependents`) and when to look again; by default `Deleting`, at the poll interval.
   */
  waiting?: { reason: string; message: string; afterMs?: number };
  /** Bookkeeping to persist in the status row (e.g. since when a deletion waits). */
  state?: Record<string, unknown>;
}

/** Options each call receives. `assertLeader` must hold right before a mutating cloud call. */
export interface ActContext {
  assertLeader(): void;
  /** The status row as it was when this reconcile started. */
  status: StatusRow | undefined;
  /** The reconciler's clock (epoch ms); Date.now when absent. */
  now?: () => number;
}

export interface ObserveContext extends ActContext {
  view: CloudView;
  deleting: boolean;
  /** True during a periodic resync: expensive per-object reads may be budgeted. */
  resync: boolean;
  /** May this reconcile spend an extra per-object read (tunnel configuration, secret value)? */
  allowDeepCheck(): boolean;
}

/**
 * How to observe, create, update and delete one kind of resource, in the shape of crossplane's
 * ExternalClient. Ordering, status, audit, retries and metrics live in the reconciler.
 */
export interface Controller<D = unknown, R = unknown> {
  /** Computes the desired resource; throws TerminalError for a spec that cannot be honoured. */
  desired(input: DesiredInput): D;
  observe(desired: D, ctx: ObserveContext): Promise<Observation<R>>;
  /**
   * The idempotency token / deterministic name for the next create, recorded in the status row
   * before the call. `previous` is the token of the last create attempt.
   */
  createToken(desired: D, observation: Observation<R>, previous: string | undefined): string;
  create(desired: D, token: string, ctx: ActContext): Promise<MutationResult>;
  update(desired: D, observation: Observation<R>, ctx: ActContext): Promise<MutationResult>;
  delete(desired: D, observation: Observation<R>, ctx: ActContext): Promise<DeleteResult>;
}

export type AnyController = Controller<any, any>;

/** The observation of a resource confirmed absent. */
export const absent = (): Observation<never> => ({
  exists: false,
  upToDate: false,
  diff: [],
  externalIds: {},
});

/**
 * A deletion the provider refuses for now (a group still held by a terminated instance, a write
 * that does not see the object yet): not an error but a wait, with the reason as the condition.
 * It looks again less often the longer the wait lasts (a quarter of the time waited so far,
 * between `minMs` and `maxMs`), so a long linger costs a few calls, not a retry storm.
 */
export function waitToDelete(
  ctx: ActContext,
  wait: { reason: string; message: string },
  details?: Record<string, unknown>,
  minMs = 1_000,
  maxMs = 30_000,
): DeleteResult {
  const now = ctx.now?.() ?? Date.now();
  const recorded = (ctx.status?.state as { waitingSince?: { reason: string; at: string } } | undefined)
    ?.waitingSince;
  const since = recorded?.reason === wait.reason ? Date.parse(recorded.at) : now;
  const afterMs = Math.round(Math.min(maxMs, Math.max(minMs, (now - since) / 4)));
  return {
    gone: false,
    waiting: { ...wait, message: `${wait.message} (since ${new Date(since).toISOString()})`, afterMs },
    state: { waitingSince: { reason: wait.reason, at: new Date(since).toISOString() } },
    ...(details ? { details } : {}),
  };
}
