import { readdirSync, readFileSync } from 'node:fs';
import type { CallCount, CallRecord } from '../../../src/sim/index.js';

/** CPU seconds (user + system) of this process since `since`. */
export function cpuSeconds(since?: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
}

/** USER_HZ: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS_PER_S = 100;

/**
 * CPU seconds (user + system) this process's threads named `name` have used in their lives, from
 * /proc (Linux; 0 elsewhere). The bench uses it to leave the V8 profiler's own thread
 * (`v8:ProfEvntProc`, started with each profile) out of the operator's figure.
 */
export function threadCpuSeconds(name: string): number {
  let ticks = 0;
  let tasks: string[];
  try {
    tasks = readdirSync('/proc/self/task');
  } catch {
    return 0;
  }
  for (const task of tasks) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${task}/stat`, 'utf8');
    } catch {
      continue; // the thread ended between the listing and the read
    }
    const close = stat.lastIndexOf(')');
    if (stat.slice(stat.indexOf('(') + 1, close) !== name) continue;
    // Fields after the name: state is the 1st, utime the 12th, stime the 13th (proc(5)).
    const fields = stat.slice(close + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / CLOCK_TICKS_PER_S;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export const round = (x: number, digits = 2): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** Calls made between two `sim.calls()` snapshots, by `<service>:<operation>` (all statuses). */
export function callDelta(before: CallCount[], after: CallCount[]): Record<string, number> {
  const key = (c: CallCount) => `${c.service}:${c.operation}`;
  const out: Record<string, number> = {};
  for (const c of after) out[key(c)] = (out[key(c)] ?? 0) + c.count;
  for (const c of before) out[key(c)] = (out[key(c)] ?? 0) - c.count;
  for (const k of Object.keys(out)) if (out[k] === 0) delete out[k];
  return Object.fromEntries(Object.entries(out).sort((a, b) => b[1] - a[1]));
}

export const total = (byOp: Record<string, number>): number => Object.values(byOp).reduce((a, b) => a + b, 0);

/** Mutating calls in a call log, by operation. */
export function mutatingByOp(log: CallRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of log)
    if (r.mutating) out[`${r.service}:${r.operation}`] = (out[`${r.service}:${r.operation}`] ?? 0) + 1;
  return out;
}

/**
 * This process's peak RSS so far, as the kernel keeps it (getrusage's high-water mark): exact,
 * where sampling misses what rises and falls between samples, and free (a sampler reading
 * /proc every few milliseconds cost the measured process several percent of its CPU).
 */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(
  check: () => Promise<T | undefined | false>,
  timeoutMs: number,
  everyMs = 100,
) {
  const start = Date.now();
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}
