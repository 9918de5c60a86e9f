import type { Config } from '../config.js';
import type { OwnerRef } from '../db/desired.js';
import type { RolloutRepository, RolloutRow } from '../db/rollouts.js';
import { desiredImage } from '../provisioning/images.js';
import {
  type FleetMember,
  phaseOf,
  planRollouts,
  type RolloutPlan,
  type RolloutPolicy,
} from '../provisioning/rollout.js';
import type { Clock, Timer } from './clock.js';
import type { Admission, Pins, RolloutEnd, RolloutGate, RolloutRequest } from './controller.js';

/** The policy from the configuration. */
export const rolloutPolicy = (config: Config): RolloutPolicy => ({
  soakMs: config.ROLLOUT_CANARY_SOAK,
  maxInFlight: config.ROLLOUT_MAX_IN_FLIGHT,
  maxFailures: config.ROLLOUT_MAX_FAILURES,
});

/** The fleet members of the recorded rows: owners without an image (nothing to redeploy) are left out. */
export function fleetOf(
  rows: readonly RolloutRow[],
  config: Pick<Config, 'TENANT_IMAGE' | 'CANARY_TENANT_IMAGE'>,
  pins: Pick<Pins, 'image'>,
): FleetMember[] {
  const out: FleetMember[] = [];
  for (const r of rows) {
    const image = desiredImage(
      config,
      pins,
      { isCanary: r.canary },
      r.runtime === null ? undefined : { runtime: r.runtime },
    );
    if (!image) continue;
    out.push({
      id: r.ownerId,
      canary: r.canary,
      imageKind: r.ownerKind === 'org' ? 'tenant' : 'workspace',
      image,
      ...phaseOf(r.record, { image, generation: r.redeployGeneration }),
    });
  }
  return out;
}

export interface RolloutSource {
  /** The fleet as recorded now, and when each image was last resumed. */
  load(): Promise<{ fleet: FleetMember[]; resumes: Map<string, number> }>;
}

interface Snapshot {
  at: number;
  fleet: FleetMember[];
  resumes: Map<string, number>;
}

/** An admission or an ended command not yet seen in the records is dropped after this long. */
const RESERVATION_MS = 120_000;
/**
 * How long a held owner waits before asking again when nothing wakes it. Only a safety net (it
 * is woken when it may go, and the periodic refresh wakes whom the plan admits): a held owner's
 * look costs a cloud read, and a rollout of 1,000 tenants holds ~1,000 of them.
 */
const DEFAULT_RECHECK_MS = 10 * 60_000;

export interface RolloutCoordinatorOptions {
  /** Records younger than this are reused by an admission (default 1 s). */
  maxAgeMs?: number;
  /** How long a held owner waits before asking again when nothing wakes it (default 10 min). */
  recheckMs?: number;
  /** Queues owners that may start now (the redeploy controller's reconcile, as an event). */
  wake?: (owners: OwnerRef[]) => void;
  onPlan?: (plan: RolloutPlan) => void;
}

/**
 * The rollout gate of a running operator: the planner over the fleet as recorded (re-read at
 * most every `maxAgeMs`), plus what its owners told it that the records do not show yet: the
 * admissions it gave (so the in-flight limit holds while commands are being sent) and the
 * commands that ended (so the next wave starts at once). Admissions are decided one at a time.
 *
 * Owners it holds back are not polled: whenever a command ends, the soak ends, or a rollout is
 * resumed, it plans again and wakes the owners that may start now. At 1,000 tenants a rollout
 * is ~1,000 owners waiting for slots; re-checking each every second cost a cloud read each and
 * kept the work queue too busy to hand out the pin's events.
 */
export class RolloutCoordinator implements RolloutGate {
  private snapshot: Snapshot | undefined;
  private readonly reserved = new Map<string, { image: string; at: number }>();
  private readonly ended = new Map<string, RolloutEnd>();
  /**
   * Owners held back, by id, with the reason they were given: woken when the plan admits them,
   * or holds them for another reason (their condition would be stale: canaries done, soaking).
   */
  private readonly held = new Map<string, { owner: OwnerRef; reason: string }>();
  private queue: Promise<unknown> = Promise.resolve();
  private replanQueued = false;
  private timer: { at: number; handle: Timer } | undefined;
  private closed = false;

  constructor(
    private readonly source: RolloutSource,
    private readonly policy: RolloutPolicy,
    private readonly clock: Clock,
    private readonly options: RolloutCoordinatorOptions = {},
  ) {}

