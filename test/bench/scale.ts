/**
 * Benchmark 4 — scale (DESIGN §9): 10,000 orgs × 3 workspaces in steady state; peak RSS of the
 * operator process and CPU seconds per full resync.
 *
 * Three processes: this one seeds and measures; the simulator runs in a child (its memory is
 * not the operator's); the operator runs in another child with production settings and
 * reports its own CPU (process.cpuUsage) and peak RSS (getrusage's high-water mark).
 *
 * Seeding 40,000 owners through the operator would take tens of minutes, so the fleet is
 * cloned from a template the real operator converged (lib/seed.ts documents the method). The
 * clone is proven faithful by the measurement itself: both full resyncs of the cloned fleet
 * must make zero mutating calls (reported), and the status rows they rewrite are counted.
 *
 *   npx tsx test/bench/scale.ts [--orgs 10000] [--resyncs 3] [--smoke] [--out DIR]
 *     [--node-flags="…"]  replace the image's Node flags (deploy/Dockerfile) for the operator process
 *     [--cpu-prof-dir DIR] [--alloc-prof FILE]  profile the measured resyncs
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, log, runMain } from './lib/cli.js';
import { createBenchDatabase } from './lib/db.js';
import { callDelta, mutatingByOp, round, total } from './lib/measure.js';
import { PHASES, type Phase } from './lib/phases.js';
import { startRemoteSim } from './lib/remote-sim.js';
import { type BenchResult, publish } from './lib/results.js';
import { buildTemplate, cloneFleet } from './lib/seed.js';
import { benchConfig } from './lib/stack.js';

const BENCH = 'scale';
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** Compiled like the container image (`npm run build`); under node_modules so packages resolve. */
const BUILD_DIR = join(ROOT, 'node_modules', '.cache', 'molecule-bench');
const TARGET_RSS_MB = 300;
const DOCKERFILE = 'deploy/Dockerfile';

/** The Node flags the container image runs the operator with (its ENTRYPOINT, between node and the script). */
function deployedNodeFlags(): string {
  const line = readFileSync(join(ROOT, DOCKERFILE), 'utf8')
    .split('\n')
    .findLast((l) => l.startsWith('ENTRYPOINT'));
  const argv = line ? (JSON.parse(line.slice('ENTRYPOINT'.length)) as string[]) : [];
  return argv.slice(1, -1).join(' ');
}
/** Issue 19: DESIGN §9 asked ≤ 3 s; an incremental resync is held to half that. */
const TARGET_CPU_S = 1.5;

type Report = {
  phase: string;
  cpuS: number;
  wallS: number;
  rssMb: number;
  peakRssMb: number;
  error?: string;
  heapUsedMb?: number;
  /** CPU seconds of the profiler's own thread during a measured resync (left out of `cpuS`). */
  profilerCpuS?: number;
  /** CPU seconds of a measured resync by phase (lib/phases.ts); they add up to `cpuS`. */
  phases?: Record<Phase, number>;
};

function childReports(child: ChildProcess) {
  const queue: Report[] = [];
  const waiters: ((r: Report) => void)[] = [];
  child.on('message', (m: Report) => {
    if (m.phase === 'error') process.stderr.write(`operator: ${m.error}\n`);
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  const exited = new Promise<Report>((resolve) =>
    child.once('exit', (code) =>
      resolve({ phase: 'error', error: `operator exited with ${code}` } as Report),
    ),
  );
  return async (): Promise<Report> => {
    const r =
      queue.shift() ?? (await Promise.race([new Promise<Report>((res) => waiters.push(res)), exited]));
    if (r.phase === 'error') throw new Error(`operator process failed: ${r.error}`);
    return r;
  };
}

/**
 * The operator runs as production runs it: TypeScript compiled to JavaScript, plain `node`
 * (as deploy/Dockerfile does). Under tsx the same process holds ~80 MB more (transpiler and
 * source maps), which is not the operator's.
 */
function compileOperator(): string {
  mkdirSync(BUILD_DIR, { recursive: true });
  const tsconfig = join(BUILD_DIR, 'tsconfig.json');
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: join(ROOT, 'tsconfig.json'),
      compilerOptions: { noEmit: false, outDir: BUILD_DIR, rootDir: ROOT, sourceMap: false },
      include: [
        join(ROOT, 'src'),
        join(ROOT, 'controllers'),
        join(ROOT, 'schema'),
        join(ROOT, 'test/bench/lib/scale-operator.ts'),
      ],
    }),
  );
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', tsconfig], {
    stdio: 'inherit',
  });
  return join(BUILD_DIR, 'test/bench/lib/scale-operator.js');
}

