/**
 * Benchmark 3 — cold convergence under realistic limits (DESIGN §9).
 *
 * The simulator in its `realistic` profile (AWS per-action token buckets and Cloudflare's
 * bucket enforced, 5 ms latency, 15–20 s instance transitions), time-scaled by S so a run takes
 * a minute or two. The operator runs in real time, so everything of it that stands for a rate
 * or a duration is scaled by the same S: its client-side buckets refill S× faster (capacity
 * unchanged), its poll interval, create grace and error backoff are S× shorter. N orgs × 3
 * workspaces are written at once (as one API transaction would) to an idle operator; the
 * clock runs until every status row is Ready.
 *
 * Figures, all in simulated time: total time against the token-bucket lower bound of the calls
 * that were made (per simulator bucket: (accepted calls − capacity) / refill; the RunInstances
 * bucket also pays the last instance's boot), throttled responses as a share of all calls,
 * and duplicates from the simulator's own state (exactly one live instance / SG per owner,
 * one secret / tunnel / DNS record per org).
 *
 *   npx tsx test/bench/convergence.ts [--orgs 100] [--time-scale 3] [--smoke] [--out DIR]
 */

import type { BucketSpec } from '../../src/sim/index.js';
import {
  type CallCount,
  CLOUDFLARE_BUCKET,
  DURATIONS,
  EC2_BUCKETS,
  SECRETS_MANAGER_BUCKETS,
  TAGGING_BUCKETS,
} from '../../src/sim/index.js';
import { benchArgs, log, runMain } from './lib/cli.js';
import { createBenchDatabase } from './lib/db.js';
import { checkDuplicates, createFleet, expectedStatusRows, readyRows } from './lib/fleet.js';
import { cpuSeconds, round, until } from './lib/measure.js';
import { startRemoteSim } from './lib/remote-sim.js';
import { type BenchResult, publish } from './lib/results.js';
import {
  type BenchOperator,
  benchConfig,
  scaledBuckets,
  settleLeader,
  startBenchOperator,
} from './lib/stack.js';

const BENCH = 'convergence';

const EC2_OWN = new Set(['RunInstances', 'StartInstances', 'TerminateInstances', 'CreateTags', 'DeleteTags']);
const EC2_INTENSIVE = new Set([
  'AuthorizeSecurityGroupIngress',
  'AuthorizeSecurityGroupEgress',
  'RevokeSecurityGroupIngress',
  'RevokeSecurityGroupEgress',
]);

/**
 * The simulator bucket a call draws from (src/sim/ec2.ts ec2Bucket, secrets.ts bucketFor,
 * tagging, cloudflare). The operator's describes are always filtered and paginated.
 */
function simBucket(service: string, operation: string): { key: string; spec: BucketSpec } {
  if (service === 'ec2') {
    if (EC2_OWN.has(operation))
      return { key: `ec2:${operation}`, spec: EC2_BUCKETS[operation as keyof typeof EC2_BUCKETS] };
    if (EC2_INTENSIVE.has(operation)) return { key: `ec2:${operation}`, spec: EC2_BUCKETS.resourceIntensive };
    if (operation.startsWith('Describe')) return { key: `ec2:${operation}`, spec: EC2_BUCKETS.nonMutating };
    return { key: `ec2:${operation}`, spec: EC2_BUCKETS.mutating };
  }
  if (service === 'secretsmanager') {
    if (operation === 'GetSecretValue' || operation === 'DescribeSecret')
      return { key: 'secretsmanager:read', spec: SECRETS_MANAGER_BUCKETS.read };
    if (operation === 'ListSecrets')
      return { key: 'secretsmanager:ListSecrets', spec: SECRETS_MANAGER_BUCKETS.ListSecrets };
    return { key: `secretsmanager:${operation}`, spec: SECRETS_MANAGER_BUCKETS.write };
  }
  if (service === 'tagging') return { key: 'tagging:GetResources', spec: TAGGING_BUCKETS.GetResources };
  return { key: 'cloudflare', spec: CLOUDFLARE_BUCKET };
}

