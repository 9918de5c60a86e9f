/**
 * CPU of one measured resync split by phase, from a V8 CPU profile of it (scale.ts): each
 * sample is charged to the phase of the nearest frame on its stack that belongs to one, so a
 * row decoded inside a pg callback is `database` and an instance decoded from an EC2 page is
 * `listing`, whichever reconcile or batch was waiting for it. The garbage collector is its own
 * phase (its cost is what the others allocate); `other` is every sampled millisecond left
 * (promise and timer plumbing, the event loop, metrics), idle time excluded.
 */

/** The phases, in the order they are reported. */
export const PHASES = ['listing', 'database', 'reconcile', 'gc', 'other'] as const;
export type Phase = (typeof PHASES)[number];

/** A `.cpuprofile` as the inspector returns it (the fields read here). */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives → its phase (first match wins); unmatched frames say nothing. */
const RULES: [RegExp, Phase][] = [
  // Cloud listings and calls: our ports and inventory, the SDKs, HTTP.
  [/\/src\/cloud\/|@aws-sdk|@smithy|\/cloudflare\/|undici|node:_http|node:https|node:tls/, 'listing'],
  [/\/src\/db\/|\/pg\/|pg-protocol|pg-pool|drizzle-orm/, 'database'],
  [/\/src\/runtime\/|\/controllers\/|\/src\/provisioning\//, 'reconcile'],
];

function phaseOfUrl(url: string): Phase | undefined {
  for (const [re, phase] of RULES) if (re.test(url)) return phase;
  return undefined;
}

/** Milliseconds of sampled CPU per phase (idle time left out). */
export function cpuByPhase(profile: CpuProfile): Record<Phase, number> {
  const parent = new Map<number, number>();
  const byId = new Map<number, CpuProfile['nodes'][number]>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const phaseOf = new Map<number, Phase | 'idle'>();
  const resolve = (id: number): Phase | 'idle' => {
    const known = phaseOf.get(id);
    if (known) return known;
    const frame = byId.get(id)!.callFrame;
    let phase: Phase | 'idle' | undefined;
    if (frame.functionName === '(idle)') phase = 'idle';
    else if (frame.functionName === '(garbage collector)') phase = 'gc';
    else phase = phaseOfUrl(frame.url);
    if (!phase) {
      const up = parent.get(id);
      phase = up === undefined ? 'other' : resolve(up);
    }
    phaseOf.set(id, phase);
    return phase;
  };
  const out: Record<Phase, number> = { listing: 0, database: 0, reconcile: 0, gc: 0, other: 0 };
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const phase = resolve(samples[i]!);
    // A sample's time is the interval until the next one.
    const dt = timeDeltas[i + 1] ?? 0;
    if (phase !== 'idle') out[phase] += dt / 1000;
  }
  return out;
}

/**
 * The measured CPU seconds of a resync split in proportion to its sampled phases (the process's
 * CPU also counts threads the profile does not sample: it is spread like the main thread's).
 */
export function splitCpu(cpuS: number, sampledMs: Record<Phase, number>): Record<Phase, number> {
  const sampled = PHASES.reduce((n, p) => n + sampledMs[p], 0);
  const out = {} as Record<Phase, number>;
  for (const p of PHASES)
    out[p] = sampled > 0 ? Math.round((cpuS * sampledMs[p] * 1000) / sampled) / 1000 : 0;
  return out;
}
