import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withDatabase } from '../global-setup.js';

// The CLI as a newcomer meets it: what it says when something is missing or wrong, and its habits.
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'molecule-operator.js');
const TOKEN = 'cli-ux-admin-token-5d1e9b';
const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}
const children = new Set<ChildProcess>();

/** The real bin with exactly `env` (plus PATH/HOME). */
function start(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<Exit>((resolve) =>
    child.on('close', (code) => {
      children.delete(child);
      resolve({ code, stdout, stderr });
    }),
  );
  return { child, exited, output: () => ({ stdout, stderr }) };
}
const run = (args: string[], env: Record<string, string> = {}) => start(args, env).exited;

// An empty database of this file's own: no schema until a test migrates it.
const name = `molecule_cliux_${randomBytes(4).toString('hex')}`;
const empty = withDatabase(serverUrl, name);

beforeAll(async () => {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
});

describe('before migrate', () => {
  it('every command that needs the schema says to run migrate, and serves nothing', async () => {
    const env = { DATABASE_URL: empty, CP_ADMIN_API_TOKEN: TOKEN, PORT: '0', METRICS_PORT: '0' };
    const results = await Promise.all(
      [['api'], ['run'], ['plan'], ['status'], ['orphans']].map(async (args) => ({
        args,
        res: await run(args, env),
      })),
    );
    for (const { args, res } of results) {
      expect(res.code, `${args}: ${res.stderr}`).toBe(1);
      expect(res.stderr).toContain(`${args[0]}: PostgreSQL 127.0.0.1:5432/${name} has no schema yet`);
      expect(res.stderr).toContain('hint: run `molecule-operator migrate` first');
      expect(res.stderr).not.toMatch(/relation .* does not exist|internal error/);
    }
    // Nothing was created on the way: the schema is still absent.
    const client = new pg.Client({ connectionString: empty });
    await client.connect();
    const { rows } = await client.query(
      "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'",
    );
    await client.end();
    expect(rows[0].n).toBe(0);
  }, 120_000);
});

describe('database errors', () => {
  it('name the cause and what to check: a missing database, a host with nothing listening, a refused user', async () => {
    const missing = withDatabase(serverUrl, `${name}_absent`);
    const unreachable = 'postgres://postgres@127.0.0.1:1/test';
    const u = new URL(serverUrl);
    u.username = 'no_such_role_cliux';
    const [m, r, a] = await Promise.all([
      run(['status'], { DATABASE_URL: missing }),
      run(['status'], { DATABASE_URL: unreachable }),
      run(['migrate'], { DATABASE_URL: u.toString() }),
    ]);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(
      new RegExp(`status: cannot use PostgreSQL .*: database "${name}_absent" does not exist`),
    );
    expect(m.stderr).toContain(`hint: the database "${name}_absent" does not exist`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/status: cannot use PostgreSQL 127\.0\.0\.1:1\/test: .*ECONNREFUSED/);
    expect(r.stderr).toContain('hint: nothing answers at 127.0.0.1:1');
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/migrate: cannot use PostgreSQL .*no_such_role_cliux/);
    expect(a.stderr).toContain('hint: the server refused the user or password');
    for (const res of [m, r, a]) expect(res.stderr).not.toMatch(/Failed query|\n\s+at /);
  }, 60_000);
});

describe('start-up', () => {
  it('--help loads no database driver, schema library, logger or cloud SDK', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'molecule-trace-'));
    try {
      // Records every module the process resolves.
      const hooks = join(dir, 'trace.mjs');
      writeFileSync(
        hooks,
        `import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
registerHooks({ resolve(s, c, next) { const r = next(s, c); appendFileSync(${JSON.stringify(join(dir, 'trace'))}, r.url + '\\n'); return r; } });
`,
      );
      const traced = (args: string[]) =>
        new Promise<string[]>((resolve) => {
          rmSync(join(dir, 'trace'), { force: true });
          const child = spawn(process.execPath, ['--import', hooks, BIN, ...args], {
            env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
            stdio: 'ignore',
          });
          child.on('close', () => resolve(readFileSync(join(dir, 'trace'), 'utf8').split('\n')));
        });
      const heavy = /node_modules\/(zod|pino|pg|@electric-sql|@aws-sdk|fastify|drizzle-orm)\//;
      const [help, commandHelp, status] = await Promise.all([
        traced(['--help']),
        traced(['status', '--help']),
        traced(['status']),
      ]);
      expect(help.filter((u) => heavy.test(u))).toEqual([]);
      expect(commandHelp.filter((u) => heavy.test(u))).toEqual([]);
      // The trace itself works: a command that runs loads them.
      expect(status.some((u) => heavy.test(u))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('warns when dist/ is older than the sources, and not when it is newer', async () => {
    const root = mkdtempSync(join(tmpdir(), 'molecule-stale-'));
    try {
      // A checkout in miniature: the real bin, a stand-in build, one source file.
      for (const d of ['bin', 'dist/src', 'src']) mkdirSync(join(root, d), { recursive: true });
      copyFileSync(BIN, join(root, 'bin', 'molecule-operator.js'));
      writeFileSync(join(root, 'dist', 'src', 'cli.js'), "process.stdout.write('the build ran\\n');\n");
      writeFileSync(join(root, 'src', 'cli.ts'), '// source\n');
      const bin = join(root, 'bin', 'molecule-operator.js');
      const at = (file: string, seconds: number) => utimesSync(join(root, file), seconds, seconds);

      at('dist/src/cli.js', 1_000_000);
      at('src/cli.ts', 2_000_000);
      const stale = await runBin(bin);
      expect(stale.stdout).toBe('the build ran\n');
      expect(stale.stderr).toContain(
        'warning: dist/ is older than the sources (src/cli.ts changed since the build)',
      );
      expect(stale.stderr).toContain('npm run build');

      at('dist/src/cli.js', 3_000_000);
      const fresh = await runBin(bin);
      expect(fresh.stdout).toBe('the build ran\n');
      expect(fresh.stderr).toBe('');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 30_000);
});

function runBin(bin: string): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
