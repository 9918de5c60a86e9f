import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { serverUrl } from './db.js';

/** One published figure: what was measured, its value, and the DESIGN §9 target when it has one. */
export interface Figure {
  figure: string;
  value: number | string;
  unit?: string;
  target?: string;
  /** undefined when the figure has no target. */
  met?: boolean;
}

export interface BenchResult {
  name: 'resync' | 'latency' | 'convergence' | 'scale' | 'rollout';
  title: string;
  command: string;
  startedAt: string;
  durationS: number;
  params: Record<string, unknown>;
  figures: Figure[];
  /** Everything else measured (per-operation counts, phases, notes). */
  details: Record<string, unknown>;
  notes: string[];
}

export interface ResultsFile {
  machine: Machine;
  updatedAt: string;
  results: Partial<Record<BenchResult['name'], BenchResult>>;
}

export interface Machine {
  nproc: number;
  cpuModel: string;
  memoryGb: number;
  node: string;
  postgres: string;
  commit: string;
}

const ORDER: BenchResult['name'][] = ['resync', 'latency', 'convergence', 'scale', 'rollout'];
export const DEFAULT_RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

export function machine(postgres = 'unknown'): Machine {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  let nproc = cpus().length;
  try {
    nproc = Number(execSync('nproc', { encoding: 'utf8' }).trim()) || nproc;
  } catch {
    // keep os.cpus()
  }
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    // The results themselves are left out: a run of several benchmarks writes them as it goes.
    const dirty = execSync("git status --porcelain -- src controllers test/bench ':!test/bench/results'", {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (dirty) commit += '+changes';
  } catch {
    // not a git checkout
  }
  return {
    nproc,
    cpuModel,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    postgres,
    commit,
  };
}

/** The PostgreSQL server's version, for the machine line. */
async function postgresVersion(): Promise<string> {
  const c = new pg.Client({ connectionString: serverUrl() });
  try {
    await c.connect();
    const r = await c.query<{ server_version: string }>('SHOW server_version');
    return `PostgreSQL ${r.rows[0]?.server_version.split(' ')[0] ?? '?'}`;
  } catch {
    return 'PostgreSQL (version unknown)';
  } finally {
    await c.end().catch(() => {});
  }
}

/** Merges one benchmark's result into `<dir>/latest.json` and rewrites `<dir>/latest.md`. */
export async function publish(result: BenchResult, dir = DEFAULT_RESULTS_DIR): Promise<void> {
  const postgres = await postgresVersion();
  mkdirSync(dir, { recursive: true });
  const jsonPath = join(dir, 'latest.json');
  const file: ResultsFile = existsSync(jsonPath)
    ? (JSON.parse(readFileSync(jsonPath, 'utf8')) as ResultsFile)
    : { machine: machine(postgres), updatedAt: '', results: {} };
  file.machine = machine(postgres);
  file.updatedAt = new Date().toISOString();
  file.results[result.name] = result;
  writeFileSync(jsonPath, `${JSON.stringify(file, null, 2)}\n`);
  writeFileSync(join(dir, 'latest.md'), renderMarkdown(file));
}

const fmt = (v: number | string, unit?: string) => {
  const s = typeof v === 'number' ? (Number.isInteger(v) ? v.toLocaleString('en-US') : String(v)) : v;
  return unit ? `${s} ${unit}` : s;
};

export function renderMarkdown(file: ResultsFile): string {
  const m = file.machine;
  const lines: string[] = [];
  lines.push('| Benchmark | Figure | Measured | Target | Met |');
  lines.push('|---|---|---|---|---|');
  for (const name of ORDER) {
    const r = file.results[name];
    if (!r) continue;
    r.figures.forEach((f, i) => {
      const met = f.met === undefined ? '' : f.met ? 'yes' : '**no**';
      lines.push(
        `| ${i === 0 ? r.title : ''} | ${f.figure} | ${fmt(f.value, f.unit)} | ${f.target ?? ''} | ${met} |`,
      );
    });
  }
  const dates = ORDER.map((n) => file.results[n]?.startedAt).filter(Boolean) as string[];
  const head = [
    `Machine: ${m.nproc} vCPU (${m.cpuModel}), ${m.memoryGb} GB RAM, Node ${m.node}, ${m.postgres}; ` +
      `commit ${m.commit}; run ${dates.length ? dates.sort()[0]!.slice(0, 10) : file.updatedAt.slice(0, 10)}.`,
    '',
  ];
  const notes: string[] = [];
  for (const name of ORDER) {
    const r = file.results[name];
    if (!r || r.notes.length === 0) continue;
    notes.push(`**${r.title}** (\`${r.command}\`, ${r.durationS} s):`);
    for (const n of r.notes) notes.push(`- ${n}`);
    notes.push('');
  }
  return [...head, ...lines, '', ...notes].join('\n');
}
