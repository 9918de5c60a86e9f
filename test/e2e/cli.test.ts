import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from '../../src/cli/commands.js';
import { withDatabase } from '../global-setup.js';
import { usingServer } from '../helpers/db.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'molecule-operator.js');
const TOKEN = 'e2e-admin-token-3c8d0f7a21';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();

/** Starts the real bin with exactly `env` (plus PATH/HOME): nothing leaks in from the test process. */
function start(args: string[], env: Record<string, string>) {
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
  const exited = new Promise<Exit>((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      // 'close' follows once the pipes are drained.
      child.on('close', () => resolve({ code, signal, stdout, stderr }));
    });
  });
  return { child, exited, output: () => ({ stdout, stderr }) };
}

const run = (args: string[], env: Record<string, string> = {}) => start(args, env).exited;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// This file's own empty database: the migrate command must create the schema itself.
let dbEnv: Record<string, string>;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  if (usingServer()) {
    const serverUrl = process.env.DATABASE_URL!;
    const name = `molecule_e2e_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    dbEnv = { DATABASE_URL: withDatabase(serverUrl, name) };
    cleanup = async () => {
      const a = new pg.Client({ connectionString: serverUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    };
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'molecule-e2e-'));
    dbEnv = { PGLITE_DIR: join(dir, 'pglite') };
    cleanup = async () => rmSync(dir, { recursive: true, force: true });
  }
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await cleanup?.();
});

describe('molecule-operator', () => {
  it('--help lists every subcommand', async () => {
    const res = await run(['--help']);
    expect(res.code).toBe(0);
    for (const name of [
      'demo',
      'run',
      'api',
      'migrate',
      'plan',
      'status',
      'orphans',
      'pins',
      'rollout',
      'sim',
    ]) {
      expect(res.stdout).toMatch(new RegExp(`^  ${name} +\\S`, 'm'));
    }
    expect(Object.keys(commands).sort()).toEqual([
      'api',
      'demo',
      'migrate',
      'orphans',
      'pins',
      'plan',
      'rollout',
      'run',
      'sim',
      'status',
    ]);
  });

  it('rejects an unknown command and unknown flags with exit 2', async () => {
    const [unknown, flag] = await Promise.all([run(['frobnicate']), run(['migrate', '--frobnicate'], dbEnv)]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('--frobnicate');
  });

  it('reports every configuration problem at once and exits 2', async () => {
    const res = await run(['api'], { ...dbEnv, AWS_REGION: 'nowhere', PORT: 'eighty' });
    expect(res.code).toBe(2);
    for (const name of ['CP_ADMIN_API_TOKEN', 'AWS_REGION', 'PORT']) expect(res.stderr).toContain(name);
  });

  // Several process starts, each opening the database (PGlite takes seconds on a busy machine).
  it('migrate, then api serves the routes, then SIGTERM stops it cleanly; status shows the result', {
    timeout: 120_000,
  }, async () => {
    const first = await run(['migrate'], dbEnv);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/applied \d+ migrations?: 0000_init/);
    const second = await run(['migrate'], dbEnv);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('up to date');

    const port = await freePort();
    let metricsPort = await freePort();
    while (metricsPort === port) metricsPort = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const api = start(['api'], {
      ...dbEnv,
      CP_ADMIN_API_TOKEN: TOKEN,
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      LOG_LEVEL: 'info',
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await fetch(`${base}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline || api.child.exitCode !== null) {
        throw new Error(`api did not come up:\n${api.output().stderr}\n${api.output().stdout}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }

    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const created = await fetch(`${base}/cp/orgs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ slug: 'e2e-org' }),
    });
    expect(created.status).toBe(201);
    const org = (await created.json()) as { id: string };
    const ws = await fetch(`${base}/cp/orgs/e2e-org/workspaces`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ runtime: 'crewai', tier: 4 }),
    });
    expect(ws.status).toBe(201);
    const read = await fetch(`${base}/cp/orgs/e2e-org`, { headers });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({
      id: org.id,
      slug: 'e2e-org',
      workspaces: [{ runtime: 'crewai', tier: 4 }],
    });
    expect((await fetch(`${base}/cp/orgs/e2e-org`)).status).toBe(401);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    // Metrics on METRICS_PORT only, for monitoring; API clients on PORT do not get them.
    expect((await fetch(`${base}/metrics`, { headers })).status).toBe(404);
    const scrape = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(scrape.status).toBe(200);
    expect(await scrape.text()).toMatch(/^molecule_desired_objects\{kind="org",state="total"\} 1$/m);

    api.child.kill('SIGTERM');
    const exit = await api.exited;
    expect(exit.code, exit.stderr).toBe(0);
    const logs = exit.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string });
    expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'stopped']));
    expect(exit.stdout).not.toContain(TOKEN);

    const status = await run(['status'], dbEnv);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^e2e-org +org +[0-9a-f-]{36} .* Pending$/m);
    expect(status.stdout).toMatch(/└ crewai +workspace .* crewai +4 +running/);
    const json = await run(['status', '--json'], dbEnv);
    expect(JSON.parse(json.stdout)).toEqual([expect.objectContaining({ id: org.id, slug: 'e2e-org' })]);
  });
});