/** Throttle answers: EC2 503 RequestLimitExceeded, Cloudflare 429, SM/Tagging 400 (see note). */
function isThrottle(c: CallCount): boolean {
  if (c.service === 'ec2') return c.status === 503;
  if (c.service === 'cloudflare') return c.status === 429;
  return c.status === 400;
}

async function main() {
  const args = benchArgs(['orgs', 'time-scale', 'concurrency']);
  const orgs = args.num('orgs', 100, 5);
  const scale = args.num('time-scale', 3, 20);
  const started = new Date();
  const t0 = performance.now();
  const sim = await startRemoteSim({ profile: 'realistic', timeScale: scale });
  const bdb = await createBenchDatabase(BENCH);
  let op: BenchOperator | undefined;
  try {
    const { database } = bdb;
    const ms = (realMs: number) => `${Math.max(1, Math.round(realMs / scale))}ms`;
    const config = benchConfig(sim, {
      CREATE_GRACE: ms(30_000),
      ...(args.values.concurrency ? { RECONCILE_CONCURRENCY: String(args.values.concurrency) } : {}),
    });
    op = await startBenchOperator({
      config,
      database,
      buckets: scaledBuckets(scale),
      manager: {
        pollIntervalMs: Math.max(1, Math.round(2_000 / scale)),
        backoff: {
          baseDelayMs: Math.max(1, Math.round(500 / scale)),
          maxDelayMs: Math.round(300_000 / scale),
        },
      },
    });
    await settleLeader(op.operator);
    await sim.resetCalls();

    log(BENCH, `${orgs} orgs × 3 workspaces, realistic simulator at ×${scale}`);
    const simStart = await sim.now();
    const cpu0 = process.cpuUsage();
    const fleet = await createFleet(database, orgs);
    const expected = expectedStatusRows(fleet.orgIds.length, fleet.workspaceIds.length);
    let lastLog = 0;
    await until(
      async () => {
        const r = await readyRows(database);
        if (Date.now() - lastLog > 15_000) {
          lastLog = Date.now();
          log(BENCH, `${r.ready}/${expected} status rows ready`);
        }
        return r.ready === expected;
      },
      3_600_000,
      20,
    );
    const cpuS = cpuSeconds(cpu0);
    // Start and end by the database's clock: the fleet's commit, the last status row turning Ready.
    const [span] = await database.query<{ seconds: number }>(
      `SELECT extract(epoch FROM (SELECT max(updated_at) FROM reconcile_status) - (SELECT min(created_at) FROM orgs))::float8 AS seconds`,
    );
    const realS = span!.seconds;
    const simS = realS * scale;
    await op.operator.manager.idle();
    await op.stop();
    op = undefined;

    const calls = await sim.calls();
    // Where the time went (simulated seconds since the fleet was written), from the call log.
    const logRecs = await sim.callLog(simStart);
    const at = (op: string, pick: 'first' | 'last') => {
      const ts = logRecs.filter((r) => r.operation === op && r.status < 300).map((r) => r.at);
      if (ts.length === 0) return undefined;
      return round(((pick === 'first' ? Math.min(...ts) : Math.max(...ts)) - simStart) / 1000, 1);
    };
    const timeline = {
      firstCreateSecurityGroup: at('CreateSecurityGroup', 'first'),
      lastAuthorizeIngress: at('AuthorizeSecurityGroupIngress', 'last'),
      firstCreateSecret: at('CreateSecret', 'first'),
      lastCreateSecret: at('CreateSecret', 'last'),
      firstRunInstances: at('RunInstances', 'first'),
      lastRunInstances: at('RunInstances', 'last'),
      lastDescribeInstances: at('DescribeInstances', 'last'),
      allReady: round(simS, 1),
    };
    const dump = await sim.dump();
    const dup = checkDuplicates(dump, fleet.orgIds, fleet.workspaceIds);
    const duplicates = Object.values(dup.wrong).reduce((a, b) => a + b, 0);

    // Lower bound: each simulator bucket needs (accepted − capacity) / refill seconds; the
    // RunInstances bucket's last launch then still boots (pending → running) before Ready.
    const accepted = new Map<string, { n: number; spec: BucketSpec }>();
    let all = 0;
    let throttled = 0;
    const byOp: Record<string, { ok: number; throttled: number }> = {};
    for (const c of calls) {
      all += c.count;
      const k = `${c.service}:${c.operation}`;
      byOp[k] ??= { ok: 0, throttled: 0 };
      if (isThrottle(c)) {
        throttled += c.count;
        byOp[k].throttled += c.count;
        continue;
      }
      byOp[k].ok += c.count;
      const b = simBucket(c.service, c.operation);
      const cur = accepted.get(b.key) ?? { n: 0, spec: b.spec };
      cur.n += c.count;
      accepted.set(b.key, cur);
    }
    const bounds = [...accepted].map(([key, { n, spec }]) => {
      const refillS = Math.max(0, n - spec.capacity) / spec.refillPerSecond;
      const tail = key === 'ec2:RunInstances' ? DURATIONS.realistic.pending / 1000 : 0;
      return {
        bucket: key,
        calls: n,
        capacity: spec.capacity,
        refillPerSecond: spec.refillPerSecond,
        seconds: round(refillS + tail, 1),
      };
    });
    bounds.sort((a, b) => b.seconds - a.seconds);
    const lowerS = bounds[0]?.seconds ?? 0;
    const ratio = simS / Math.max(lowerS, 1e-9);
    const throttleShare = throttled / Math.max(1, all);

    const result: BenchResult = {
      name: BENCH,
      title: `Cold convergence (${orgs} orgs × 3 ws, realistic limits)`,
      command: `npx tsx test/bench/convergence.ts --orgs ${orgs} --time-scale ${scale}`,
      startedAt: started.toISOString(),
      durationS: round((performance.now() - t0) / 1000, 1),
      params: { orgs, workspacesPerOrg: 3, timeScale: scale, simProfile: 'realistic' },
      figures: [
        { figure: 'time to all Ready (simulated)', value: round(simS, 1), unit: 's' },
        { figure: 'token-bucket lower bound', value: lowerS, unit: 's' },
        {
          figure: 'time / lower bound',
          value: `${round(ratio, 3)}×`,
          target: '≤ 1.15×',
          met: ratio <= 1.15,
        },
        { figure: 'cloud calls', value: all },
        {
          figure: 'throttled responses',
          value: `${throttled} (${round(throttleShare * 100, 2)} %)`,
          target: '≤ 2 %',
          met: throttleShare <= 0.02,
        },
        { figure: 'duplicates', value: duplicates, target: '0', met: duplicates === 0 },
      ],
      details: {
        simulatedSeconds: round(simS, 1),
        realSeconds: round(realS, 2),
        operatorCpuS: round(cpuS, 2),
        bounds: bounds.slice(0, 8),
        timeline,
        callsByOperation: byOp,
        duplicates: dup,
      },
      notes: [
        `Simulator \`realistic\` at time scale ${scale} (${round(realS, 1)} s of wall time); the operator's client ` +
          `buckets refill ${scale}× faster and its poll interval, create grace and backoff are ${scale}× shorter, so ` +
          'both sides run on the same simulated clock. AWS SDK retry delays stay in real time.',
        `Lower bound ${lowerS} s from ${bounds[0]?.bucket} (${bounds[0]?.calls} accepted calls, bucket ` +
          `${bounds[0]?.capacity}/${bounds[0]?.refillPerSecond} per s${bounds[0]?.bucket === 'ec2:RunInstances' ? ', + 15 s boot of the last instance' : ''}); next: ` +
          bounds
            .slice(1, 4)
            .map((b) => `${b.bucket} ${b.seconds} s`)
            .join(', ') +
          '.',
        'Throttles counted from the simulator: EC2 503, Cloudflare 429, Secrets Manager / Tagging 400 ' +
          '(a 400 there may also be a validation error, so this over-counts if anything).',
        `Duplicates checked in the simulator's state for ${dup.owners} owners: ${duplicates === 0 ? 'none' : JSON.stringify(dup.wrong)}.`,
      ],
    };
    await publish(result, args.out);
    log(BENCH, JSON.stringify(result.figures.map((f) => [f.figure, f.value, f.met ?? ''])));
  } finally {
    await op?.stop().catch(() => {});
    await bdb.drop();
    await sim.close();
  }
}

runMain(BENCH, main);
