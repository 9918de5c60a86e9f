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

describe('logs', () => {
  it('run and api log pretty and coloured on a terminal, JSON otherwise, as LOG_FORMAT says', async () => {
    const migrated = await run(['migrate'], { DATABASE_URL: empty });
    expect(migrated.code, migrated.stderr).toBe(0);
    const env = {
      DATABASE_URL: empty,
      CP_ADMIN_API_TOKEN: TOKEN,
      PORT: '0',
      METRICS_PORT: '0',
      TERM: 'xterm',
    };
    /** api under a pseudo-terminal (script(1)) or a pipe, until it has logged that it listens. */
    const startApi = async (tty: boolean, extra: Record<string, string> = {}) => {
      const args = tty
        ? ['script', ['-qec', `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} api`, '/dev/null']]
        : [process.execPath, [BIN, 'api']];
      const child = spawn(args[0] as string, args[1] as string[], {
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env, ...extra },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      children.add(child);
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      child.stderr!.on('data', (d) => (out += d));
      const deadline = Date.now() + 60_000;
      while (!/listening/i.test(out) && Date.now() < deadline && child.exitCode === null)
        await new Promise((r) => setTimeout(r, 50));
      // SIGKILL to script(1) hangs up the terminal, which ends api too.
      child.kill('SIGKILL');
      return out;
    };
    const [tty, ttyJson, piped, pipedPretty] = await Promise.all([
      startApi(true),
      startApi(true, { LOG_FORMAT: 'json' }),
      startApi(false),
      startApi(false, { LOG_FORMAT: 'pretty' }),
    ]);
    // ESC [ n m: an SGR colour sequence.
    const ansi = new RegExp(`${String.fromCharCode(27)}\\[\\d+m`);
    // Terminal: `HH:MM:ss.l INFO (molecule-operator.api): Server listening …`, coloured.
    expect(tty).toMatch(ansi);
    expect(tty.replaceAll(new RegExp(ansi.source, 'g'), '')).toMatch(
      /\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(molecule-operator\.api\): Server listening/,
    );
    expect(tty).not.toContain('{"level"');
    for (const out of [ttyJson, piped]) {
      const line = out.split(/\r?\n/).find((l) => l.includes('listening'))!;
      expect(JSON.parse(line)).toMatchObject({ level: 30, name: 'molecule-operator.api' });
    }
    expect(pipedPretty).toMatch(/INFO \(molecule-operator\.api\): Server listening/);
    expect(pipedPretty).not.toMatch(ansi);
    for (const out of [tty, ttyJson, piped, pipedPretty]) expect(out).not.toContain(TOKEN);

    const bad = await run(['api'], { ...env, LOG_FORMAT: 'fancy' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/LOG_FORMAT: /);
  }, 120_000);
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
