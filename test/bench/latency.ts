/**
 * Benchmark 2 — event latency (DESIGN §9): desired-row write → first cloud mutation.
 *
 * An idle operator with production settings (default client buckets, concurrency and poll
 * interval) and the HTTP API in one process; the simulator in another, at time scale 1 so its
 * call-log timestamps are wall-clock milliseconds (the offset between the two clocks is
 * measured and removed). ≥ 200 orgs are created through `POST /cp/orgs`, one at a time with a
 * random gap; for each, latency = the simulator's timestamp of the first mutating call that
 * names the org (CreateSecurityGroup `molecule-<env>-tenant-<orgId>`, tunnel
 * `molecule-<env>-<orgId>`) − the moment the client received the API's 201.
 *
 *   npx tsx test/bench/latency.ts [--creations 200] [--gap-ms 250] [--smoke] [--out DIR]
 */
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { buildApiServer } from '../../src/api/server.js';
import { benchArgs, log, runMain } from './lib/cli.js';
import { createBenchDatabase } from './lib/db.js';
import { cpuSeconds, percentile, round, sleep, until } from './lib/measure.js';
import { startRemoteSim } from './lib/remote-sim.js';
import { type BenchResult, publish, type ResultsFile } from './lib/results.js';
import {
  type BenchOperator,
  benchConfig,
  nullLogger,
  settleLeader,
  startBenchOperator,
} from './lib/stack.js';

const BENCH = 'latency';
const TARGET_P99_MS = 200;

