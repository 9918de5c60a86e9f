import { createHash } from 'node:crypto';
import type { ImageKind } from './images.js';

/**
 * The rollout planner (DESIGN §11): from the fleet's redeploy state and the policy, which owners
 * may start a redeploy now. Pure: the operator feeds it what the redeploy controller recorded,
 * the API and the metrics read the same answer.
 *
 * - Canary orgs (and their workspaces) first.
 * - Other owners of an image only once every canary owner wanting it has it (a stopped
 *   canary does not hold the rollout up) and ROLLOUT_CANARY_SOAK has passed since the last
 *   canary redeploy of it finished. Without canaries for an image there is nothing to wait for.
 * - At most ROLLOUT_MAX_IN_FLIGHT commands in flight at once, over every image.
 * - ROLLOUT_MAX_FAILURES owners whose redeploy of an image failed (since its last resume)
 *   pause that image: nothing more starts for it, retries included, until it is resumed.
 */

/** Where one owner stands with the image it should run. */
export type RolloutPhase = 'done' | 'pending' | 'in_flight' | 'failed' | 'stopped';

export const ROLLOUT_PHASES: readonly RolloutPhase[] = ['done', 'pending', 'in_flight', 'failed', 'stopped'];

export interface FleetMember {
  /** The owner's id (org or workspace). */
  id: string;
  /** A canary org, or a workspace of one. */
  canary: boolean;
  imageKind: ImageKind;
  /** The image it should run. */
  image: string;
  phase: RolloutPhase;
  /** When its last redeploy to `image` finished (ms); undefined when it has run it since launch. */
  doneAt?: number | undefined;
  /** When its last redeploy to `image` failed (ms), kept until one succeeds. */
  failedAt?: number | undefined;
  /** When that failed owner tries again (ms): until then it waits out its own backoff. */
  retryAt?: number | undefined;
}

export interface RolloutPolicy {
  soakMs: number;
  maxInFlight: number;
  maxFailures: number;
}

export interface Rollout {
  image: string;
  imageKind: ImageKind;
  /** Owners per phase. */
  counts: Record<RolloutPhase, number>;
  /** Owners whose redeploy of it failed since it was last resumed. */
  failures: number;
  paused: boolean;
  /** Where it is: `canary` (canaries redeploying), `soaking`, `rolling`, `paused` or `done`. */
  stage: 'canary' | 'soaking' | 'rolling' | 'paused' | 'done';
  /** When the canary soak ends (ms), while soaking. */
  soakEndsAt?: number;
}

/** Why an owner may not start now (a condition reason and message). */
export interface Hold {
  reason: 'RolloutPaused' | 'WaitingForCanaries' | 'CanarySoaking' | 'WaitingForRolloutSlot';
  message: string;
  /** When it is worth asking again (ms), when known. */
  until?: number;
}

export interface RolloutPlan {
  /** Owners that may start a redeploy now, in order. */
  admit: string[];
  /** Owners that need one but must wait, and why. */
  held: Map<string, Hold>;
  rollouts: Rollout[];
  inFlight: number;
}

/** Wants a redeploy: has not got the image, or its last try failed. */
const needs = (m: FleetMember) => m.phase === 'pending' || m.phase === 'failed';

export function planRollouts(
  fleet: readonly FleetMember[],
  policy: RolloutPolicy,
  now: number,
  /** When each image's rollout was last resumed (ms). */
  resumedAt: ReadonlyMap<string, number> = new Map(),
): RolloutPlan {
  const byImage = new Map<string, FleetMember[]>();
  for (const m of fleet) {
    const list = byImage.get(m.image);
    if (list) list.push(m);
    else byImage.set(m.image, [m]);
  }
  const held = new Map<string, Hold>();
  const rollouts: Rollout[] = [];
  /** Candidates per image once the image's own gates are open: canaries first. */
  const open: FleetMember[] = [];
  for (const [image, members] of [...byImage].sort(([a], [b]) => a.localeCompare(b))) {
    const counts = Object.fromEntries(ROLLOUT_PHASES.map((p) => [p, 0])) as Record<RolloutPhase, number>;
    for (const m of members) counts[m.phase]++;
    const since = resumedAt.get(image) ?? Number.NEGATIVE_INFINITY;
    const failures = members.filter((m) => m.failedAt !== undefined && m.failedAt > since).length;
    const paused = failures >= policy.maxFailures;
    const canaries = members.filter((m) => m.canary && m.phase !== 'stopped');
    const canariesDone = canaries.every((m) => m.phase === 'done');
    const lastCanary = Math.max(
      Number.NEGATIVE_INFINITY,
      ...canaries.map((m) => m.doneAt ?? Number.NEGATIVE_INFINITY),
    );
    const soakEndsAt = lastCanary + policy.soakMs;
    const soaked = canariesDone && soakEndsAt <= now;
    const waiting = members.filter(needs);
    const stage: Rollout['stage'] = paused
      ? 'paused'
      : waiting.length === 0 && counts.in_flight === 0
        ? 'done'
        : !canariesDone
          ? 'canary'
          : !soaked
            ? 'soaking'
            : 'rolling';
    rollouts.push({
      image,
      imageKind: members[0]!.imageKind,
      counts,
      failures,
      paused,
      stage,
      ...(stage === 'soaking' ? { soakEndsAt } : {}),
    });
    for (const m of waiting.sort(byId)) {
      if (paused) {
        held.set(m.id, {
          reason: 'RolloutPaused',
          message: `the rollout of ${image} is paused after ${failures} failed redeploys: POST /cp/admin/rollouts/resume`,
        });
      } else if (m.phase === 'failed' && m.retryAt !== undefined && m.retryAt > now) {
        // Backing off after its failure (its own condition says so): it takes no slot meanwhile.
      } else if (m.canary || soaked) open.push(m);
      else if (!canariesDone)
        held.set(m.id, {
          reason: 'WaitingForCanaries',
          message: `waiting for ${canaries.filter((c) => c.phase !== 'done').length} canary redeploy(s) of ${image}`,
        });
      else
        held.set(m.id, {
          reason: 'CanarySoaking',
          message: `canaries run ${image}; the soak ends at ${new Date(soakEndsAt).toISOString()}`,
          until: soakEndsAt,
        });
    }
  }
  const inFlight = fleet.filter((m) => m.phase === 'in_flight').length;
  const admit: string[] = [];
  let slots = Math.max(0, policy.maxInFlight - inFlight);
  // Canaries of every image before anyone else.
  for (const m of [...open.filter((m) => m.canary), ...open.filter((m) => !m.canary)]) {
    if (slots > 0) {
      admit.push(m.id);
      slots--;
    } else
      held.set(m.id, {
        reason: 'WaitingForRolloutSlot',
        message: `${policy.maxInFlight} redeploys are in flight (ROLLOUT_MAX_IN_FLIGHT)`,
      });
  }
  return { admit, held, rollouts, inFlight };
}

