import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  /** Milliseconds from the spawn to the first output. */
  firstOutputMs: () => number | undefined;
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
  const spawned = Date.now();
  let first: number | undefined;
  child.stdout!.on('data', (d) => {
    first ??= Date.now() - spawned;
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
  return { child, output: () => out, exited, firstOutputMs: () => first };
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
  return { status: res.status, body: (await res.json()) as { items: unknown[] } };
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
    expect(first.output()).toContain(`took over the folder from pid ${gone}, which is gone`);
    const lock = JSON.parse(readFileSync(join(dataDir, 'demo.lock'), 'utf8'));
    expect(lock).toMatchObject({ pid: first.child.pid, apiUrl });

    // One complete export block: the environment, the folder, the API and the simulated accounts.
    const exports = first
      .output()
      .split('\n')
      .filter((l) => l.trim().startsWith('export '))
      .flatMap((l) => l.trim().slice('export '.length).split(' '));
    const exported = Object.fromEntries(exports.map((kv) => kv.split('=', 2) as [string, string]));
    expect(exported).toMatchObject({
      MOLECULE_ENV: 'demo',
      PGLITE_DIR: join(dataDir, 'pglite'),
      MOLECULE_API_URL: apiUrl,
      CP_ADMIN_API_TOKEN: TOKEN,
      AWS_ACCESS_KEY_ID: expect.any(String),
      AWS_SECRET_ACCESS_KEY: expect.any(String),
      CANARY_ROLE_ARN: expect.stringContaining('222222222222'),
      CLOUDFLARE_BASE_URL: expect.stringMatching(/^http:/),
    });
    expect((await call(exported.MOLECULE_API_URL!, 'POST', '/cp/orgs', { slug: 'acme' })).status).toBe(201);

    const owned = `the demo (pid ${first.child.pid}) owns ${dataDir}`;
    const [second, migrate] = [demo(), cli('migrate')];
    for (const p of [second, migrate]) {
      expect(await p.exited, p.output()).toBe(1);
      expect(p.output()).toContain(owned);
      expect(p.output()).toContain(apiUrl);
      expect(p.output()).not.toContain('Aborted');
    }
    // status and plan ask the demo that owns the folder, with the demo's environment and targets.
    const shell = { ...exported, PORT: '0', METRICS_PORT: '0' };
    const status = start(['status'], shell);
    const orphans = start(['orphans', '--scan', '-o', 'json'], shell);
    const plan = start(['plan'], shell);
    const planJson = start(['plan', '--json'], shell);
    expect(await status.exited, status.output()).toBe(0);
    expect(status.output()).toMatch(/^acme +org /m);
    // orphans runs in the demo, with its database and the simulator's credentials.
    expect(await orphans.exited, orphans.output()).toBe(0);
    const listed = JSON.parse(orphans.output().slice(orphans.output().indexOf('{')));
    expect(listed.scan).toMatchObject({ ok: true });
    // The demo leaks one instance on purpose once acme is Ready; nothing else is an orphan.
    for (const o of listed.orphans) expect(o.details.tags).toMatchObject({ 'molecule-demo-orphan': 'true' });
    // Exit 2 while the demo is still creating acme's resources, 0 once it has: both are right.
    expect([0, 2]).toContain(await plan.exited);
    expect(plan.output()).toMatch(/^Env: +MOLECULE_ENV=demo, PGlite /m);
    expect(plan.output()).toMatch(
      /^Targets: +primary \(us-east-1\), canary \(us-west-2, role arn:aws:iam::222222222222:/m,
    );
    expect(plan.output()).toMatch(/^Controllers off: +none$/m);
    expect([0, 2]).toContain(await planJson.exited);
    const report = JSON.parse(planJson.output().slice(planJson.output().indexOf('{')));
    expect(report).toMatchObject({ env: 'demo', off: [] });
    expect(report.actions.length).toBeGreaterThan(0);
    expect(report.actions.every((a: { org: string }) => a.org === 'acme')).toBe(true);
    // The first demo is unharmed.
    expect((await call(apiUrl, 'GET', '/cp/orgs')).status).toBe(200);

    first.child.kill('SIGINT');
    await first.exited;
    // Released on the way out.
    expect(() => readFileSync(join(dataDir, 'demo.lock'))).toThrow();
  }, 180_000);

  it('Ctrl-C before the sample fleet is made exits 130 quietly, and the next start finishes it', async () => {
    // The folder holds acme without its workspaces (the test above): a half-made fleet.
    const interrupted = demo();
    await waitFor(interrupted, /starting in /);
    interrupted.child.kill('SIGINT');
    expect(await interrupted.exited, interrupted.output()).toBe(130);
    expect(interrupted.output()).toContain('Interrupted before the sample orgs were all created');
    expect(interrupted.output()).toContain('Stopped cleanly');
    expect(interrupted.output()).not.toMatch(/TypeError|fetch failed|AbortError/);

    const next = demo();
    const apiUrl = (await waitFor(next, /^API\s+(http:\/\/\S+)/m))[1]!;
    await waitFor(next, /Finishing the sample orgs an interrupted run left half-made/);
    await waitFor(next, /All Ready in/);
    const orgs = (await call(apiUrl, 'GET', '/cp/orgs')).body.items as {
      slug: string;
      workspaces: { runtime: string }[];
    }[];
    expect(orgs.map((o) => o.slug).sort()).toEqual(['acme', 'globex', 'initech']);
    expect(
      orgs
        .find((o) => o.slug === 'acme')!
        .workspaces.map((w) => w.runtime)
        .sort(),
    ).toEqual(['hermes', 'langgraph']);
    expect(orgs.flatMap((o) => o.workspaces)).toHaveLength(5);
    // One org at a time, through the demo that owns the folder.
    const shell = { PGLITE_DIR: join(dataDir, 'pglite') };
    const [globex, none, initech] = [
      start(['plan', '--org', 'globex', '-o', 'json'], shell),
      start(['plan', '--org', 'nope'], shell),
      start(['status', 'initech'], shell),
    ];
    // globex is a canary org: planned against the canary account's listing, it is converged.
    expect(await globex.exited, globex.output()).toBe(0);
    const report = JSON.parse(globex.output().slice(globex.output().indexOf('{')));
    expect(report.actions.length).toBeGreaterThan(0);
    expect(report.actions.every((a: { org: string }) => a.org === 'globex')).toBe(true);
    expect(report.actions.every((a: { action: string }) => a.action === 'none')).toBe(true);
    expect(await none.exited).toBe(1);
    expect(none.output()).toContain('molecule-operator plan: no live org has the slug "nope"');
    expect(await initech.exited, initech.output()).toBe(0);
    expect(initech.output()).toMatch(/^└ crewai +workspace +\S+ +crewai +4 \(asked 5\) /m);
    expect(initech.output()).not.toMatch(/^acme /m);
    next.child.kill('SIGINT');
    expect(await next.exited, next.output()).toBe(0);
  }, 240_000);

  it('names the database it uses, leaves an exported DATABASE_URL alone, and says what --reset removes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'molecule-demo-reset-'));
    try {
      // Leftovers a reset must clear: junk that would not even load.
      mkdirSync(join(dir, 'pglite'));
      writeFileSync(join(dir, 'pglite', 'PG_VERSION'), 'junk');
      writeFileSync(join(dir, 'sim-state.json'), 'not json');
      const spawned = Date.now();
      const p = start(['demo', '--data-dir', dir, '--sim-port', '0', '--no-samples', '--reset'], {
        // Nothing answers here: using it would fail the start.
        DATABASE_URL: 'postgres://someone@127.0.0.1:1/elsewhere',
      });
      await waitFor(p, /^API\s+http/m);
      // The first line comes at once; the database, the simulator and the API take far longer.
      expect(p.output()).toMatch(/^molecule-operator demo: starting in /);
      expect(p.firstOutputMs()! * 4).toBeLessThan(Date.now() - spawned);
      expect(p.output()).toMatch(
        /^Reset: removed from .*:\n {2}pglite +the embedded database .*\n {2}sim-state\.json +the simulated cloud/m,
      );
      expect(p.output()).toContain(
        `Database     PGlite ${join(dir, 'pglite')} (embedded); DATABASE_URL in this shell is not used`,
      );
      p.child.kill('SIGINT');
      expect(await p.exited, p.output()).toBe(0);
      expect(readdirSync(dir).sort()).toEqual(['demo.log', 'generated.json', 'pglite', 'sim-state.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