async function main() {
  const args = benchArgs(['orgs', 'resyncs', 'cpu-prof-dir', 'alloc-prof', 'node-flags']);
  // The operator runs with the Node flags its container image gives it, unless --node-flags
  // (e.g. "--max-semi-space-size=64") replaces them to study others.
  const flagsGiven = typeof args.values['node-flags'] === 'string';
  const nodeFlags = (flagsGiven ? String(args.values['node-flags']) : deployedNodeFlags())
    .split(/\s+/)
    .filter(Boolean);
  const orgs = args.num('orgs', 10_000, 50);
  const resyncs = args.num('resyncs', 3, 1);
  const started = new Date();
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'molecule-bench-scale-'));
  const stateFile = join(dir, 'sim-state.json');
  const bdb = await createBenchDatabase(BENCH);
  let sim: Awaited<ReturnType<typeof startRemoteSim>> | undefined;
  let child: ChildProcess | undefined;
  try {
    log(BENCH, 'compiling the operator (npm run build equivalent)');
    const operatorJs = compileOperator();
    log(BENCH, 'converging the template org with the real operator');
    const template = await buildTemplate();
    log(BENCH, `cloning it ${orgs} times (simulator state file + database rows)`);
    const ts = performance.now();
    const config = benchConfig({
      awsEndpoint: 'http://127.0.0.1:1',
      cloudflareBaseUrl: 'http://127.0.0.1:1/client/v4',
      seed: (await import('../../src/sim/index.js')).SEED,
    });
    const fleet = await cloneFleet(template, orgs, { stateFile, database: bdb.database, config });
    await bdb.database.query('ANALYZE');
    const seedS = round((performance.now() - ts) / 1000, 1);
    const stateMb = round(statSync(stateFile).size / 2 ** 20, 1);
    log(BENCH, `seeded in ${seedS} s (state file ${stateMb} MB); starting the simulator process`);
    sim = await startRemoteSim({ profile: 'fast', stateFile });
    // The state file is the seed, not a place to save to: the simulator saves on close.
    const owners = fleet.orgIds.length + fleet.workspaceIds.length;

    log(BENCH, 'starting the operator process (its first resync runs on election)');
    child = fork(
      operatorJs,
      [
        JSON.stringify({
          databaseUrl: bdb.url,
          cpuProfileDir: args.values['cpu-prof-dir'],
          allocationProfile: args.values['alloc-prof'],
          sim: { awsEndpoint: sim.awsEndpoint, cloudflareBaseUrl: sim.cloudflareBaseUrl, seed: sim.seed },
        }),
      ],
      {
        execArgv: ['--expose-gc', ...nodeFlags],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    const next = childReports(child);
    const since0 = await sim.now();
    const first = await next();
    const firstMutating = mutatingByOp(await sim.callLog(since0));
    log(BENCH, `first resync done: ${JSON.stringify(first)}`);

    // Several steady-state resyncs, each measured alone; the median is the figure (a shared
    // machine's noise moves single runs by ±20 %).
    const measured: (Report & { calls: Record<string, number>; statusRowsRewritten: number })[] = [];
    const mutating: Record<string, number> = {};
    for (let i = 0; i < resyncs; i++) {
      const calls0 = await sim.calls();
      const since = await sim.now();
      const [startRow] = await bdb.database.query<{ at: Date }>('SELECT now() AS at');
      child.send({ cmd: 'resync' });
      const report = await next();
      const calls = callDelta(calls0, await sim.calls());
      for (const [op, n] of Object.entries(mutatingByOp(await sim.callLog(since))))
        mutating[op] = (mutating[op] ?? 0) + n;
      const [rewrittenRow] = await bdb.database.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM reconcile_status WHERE updated_at >= $1',
        [startRow!.at],
      );
      measured.push({ ...report, calls, statusRowsRewritten: rewrittenRow!.n });
      log(BENCH, `measured resync ${i + 1}/${resyncs}: ${JSON.stringify(report)}, ${total(calls)} calls`);
    }
    const resync = [...measured].sort((a, b) => a.cpuS - b.cpuS)[Math.floor((measured.length - 1) / 2)]!;
    child.send({ cmd: 'rollout-refresh' });
    const rolloutRefresh = await next();
    log(BENCH, `rollout gauges refreshed: ${JSON.stringify(rolloutRefresh)}`);
    const calls = resync.calls;
    const rewritten = resync.statusRowsRewritten;
    child.send({ cmd: 'stop' });
    const stopped = await next();
    child = undefined;

    const managed = fleet.instances + fleet.securityGroups + 3 * orgs;
    const mutatingTotal = total(mutating) + total(firstMutating);
    const peak = stopped.peakRssMb;
    const result: BenchResult = {
      name: BENCH,
      title: `Scale (${orgs.toLocaleString('en-US')} orgs × 3 ws, steady state)`,
      command: `npx tsx test/bench/scale.ts --orgs ${orgs}${flagsGiven ? ` --node-flags="${nodeFlags.join(' ')}"` : ''}`,
      startedAt: started.toISOString(),
      durationS: round((performance.now() - t0) / 1000, 1),
      params: { orgs, workspacesPerOrg: 3, owners, managedResources: managed, nodeFlags, resyncs },
      figures: [
        {
          figure: 'owners / managed resources',
          value: `${owners.toLocaleString('en-US')} / ${managed.toLocaleString('en-US')}`,
        },
        {
          figure: 'peak RSS (operator process)',
          value: peak,
          unit: 'MB',
          target: `≤ ${TARGET_RSS_MB} MB`,
          met: peak <= TARGET_RSS_MB,
        },
        {
          figure: `CPU per full resync (median of ${resyncs})`,
          value: resync.cpuS,
          unit: 's',
          target: `≤ ${TARGET_CPU_S} s`,
          met: resync.cpuS <= TARGET_CPU_S,
        },
        ...PHASES.map((p) => ({
          figure: `  of which ${p}`,
          value: resync.phases?.[p] ?? 0,
          unit: 's',
        })),
        { figure: 'resync wall time', value: resync.wallS, unit: 's' },
        { figure: 'rollout gauges refresh CPU (once a minute)', value: rolloutRefresh.cpuS, unit: 's' },
        { figure: 'cloud calls per resync', value: total(calls) },
        {
          figure: 'mutating calls (every resync)',
          value: mutatingTotal,
          target: '0',
          met: mutatingTotal === 0,
        },
      ],
      details: {
        firstResync: first,
        measuredResync: resync,
        measuredResyncs: measured.map(({ calls: _calls, ...r }) => r),
        rolloutRefresh,
        mutating,
        firstResyncMutating: firstMutating,
        stopped,
        seeding: { seconds: seedS, stateFileMb: stateMb, method: 'template clone (lib/seed.ts)' },
      },
      notes: [
        `Seeded by cloning one org the real operator converged (lib/seed.ts): ${seedS} s, simulator state ` +
          `${stateMb} MB. Faithfulness check: ${mutatingTotal} mutating calls over the first and the measured ` +
          `resyncs; ${rewritten} status rows rewritten by the median resync (a steady state writes none).`,
        'Operator alone in its process with production settings (default client buckets, concurrency ' +
          `${config.RECONCILE_CONCURRENCY}, pool 10); simulator in another process. Peak RSS over the whole life ` +
          `of the process (startup, first resync, measured resyncs): ${peak} MB; CPU of the first (cold) resync ` +
          `including startup ${first.cpuS} s; CPU of each measured resync ${measured.map((m) => m.cpuS).join(', ')} s.`,
        'CPU of a resync: the operator process (process.cpuUsage, every thread, user and system) less the ' +
          "CPU profiler's own sampling thread (v8:ProfEvntProc, read from /proc: " +
          `${measured.map((m) => m.profilerCpuS ?? 0).join(', ')} s), which the bench adds and production does not run.`,
        'CPU by phase (lib/phases.ts): each 1 ms sample of a CPU profile of the resync is charged to the ' +
          'nearest frame on its stack in src/cloud and the SDKs (listing), src/db and pg (database), or ' +
          'src/runtime, controllers and src/provisioning (reconcile); the garbage collector is its own phase ' +
          'and other is the rest (promise and timer plumbing, metrics); the process CPU is split in those ' +
          `proportions. Median resync: ${PHASES.map((p) => `${p} ${resync.phases?.[p] ?? 0} s`).join(', ')}.`,
        `Node flags: ${nodeFlags.length ? nodeFlags.join(' ') : 'none'} (${flagsGiven ? 'given with --node-flags' : `the container image's ENTRYPOINT, ${DOCKERFILE}`}).`,
      ],
    };
    await publish(result, args.out);
    log(BENCH, JSON.stringify(result.figures.map((f) => [f.figure, f.value, f.met ?? ''])));
  } finally {
    child?.kill('SIGKILL');
    await sim?.close();
    await bdb.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runMain(BENCH, main);