const byId = (a: FleetMember, b: FleetMember) => a.id.localeCompare(b.id);

/**
 * What the redeploy controller keeps in its status row (`state`), and what the planner, the
 * API and the metrics read back. Never a secret.
 */
export interface RedeployRecord {
  /** The owner's instance's `Image` tag when last observed. */
  image?: string;
  /** The instance was stopped when last observed. */
  stopped?: boolean;
  /** The last redeploy that succeeded. */
  deployed?: { generation: number; image: string; at: string };
  /** The redeploy under way: its command once sent. */
  attempt?: {
    image: string;
    generation: number;
    try: number;
    commandId?: string;
    instanceId?: string;
    sentAt?: string;
  } | null;
  /** The last failed try of the redeploy under way, kept until one succeeds. */
  failure?: {
    image: string;
    generation: number;
    try: number;
    status: string;
    responseCode: number;
    stderrTail: string;
    at: string;
    retryAt: string;
  } | null;
  /** The comment of the next command to send (the create token). */
  nextComment?: string | null;
  /** Why the running instance differs from a new launch (`Outdated`), if it does. */
  outdated?: 'AMIChanged' | 'BootScriptChanged' | null;
}

/** Where an owner stands, from its record and what it should run. */
export function phaseOf(
  record: RedeployRecord | undefined,
  want: { image: string; generation: number },
): Pick<FleetMember, 'phase' | 'doneAt' | 'failedAt' | 'retryAt'> {
  const failure = record?.failure && record.failure.image === want.image ? record.failure : undefined;
  const failedAt = failure ? Date.parse(failure.at) : undefined;
  if (record?.attempt?.commandId) return { phase: 'in_flight', failedAt };
  if (isDone(record, want))
    return {
      phase: 'done',
      doneAt: record?.deployed?.image === want.image ? Date.parse(record.deployed.at) : undefined,
    };
  if (record?.stopped) return { phase: 'stopped', failedAt };
  if (failedAt === undefined) return { phase: 'pending' };
  return { phase: 'failed', failedAt, retryAt: Date.parse(failure!.retryAt) };
}

/** Runs the image, and has pulled it since the last explicit redeploy request. */
export function isDone(
  record: Pick<RedeployRecord, 'image' | 'deployed'> | undefined,
  want: { image: string; generation: number },
): boolean {
  return record?.image === want.image && (record.deployed?.generation ?? 0) >= want.generation;
}

/** SSM's limit on a command's comment. */
const COMMENT_MAX = 100;

/**
 * The comment of a redeploy command: owner, redeploy generation, try and image, so a restart
 * finds a command it sent but did not record (DESIGN §11). An image too long to fit is named by
 * its last path segment and a hash of the whole reference.
 */
export function redeployComment(ownerId: string, generation: number, attempt: number, image: string): string {
  const head = `redeploy ${ownerId} g${generation}.${attempt} `;
  if (head.length + image.length <= COMMENT_MAX) return head + image;
  const hash = createHash('sha256').update(image).digest('hex').slice(0, 8);
  const room = COMMENT_MAX - head.length - hash.length - 1;
  const tail = image.slice(image.lastIndexOf('/') + 1).slice(-room);
  return `${head}${tail}#${hash}`;
}
