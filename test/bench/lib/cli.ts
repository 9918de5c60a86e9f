import { parseArgs } from 'node:util';
import { DEFAULT_RESULTS_DIR } from './results.js';

export interface BenchArgs {
  values: Record<string, string | boolean | undefined>;
  /** Tiny sizes that only prove the benchmark still runs (npm run bench:smoke). */
  smoke: boolean;
  /** Where latest.json / latest.md go. */
  out: string;
  num(name: string, fallback: number, smokeValue?: number): number;
}

/** Common flags (`--smoke`, `--out DIR`) plus the benchmark's own numeric options. */
export function benchArgs(numeric: string[]): BenchArgs {
  const { values: parsed } = parseArgs({
    args: process.argv.slice(2),
    options: {
      smoke: { type: 'boolean', default: false },
      out: { type: 'string' },
      ...Object.fromEntries(numeric.map((n) => [n, { type: 'string' as const }])),
    },
    strict: true,
  });
  const values = parsed as Record<string, string | boolean | undefined>;
  const smoke = values.smoke === true;
  return {
    values,
    smoke,
    out: (values.out as string | undefined) ?? DEFAULT_RESULTS_DIR,
    num(name, fallback, smokeValue) {
      const v = values[name];
      if (typeof v === 'string') {
        const n = Number(v);
        if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} expects a positive number, got ${v}`);
        return n;
      }
      return smoke && smokeValue !== undefined ? smokeValue : fallback;
    },
  };
}

export function log(bench: string, message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${bench}: ${message}\n`);
}

/** Runs a benchmark's main; a crash exits 1 (what bench:smoke checks), a missed target does not. */
export function runMain(name: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`${name} crashed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
