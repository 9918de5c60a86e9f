import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// The demo as its users meet it: one folder, one owner; the commands that share the folder say so.
const bin = new URL('../../bin/molecule-operator.js', import.meta.url).pathname;
const dataDir = mkdtempSync(join(tmpdir(), 'molecule-demo-ux-'));
const TOKEN = 'demo-ux-token-0123456789abcdef';
const children = new Set<ChildProcess>();

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** The real bin, with the test run's DATABASE_URL removed: the demo and the CLI use the folder. */
function start(args: string[], extra: Record<string, string> = {}): Proc {
  const { DATABASE_URL: _, ...env } = process.env;
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...env, PORT: '0', METRICS_PORT: '0', CP_ADMIN_API_TOKEN: TOKEN, ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return { child, output: () => out, exited };
}

const demo = (...args: string[]) => start(['demo', '--data-dir', dataDir, '--sim-port', '0', ...args]);
const cli = (...args: string[]) => start(args, { PGLITE_DIR: join(dataDir, 'pglite') });

async function waitFor(p: Proc, pattern: RegExp, timeoutMs = 90_000): Promise<RegExpMatchArray> {
  const started = Date.now();
  for (;;) {
    const m = p.output().match(pattern);
    if (m) return m;
    if (Date.now() - started > timeoutMs || p.child.exitCode !== null)
      throw new Error(`no ${pattern} in the output:\n${p.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function call(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as any };
}

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

describe('the demo owns its data folder', () => {
  it('takes over a stale lock, turns away a second demo and the commands that would open its database', async () => {
    // A lock left by a process that is gone (kill -9, a crash): taken over, not obeyed.
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(join(dataDir, 'demo.lock'), JSON.stringify({ pid: gone, dataDir, startedAt: 'then' }));

    const first = demo('--no-samples');
    const apiUrl = (await waitFor(first, /^API\s+(http:\/\/\S+)/m))[1]!;
    const lock = JSON.parse(readFileSync(join(dataDir, 'demo.lock'), 'utf8'));
    expect(lock).toMatchObject({ pid: first.child.pid, apiUrl });

    const owned = `the demo (pid ${first.child.pid}) owns ${dataDir}`;
    const [second, status, orphans] = [demo(), cli('status'), cli('orphans')];
    for (const p of [second, status, orphans]) {
      expect(await p.exited, p.output()).toBe(1);
      expect(p.output()).toContain(owned);
      expect(p.output()).toContain(apiUrl);
      expect(p.output()).not.toContain('Aborted');
    }
    // The first demo is unharmed.
    expect((await call(apiUrl, 'GET', '/cp/orgs')).status).toBe(200);

    first.child.kill('SIGINT');
    await first.exited;
    // Released on the way out.
    expect(() => readFileSync(join(dataDir, 'demo.lock'))).toThrow();
  }, 180_000);
});
