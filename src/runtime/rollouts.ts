import type { Config } from '../config.js';
import type { RolloutRepository, RolloutRow } from '../db/rollouts.js';
import { desiredImage } from '../provisioning/images.js';
import {
  type FleetMember,
  phaseOf,
  planRollouts,
  type RolloutPlan,
  type RolloutPolicy,
} from '../provisioning/rollout.js';
import type { Clock } from './clock.js';
import type { Admission, Pins, RolloutGate, RolloutRequest } from './controller.js';

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

/** An admission not yet seen in the records is dropped after this long (its reconcile died). */
const RESERVATION_MS = 120_000;

/**
 * The rollout gate of a running operator: the planner over the fleet as recorded (re-read at
 * most every `maxAgeMs`), plus the admissions it gave that the records do not show yet, so the
 * in-flight limit holds while commands are being sent. Admissions are decided one at a time.
 */
export class RolloutCoordinator implements RolloutGate {
  private snapshot: Snapshot | undefined;
  private readonly reserved = new Map<string, { image: string; at: number }>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly source: RolloutSource,
    private readonly policy: RolloutPolicy,
    private readonly clock: Clock,
    private readonly options: {
      maxAgeMs?: number;
      retryMs?: number;
      onPlan?: (plan: RolloutPlan) => void;
    } = {},
  ) {}

  admit(request: RolloutRequest): Promise<Admission> {
    return this.serial(async () => {
      const snap = await this.fresh(false);
      const now = this.clock.now();
      const plan = planRollouts(this.overlay(snap.fleet, request), this.policy, now, snap.resumes);
      const retryMs = this.options.retryMs ?? 5_000;
      if (plan.admit.includes(request.owner.id)) {
        this.reserved.set(request.owner.id, { image: request.image, at: now });
        return { admitted: true };
      }
      const hold = plan.held.get(request.owner.id) ?? {
        reason: 'WaitingForRolloutSlot' as const,
        message: 'waiting for the rollout',
      };
      const until = 'until' in hold && hold.until !== undefined ? hold.until - now : retryMs;
      return {
        admitted: false,
        reason: hold.reason,
        message: hold.message,
        retryAfterMs: Math.max(100, Math.min(retryMs, until)),
      };
    });
  }

  /** The plan over freshly read records (metrics, the periodic refresh). */
  refresh(): Promise<RolloutPlan> {
    return this.serial(async () => {
      const snap = await this.fresh(true);
      return planRollouts(this.overlay(snap.fleet), this.policy, this.clock.now(), snap.resumes);
    });
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
    this.options.onPlan?.(planRollouts(this.overlay(fleet), this.policy, now, resumes));
    return this.snapshot;
  }

  /** The records, with admissions given since counted in flight and the asking owner as it sees itself. */
  private overlay(fleet: FleetMember[], request?: RolloutRequest): FleetMember[] {
    const out: FleetMember[] = [];
    for (const m of fleet) {
      if (m.id === request?.owner.id) continue;
      const r = this.reserved.get(m.id);
      out.push(
        r && r.image === m.image && (m.phase === 'pending' || m.phase === 'failed')
          ? { ...m, phase: 'in_flight' }
          : m,
      );
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
