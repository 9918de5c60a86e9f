/**
 * `npm run chaos`: the long reliability suite (CHAOS_LONG=1: 50 kills, 3 min of faults,
 * 10 split-brain rounds, 6 database outages, 10,000 fuzzed requests), one file at a time so
 * the timings are not skewed by each other, then its figures in test/chaos/results/latest.json
 * and latest.md. `--short` runs the CI-sized suite and only prints the table.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const short = process.argv.includes('--short');
const root = join(import.meta.dirname, '..', '..');
if (!process.env.DATABASE_URL) {
  console.error(
    'chaos: set DATABASE_URL to a PostgreSQL server (the operator runs as child processes against it)',
  );
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'molecule-chaos-'));
const started = Date.now();
const run = spawnSync('npx', ['vitest', 'run', 'test/chaos', '--maxWorkers=1'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, CHAOS_RESULTS_DIR: dir, ...(short ? {} : { CHAOS_LONG: '1' }) },
});
const durationMs = Date.now() - started;

// biome-ignore lint/suspicious/noExplicitAny: figures are whatever each scenario recorded
type Figures = Record<string, any>;
const scenarios: Record<string, Figures> = {};
for (const f of readdirSync(dir).sort()) {
  const data = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Figures;
  scenarios[data.scenario] = data;
}
rmSync(dir, { recursive: true, force: true });

const n = (x: number) => x.toLocaleString('en-US');
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
const rows: string[][] = [];
const c = scenarios['crash-loop'];
if (c)
  rows.push([
    'Crash loop',
    `${n(c.kills)} SIGKILLs of \`run\` at random moments (${c.killsBeforeLeading} before it led), restarted each time, while ${n(sum(c.fleetOps))} API changes created ${c.fleetOps.createOrg} orgs / ${c.fleetOps.addWorkspace} workspaces, changed tiers and power and deleted ${c.fleetOps.deleteOrg} orgs / ${c.fleetOps.deleteWorkspace} workspaces`,
    `all invariants hold ${s(c.convergedAfterRestartMs)} after the last restart; duplicates ${c.duplicates}, leaked ${c.leaked}, orphans ${c.orphans}, audit gaps ${c.auditGaps}`,
  ]);
const f = scenarios.faults;
if (f)
  rows.push([
    'Fault injection',
    `${s(f.faultyPhaseMs)} at ${f.faults.errorRate * 100} % 5xx (${f.faults.errorAfterCommitRatio * 100} % of those on mutations applied before the error), ${f.faults.throttleRate * 100} % throttling, ${f.faults.eventualConsistencyMs / 1000} s eventual consistency, ${n(sum(f.fleetOps))} API changes: ${n(f.injected5xx)} 5xx (${n(f.injected5xxOnMutations)} on mutating calls) and ${n(f.injectedThrottles)} throttles in ${n(f.callsDuringFaults)} calls`,
    `converged ${s(f.convergedAfterFaultsStopMs)} after the faults stopped; duplicates ${f.duplicates}, leaked ${f.leaked}, orphans ${f.orphans}`,
  ]);
const l = scenarios['late-launch'];
if (l)
  rows.push([
    'Late launches',
    `${l.ownersDeleted} workspaces deleted while their launches still waited in a 0.5/s client-side limiter; each instance invisible for 3 s after launch`,
    `all ${l.launches} instances found and deleted once visible; leaked ${l.leaked}`,
  ]);
const b = scenarios['split-brain'];
if (b)
  rows.push([
    'Split brain',
    `${b.rounds} leaders frozen with SIGSTOP (launches queued in their rate limiters) past a ${s(b.leaseMs)} lease, then resumed with SIGCONT`,
    `standby took over in ${s(Math.min(...b.takeoverMs))}–${s(b.maxTakeoverMs)}; mutating cloud calls or database writes by a resumed leader: ${b.staleMutationsAfterResume}; lease epochs ${b.epochs[0]} → ${b.epochs.at(-1)}, one per takeover`,
  ]);
const d = scenarios.database;
if (d)
  rows.push([
    'Database trouble',
    `${d.terminationRounds} rounds of \`pg_terminate_backend\` mid-change (${d.backendsTerminated} connections killed), ${d.outages} outages of ${s(d.outageMs)} with connections refused while desired state changed`,
    `mutating cloud calls while the database was unreachable: ${d.mutatingCallsDuringOutage}; recovered by itself, converged ${s(Math.max(...d.convergedAfterOutageMs))} (worst) after each outage, ${s(Math.max(...d.recoveryAfterTerminationMs))} after dropped connections`,
  ]);
const z = scenarios.fuzz;
if (z)
  rows.push([
    'Hostile input',
    `${n(z.requests)} fuzzed requests over raw TCP (fast-check): malformed/wrongly typed JSON, huge strings, unicode, injections, path tricks, missing/forged tokens; ${n(z.accepted)} accepted, ${n(z.rejected)} rejected`,
    `5xx: ${z.serverErrors}; rows written by rejected requests: ${z.rowsWrittenByRejectedRequests}; server still serving`,
  ]);
const h = scenarios.hygiene;
if (h)
  rows.push([
    'Secret hygiene',
    `create, drift (tampered bundle, extra rule, stopped instance, deleted CNAME, stripped tag) under ${n(h.faultsInjected)} injected 5xx, tier/power changes, delete, all logs at trace; ${h.secretValuesSearched} secret values (raw, base64, URL-encoded) searched in ${n(h.logLinesSearched)} log lines, ${n(h.databaseRowsSearched)} rows, ${h.userDataSearched} user-data, ${n(h.responsesSearched)} responses`,
    `hits: ${h.hits}; security groups open on tcp/22 to 0.0.0.0/0: ${h.sshOpenToWorld} (checked ${h.securityGroupChecks} times)`,
  ]);

const markdown = [
  `Reliability figures (${short ? 'short CI run' : '`npm run chaos`'}, ${new Date().toISOString().slice(0, 10)}, ${s(durationMs)}, Node ${process.versions.node}, PostgreSQL, in-repo simulator):`,
  '',
  '| scenario | what was done | result |',
  '|---|---|---|',
  ...rows.map((r) => `| ${r.join(' | ')} |`),
  '',
  `Anything lost, duplicated or leaked: ${run.status === 0 ? '0' : 'see the failing test above'}.`,
  '',
].join('\n');

if (short) {
  process.stdout.write(`\n${markdown}`);
} else {
  const results = join(root, 'test', 'chaos', 'results');
  mkdirSync(results, { recursive: true });
  writeFileSync(
    join(results, 'latest.json'),
    `${JSON.stringify({ generatedAt: new Date().toISOString(), durationMs, node: process.versions.node, passed: run.status === 0, scenarios }, null, 2)}\n`,
  );
  writeFileSync(join(results, 'latest.md'), `# Reliability figures\n\n${markdown}`);
  spawnSync('npx', ['biome', 'format', '--write', join(results, 'latest.json')], {
    cwd: root,
    stdio: 'ignore',
  });
  process.stdout.write(`\n${markdown}\nwritten to test/chaos/results/latest.json and latest.md\n`);
}
process.exit(run.status ?? 1);
