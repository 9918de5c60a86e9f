/**
 * Runs every benchmark, one process each, in order (latency reads the resync figures), and
 * prints the published table. `--smoke` runs tiny versions into a temporary directory: it only
 * proves the benchmarks still run, and fails only when one crashes, never on a missed target.
 *
 *   npm run bench            # full figures → test/bench/results/latest.{json,md} (not rollout)
 *   npm run bench:smoke      # seconds, all five; for CI
 *   npx tsx test/bench/run-all.ts [--smoke] [--only resync,latency] [--out DIR]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_RESULTS_DIR } from './lib/results.js';

const BENCHES = ['resync', 'latency', 'convergence', 'scale', 'rollout'] as const;
/** Left out of a full run unless named in --only: the full rollout takes ~15 minutes on its own. */
const ON_REQUEST = new Set<string>(['rollout']);

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    smoke: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string' },
  },
});
const smoke = values.smoke === true;
const out =
  values.out ?? (smoke ? mkdtempSync(join(tmpdir(), 'molecule-bench-smoke-')) : DEFAULT_RESULTS_DIR);
const only = values.only ? values.only.split(',') : BENCHES.filter((b) => smoke || !ON_REQUEST.has(b));

function run(name: string): Promise<number> {
  const script = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  const args = ['--import', 'tsx', script, '--out', out, ...(smoke ? ['--smoke'] : [])];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      stdio: 'inherit',
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

const started = performance.now();
const failed: string[] = [];
for (const name of only) {
  if (!(BENCHES as readonly string[]).includes(name)) {
    process.stderr.write(`unknown benchmark ${name} (have: ${BENCHES.join(', ')})\n`);
    process.exit(2);
  }
  process.stderr.write(`\n=== ${name}${smoke ? ' (smoke)' : ''} ===\n`);
  const code = await run(name);
  if (code !== 0) failed.push(`${name} (exit ${code})`);
}
try {
  process.stdout.write(`\n${readFileSync(join(out, 'latest.md'), 'utf8')}`);
} catch {
  // nothing published (every benchmark crashed)
}
process.stderr.write(
  `\n${smoke ? 'smoke ' : ''}benchmarks done in ${Math.round((performance.now() - started) / 1000)} s` +
    (failed.length ? `; CRASHED: ${failed.join(', ')}\n` : '\n'),
);
if (smoke) rmSync(out, { recursive: true, force: true });
process.exit(failed.length > 0 ? 1 : 0);