async function main() {
  const args = benchArgs(['creations', 'gap-ms']);
  const creations = args.num('creations', 200, 20);
  const gapMs = args.num('gap-ms', 250, 100);
  const started = new Date();
  const t0 = performance.now();
  const sim = await startRemoteSim({ profile: 'fast', timeScale: 1 });
  const bdb = await createBenchDatabase(BENCH);
  let op: BenchOperator | undefined;
  const logger = nullLogger();
  try {
    const { database } = bdb;
    const config = benchConfig(sim);
    op = await startBenchOperator({ config, database, logger });
    await settleLeader(op.operator);
    const app = await buildApiServer({ config, database, metrics: op.metrics, logger });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const apiUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const post = (slug: string) =>
      fetch(`${apiUrl}/cp/orgs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${config.CP_ADMIN_API_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ slug }),
      });

    // Clock alignment: the simulator's now() against ours, by the midpoint of a round trip.
    const offsets: number[] = [];
    for (let i = 0; i < 20; i++) {
      const a = Date.now();
      const s = await sim.now();
      const b = Date.now();
      offsets.push(s - (a + b) / 2);
    }
    offsets.sort((x, y) => x - y);
    const offset = percentile(offsets, 50);
    const since = await sim.now();

    log(BENCH, `${creations} creations through POST /cp/orgs, ~${gapMs} ms apart`);
    const created: { id: string; at201: number }[] = [];
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    await post('warmup-org').then((r) => r.text()); // first request pays fastify/JIT warm-up
    for (let i = 0; i < creations; i++) {
      const res = await post(`lat-${i}`);
      const at201 = Date.now();
      if (res.status !== 201) throw new Error(`POST /cp/orgs answered ${res.status}: ${await res.text()}`);
      const body = (await res.json()) as { id: string };
      created.push({ id: body.id, at201 });
      await sleep(gapMs * (0.5 + Math.random()));
    }
    const first = new Map<string, { at: number; op: string }>();
    const firstByOp = new Map<string, Map<string, number>>();
    await until(
      async () => {
        const logRecs = await sim.callLog(since);
        for (const r of logRecs) {
          if (!r.mutating || !r.target) continue;
          const m = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/.exec(r.target);
          if (!m) continue;
          const id = m[1]!;
          const prev = first.get(id);
          if (!prev || r.at < prev.at) first.set(id, { at: r.at, op: `${r.service}:${r.operation}` });
          const byOp = firstByOp.get(r.operation) ?? new Map<string, number>();
          if (!byOp.has(id) || r.at < byOp.get(id)!) byOp.set(id, r.at);
          firstByOp.set(r.operation, byOp);
        }
        return created.every((c) => first.has(c.id));
      },
      60_000,
      200,
    );
    const cpuS = cpuSeconds(cpu0);
    const wallS = (performance.now() - w0) / 1000;

    const latencies = created.map((c) => first.get(c.id)!.at - offset - c.at201).sort((a, b) => a - b);
    const p50 = round(percentile(latencies, 50), 1);
    const p90 = round(percentile(latencies, 90), 1);
    const p99 = round(percentile(latencies, 99), 1);
    const max = round(latencies[latencies.length - 1]!, 1);
    const firstOps: Record<string, number> = {};
    for (const c of created) firstOps[first.get(c.id)!.op] = (firstOps[first.get(c.id)!.op] ?? 0) + 1;
    const perOperation: Record<string, { p50: number; p99: number; n: number }> = {};
    for (const [operation, byId] of firstByOp) {
      const l = created
        .filter((c) => byId.has(c.id))
        .map((c) => byId.get(c.id)! - offset - c.at201)
        .sort((a, b) => a - b);
      if (l.length > 0)
        perOperation[operation] = {
          n: l.length,
          p50: round(percentile(l, 50), 1),
          p99: round(percentile(l, 99), 1),
        };
    }
    await app.close();
    // Reconciles still waiting on the client budgets (Cloudflare's window) would hold an orderly
    // stop for minutes; the figures are taken, so do not wait for them.
    await Promise.race([op.stop(), sleep(2_000)]);
    op = undefined;

    // A poll-only design notices a change at the next resync: waits are uniform over the interval.
    const pollIntervalForP99Ms = round(Math.max(p99, 1) / 0.99, 0);
    const defaultResyncS = 300;
    const resync = readResync(args.out);
    const pollCallsPerS = resync ? round((resync.calls / pollIntervalForP99Ms) * 1000, 0) : undefined;
    const result: BenchResult = {
      name: BENCH,
      title: 'Event latency (write → first mutation)',
      command: `npx tsx test/bench/latency.ts --creations ${creations}`,
      startedAt: started.toISOString(),
      durationS: round((performance.now() - t0) / 1000, 1),
      params: { creations, gapMs, simProfile: 'fast', timeScale: 1, clockOffsetMs: round(offset, 2) },
      figures: [
        { figure: 'creations (POST /cp/orgs)', value: creations },
        { figure: 'p50', value: p50, unit: 'ms' },
        { figure: 'p99', value: p99, unit: 'ms', target: `≤ ${TARGET_P99_MS} ms`, met: p99 <= TARGET_P99_MS },
        { figure: 'max', value: max, unit: 'ms' },
        {
          figure: 'poll-only resync interval for the same p99',
          value: pollIntervalForP99Ms,
          unit: 'ms',
        },
        {
          figure: 'poll-only p99 at the default 5-min resync',
          value: round(defaultResyncS * 0.99, 0),
          unit: 's',
        },
      ],
      details: {
        latenciesMs: { p50, p90, p99, max, min: round(latencies[0]!, 1) },
        firstMutationBy: firstOps,
        perOperation,
        operatorCpuS: round(cpuS, 2),
        wallS: round(wallS, 1),
        operatorCpuShare: round(cpuS / wallS, 3),
        clockOffsetMs: {
          median: round(offset, 2),
          spread: round(offsets[offsets.length - 1]! - offsets[0]!, 2),
        },
        pollOnly: {
          intervalForSameP99Ms: pollIntervalForP99Ms,
          ...(resync ? { inventoryCallsPerResync: resync.calls, callsPerSecond: pollCallsPerS } : {}),
        },
      },
      notes: [
        'Operator with production settings (default client buckets, RECONCILE_CONCURRENCY ' +
          `${config.RECONCILE_CONCURRENCY}) and the API in one process, simulator in another at time scale 1; ` +
          `clock offset ${round(offset, 2)} ms removed. Creations ${gapMs} ms apart on average ` +
          `(uniform 0.5–1.5×); operator CPU share over the run ${round((cpuS / wallS) * 100, 0)} %.`,
        `First mutation by operation: ${Object.entries(firstOps)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}. Time to each operation's first call (p50/p99, over the owners it reached before ` +
          `the run ended): ${Object.entries(perOperation)
            .map(([k, v]) => `${k} ${v.p50}/${v.p99} ms (n=${v.n})`)
            .join(', ')}. Later steps wait on their dependencies and on the client budgets (RunInstances ` +
          '2/s), which a creation every ' +
          `${gapMs} ms outpaces: that is throughput, not reaction time.`,
        `A poll-only design waits for the next resync (uniform over the interval): matching p99 ${p99} ms needs a ` +
          `full resync every ${pollIntervalForP99Ms} ms` +
          (resync
            ? `, i.e. ${pollCallsPerS} cloud calls/s at the inventory's ${resync.calls} calls per resync ` +
              `(${resync.orgs} orgs) — against an EC2 describe budget of 20/s — or ${round(
                (resync.naive / pollIntervalForP99Ms) * 1000,
                0,
              ).toLocaleString('en-US')} calls/s observing owners one by one.`
            : '.') +
          ` At the default 5-minute resync a poll-only p99 is ≈ ${round(defaultResyncS * 0.99, 0)} s.`,
      ],
    };
    await publish(result, args.out);
    log(BENCH, JSON.stringify(result.figures.map((f) => [f.figure, f.value, f.met ?? ''])));
  } finally {
    if (op) await Promise.race([op.stop().catch(() => {}), sleep(2_000)]);
    await bdb.drop();
    await sim.close();
  }
}

/** The resync benchmark's figures from the same results file, when it ran. */
function readResync(dir: string): { calls: number; naive: number; orgs: number } | undefined {
  const file = join(dir, 'latest.json');
  if (!existsSync(file)) return undefined;
  const r = (JSON.parse(readFileSync(file, 'utf8')) as ResultsFile).results.resync;
  if (!r) return undefined;
  const d = r.details as { inventoryResync: { totalCalls: number }; naiveResync: { totalCalls: number } };
  return {
    calls: d.inventoryResync.totalCalls,
    naive: d.naiveResync.totalCalls,
    orgs: Number(r.params.orgs),
  };
}

runMain(BENCH, main);