  admit(request: RolloutRequest): Promise<Admission> {
    return this.serial(() => this.ask(request, true));
  }

  /** What {@link admit} would answer now, reserving no slot (`plan`, and a look before a describe). */
  preview(request: RolloutRequest): Promise<Admission> {
    return this.serial(() => this.ask(request, false));
  }

  private async ask(request: RolloutRequest, reserve: boolean): Promise<Admission> {
    const snap = await this.fresh(false);
    const now = this.clock.now();
    const plan = planRollouts(this.overlay(snap.fleet, request), this.policy, now, snap.resumes);
    const id = request.owner.id;
    if (plan.admit.includes(id)) {
      if (reserve) {
        this.held.delete(id);
        this.reserved.set(id, { image: request.image, at: now });
      }
      return { admitted: true };
    }
    const hold = plan.held.get(id) ?? {
      reason: 'WaitingForRolloutSlot' as const,
      message: 'waiting for the rollout',
    };
    this.held.set(id, { owner: request.owner, reason: hold.reason });
    if (hold.until !== undefined) this.wakeAt(hold.until);
    const recheck = this.options.recheckMs ?? DEFAULT_RECHECK_MS;
    const until = hold.until === undefined ? recheck : hold.until - now;
    return {
      admitted: false,
      reason: hold.reason,
      message: hold.message,
      retryAfterMs: Math.max(100, Math.min(recheck, until)),
    };
  }

  finished(owner: OwnerRef, end: RolloutEnd): void {
    this.ended.set(owner.id, end);
    this.replan(false);
  }

  /** A rollout was resumed (or the records changed behind its back): plan on fresh records. */
  resumed(): void {
    this.replan(true);
  }

  /** The plan over freshly read records (metrics, the periodic refresh); wakes whom it admits. */
  refresh(): Promise<RolloutPlan> {
    return this.serial(async () => this.planAndWake(await this.fresh(true)));
  }

  /** Stops its timer and wakes no one any more (the operator stops). */
  close(): void {
    this.closed = true;
    if (this.timer) this.clock.clearTimeout(this.timer.handle);
    this.timer = undefined;
  }

  private replan(force: boolean): void {
    if (this.closed || (this.replanQueued && !force)) return;
    this.replanQueued = true;
    void this.serial(async () => {
      this.replanQueued = false;
      if (!this.closed) this.planAndWake(await this.fresh(force));
    }).catch(() => {
      // The records could not be read: the held owners ask again after `recheckMs`.
    });
  }

  /** Plans, wakes the owners it admits, and sets the timer for the next hold that ends by itself. */
  private planAndWake(snap: Snapshot): RolloutPlan {
    const now = this.clock.now();
    const plan = planRollouts(this.overlay(snap.fleet), this.policy, now, snap.resumes);
    if (this.closed) return plan;
    const kindOf = new Map(snap.fleet.map((m) => [m.id, m.imageKind]));
    const wake: OwnerRef[] = [];
    for (const id of plan.admit) {
      const owner = this.held.get(id)?.owner ?? ownerRef(id, kindOf.get(id));
      this.held.delete(id);
      if (owner) wake.push(owner);
    }
    for (const [id, h] of this.held) {
      const hold = plan.held.get(id);
      if (!hold)
        this.held.delete(id); // done, in flight or backing off: no longer ours to wake
      else if (hold.reason !== h.reason) {
        h.reason = hold.reason;
        wake.push(h.owner);
      }
    }
    if (wake.length > 0) this.options.wake?.(wake);
    let next = Number.POSITIVE_INFINITY;
    for (const hold of plan.held.values())
      if (hold.until !== undefined && hold.until < next) next = hold.until;
    if (Number.isFinite(next)) this.wakeAt(next);
    return plan;
  }

