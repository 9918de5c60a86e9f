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
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/client.js';
import { DesiredStateRepository } from '../../src/db/desired.js';
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

describe('habits', () => {
  it('--version, help <command> with the summary first, and one error style', async () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8'));
    const [version, help, flagHelp, usage, unknown] = await Promise.all([
      run(['--version']),
      run(['help', 'status']),
      run(['status', '--help']),
      run(['status', '-o', 'yaml']),
      run(['frobnicate']),
    ]);
    expect(version).toMatchObject({ code: 0, stdout: `molecule-operator ${pkg.version}\n` });
    expect(help.code).toBe(0);
    expect(help.stdout).toBe(flagHelp.stdout);
    expect(help.stdout.split('\n')[0]).toBe(
      'molecule-operator status: show orgs and workspaces with their readiness, from the database',
    );
    expect(help.stdout).toMatch(/^Usage: molecule-operator status \[SLUG\]/m);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(
      /^molecule-operator status: --output "yaml": expected json or table\nhint: /,
    );
    expect(unknown.stderr).toMatch(/^molecule-operator: unknown command "frobnicate"\nhint: /);
  }, 60_000);

  it('status: -o json, status SLUG, READY only for the observed generation, clamped tiers, orgs being deleted', async () => {
    expect((await run(['migrate'], { DATABASE_URL: empty })).code).toBe(0);
    const database = await openDatabase({ DATABASE_URL: empty, PGLITE_DIR: '' });
    const desired = new DesiredStateRepository(database.db);
    const fresh = await desired.createOrg({ slug: 'fresh', name: 'Fresh', isCanary: false });
    const stale = await desired.createOrg({ slug: 'stale', name: 'Stale', isCanary: false });
    const ws = await desired.createWorkspace({ orgId: fresh.id, name: 'crewai', runtime: 'crewai', tier: 5 });
    const going = await desired.createOrg({ slug: 'going', name: 'Going', isCanary: false });
    await desired.requestOrgDeletion(going.id);
    // Every controller says Ready at generation 1; stale's spec has moved on to generation 2.
    for (const [owner, kind, org] of [
      [fresh.id, 'org', fresh.id],
      [stale.id, 'org', stale.id],
      [ws.id, 'workspace', fresh.id],
    ] as const) {
      await database.query(
        `INSERT INTO reconcile_status (controller, owner_id, owner_kind, org_id, ready, reason, observed_generation)
         VALUES ('org-network', $1, $2, $3, true, 'Ready', 1)`,
        [owner, kind, org],
      );
    }
    await database.query('UPDATE orgs SET generation = 2 WHERE id = $1', [stale.id]);
    await database.close();

    const env = { DATABASE_URL: empty };
    const [table, json, o, output, one, gone, missing] = await Promise.all([
      run(['status'], env),
      run(['status', '--json'], env),
      run(['status', '-o', 'json'], env),
      run(['status', '--output', 'json'], env),
      run(['status', 'fresh', '-o', 'json'], env),
      run(['status', 'going'], env),
      run(['status', 'nope'], env),
    ]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^fresh +org .* 1 +yes +Ready$/m);
    expect(table.stdout).toMatch(/^stale +org .* 2 +no +Reconciling \(generation 2, observed 1\)$/m);
    expect(table.stdout).toMatch(
      /^└ crewai +workspace +\S+ +crewai +4 \(asked 5\) +running +1 +yes +Ready$/m,
    );
    expect(table.stdout).toMatch(/^3 orgs \(1 ready\), 1 workspace \(1 ready\)$/m);
    expect(o.stdout).toBe(json.stdout);
    expect(output.stdout).toBe(json.stdout);
    expect(
      JSON.parse(json.stdout)
        .map((v: { slug: string }) => v.slug)
        .sort(),
    ).toEqual(['fresh', 'going', 'stale']);
    expect(JSON.parse(one.stdout)).toMatchObject({ slug: 'fresh', workspaces: [{ tier: 5 }] });
    expect(gone.code).toBe(0);
    expect(gone.stdout).toMatch(/^going +org .* no +Deleting$/m);
    expect(gone.stdout).toContain('going is being deleted');
    expect(gone.stdout).toContain('the slug is free for a new org once that completes');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      'molecule-operator status: no org has the slug "nope"\nhint: molecule-operator status lists them all\n',
    );
  }, 120_000);

  it('plan without AWS credentials says where credentials come from', async () => {
    expect((await run(['migrate'], { DATABASE_URL: empty })).code).toBe(0);
    // No instance metadata service to wait for: the SDK's chain ends at once.
    const res = await run(['plan'], { DATABASE_URL: empty, AWS_EC2_METADATA_DISABLED: 'true' });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^molecule-operator plan: .*Could not load credentials/m);
    expect(res.stderr).toContain('hint: no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID');
  }, 60_000);

  it('a port in use is named by its setting', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'molecule-port-'));
    const held = createServer();
    await new Promise<void>((r) => held.listen(0, '0.0.0.0', r));
    const port = String((held.address() as { port: number }).port);
    try {
      const env = { DATABASE_URL: empty, CP_ADMIN_API_TOKEN: TOKEN };
      const [api, metrics, sim] = await Promise.all([
        run(['api'], { ...env, PORT: port, METRICS_PORT: '0' }),
        run(['run'], { ...env, METRICS_PORT: port }),
        run(['demo', '--data-dir', dataDir, '--sim-port', port]),
      ]);
      expect(api.code).toBe(1);
      expect(api.stderr).toContain(`molecule-operator api: port ${port} (PORT) is already in use\nhint: `);
      expect(metrics.code).toBe(1);
      expect(metrics.stderr).toContain(
        `molecule-operator run: port ${port} (METRICS_PORT) is already in use`,
      );
      expect(sim.code).toBe(1);
      expect(sim.stderr).toContain(`molecule-operator demo: port ${port} (--sim-port) is already in use`);
    } finally {
      held.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
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
registerHooks({ resolve(s, c, next) { const r = next(s, c); appendFileSync(process.env.TRACE_FILE, r.url + '\\n'); return r; } });
`,
      );
      const traced = (args: string[]) =>
        new Promise<string[]>((resolve) => {
          const trace = join(dir, `trace-${args.join('-')}`);
          const child = spawn(process.execPath, ['--import', hooks, BIN, ...args], {
            env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', TRACE_FILE: trace },
            stdio: 'ignore',
          });
          child.on('close', () => resolve(readFileSync(trace, 'utf8').split('\n')));
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