  /** Plans again at `at` (ms), unless an earlier plan is already due. */
  private wakeAt(at: number): void {
    if (this.closed || (this.timer && this.timer.at <= at && this.timer.at > this.clock.now())) return;
    if (this.timer) this.clock.clearTimeout(this.timer.handle);
    const handle = this.clock.setTimeout(
      () => {
        this.timer = undefined;
        this.replan(false);
      },
      Math.max(0, at - this.clock.now()),
    );
    this.timer = { at, handle };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private async fresh(force: boolean): Promise<Snapshot> {
    const now = this.clock.now();
    if (!force && this.snapshot && now - this.snapshot.at < (this.options.maxAgeMs ?? 1_000))
      return this.snapshot;
    const { fleet, resumes } = await this.source.load();
    this.snapshot = { at: now, fleet, resumes };
    const byId = new Map(fleet.map((m) => [m.id, m]));
    for (const [id, r] of this.reserved) {
      const m = byId.get(id);
      const recorded = m && m.image === r.image && (m.phase === 'in_flight' || m.phase === 'done');
      if (recorded || !m || now - r.at > RESERVATION_MS) this.reserved.delete(id);
    }
    for (const [id, e] of this.ended)
      if (!this.endedShows(byId.get(id), e) || now - e.at > RESERVATION_MS) this.ended.delete(id);
    this.options.onPlan?.(planRollouts(this.overlay(fleet), this.policy, now, resumes));
    return this.snapshot;
  }

  /**
   * Whether an ended command is news to the records: they still show it in flight, or show no
   * command yet while its admission is reserved (records read before the send was recorded).
   */
  private endedShows(m: FleetMember | undefined, e: RolloutEnd): boolean {
    if (!m || m.image !== e.image) return false;
    if (m.phase === 'in_flight') return true;
    const r = this.reserved.get(m.id);
    return r !== undefined && r.image === m.image && (m.phase === 'pending' || m.phase === 'failed');
  }

  /**
   * The records, with admissions given since counted in flight, commands that ended since as
   * ended, and the asking owner as it sees itself.
   */
  private overlay(fleet: FleetMember[], request?: RolloutRequest): FleetMember[] {
    const out: FleetMember[] = [];
    for (const m of fleet) {
      if (m.id === request?.owner.id) continue;
      const r = this.reserved.get(m.id);
      const e = this.ended.get(m.id);
      if (e && this.endedShows(m, e))
        out.push(
          e.outcome === 'done'
            ? { ...m, phase: 'done', doneAt: e.at, failedAt: undefined, retryAt: undefined }
            : { ...m, phase: 'failed', failedAt: e.at, retryAt: e.retryAt },
        );
      else if (r && r.image === m.image && (m.phase === 'pending' || m.phase === 'failed'))
        out.push({ ...m, phase: 'in_flight' });
      else out.push(m);
    }
    if (request)
      out.push({
        id: request.owner.id,
        canary: request.canary,
        imageKind: request.imageKind,
        image: request.image,
        phase: request.failedAt === undefined ? 'pending' : 'failed',
        failedAt: request.failedAt,
      });
    return out;
  }
}

/** The owner of a fleet member: an org runs the tenant image, a workspace its runtime's. */
const ownerRef = (id: string, kind: FleetMember['imageKind'] | undefined): OwnerRef | undefined =>
  kind === undefined ? undefined : { kind: kind === 'tenant' ? 'org' : 'workspace', id };

/** The rollouts as the API and the CLI show them: per image, with the failed owners' conditions. */
export async function loadRollouts(
  repo: RolloutRepository,
  pins: { get(): Pins | Promise<Pins> },
  config: Config,
  now: number,
  /** The redeploy controller's name, as its status rows carry it (from the registry). */
  controller: string,
) {
  const [rows, resumes, current] = await Promise.all([repo.fleet(controller), repo.resumes(), pins.get()]);
  const fleet = fleetOf(rows, config, current);
  const policy = rolloutPolicy(config);
  const plan = planRollouts(fleet, policy, now, resumes);
  const memberOf = new Map(fleet.map((m) => [m.id, m]));
  return {
    policy: {
      canarySoakSeconds: policy.soakMs / 1000,
      maxInFlight: policy.maxInFlight,
      maxFailures: policy.maxFailures,
    },
    inFlight: plan.inFlight,
    rollouts: plan.rollouts.map((r) => ({
      image: r.image,
      imageKind: r.imageKind,
      stage: r.stage,
      paused: r.paused,
      failures: r.failures,
      counts: r.counts,
      soakEndsAt: r.soakEndsAt === undefined ? null : new Date(r.soakEndsAt).toISOString(),
      resumedAt: resumes.has(r.image) ? new Date(resumes.get(r.image)!).toISOString() : null,
      failed: rows
        .filter((row) => {
          const m = memberOf.get(row.ownerId);
          return m?.image === r.image && m.failedAt !== undefined;
        })
        .slice(0, 50)
        .map((row) => ({
          ownerKind: row.ownerKind,
          ownerId: row.ownerId,
          orgId: row.orgId,
          reason: row.reason,
          message: row.message,
        })),
    })),
  };
}

export type RolloutsReport = Awaited<ReturnType<typeof loadRollouts>>;
