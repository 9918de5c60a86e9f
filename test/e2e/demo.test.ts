import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const bin = new URL('../../bin/molecule-operator.js', import.meta.url).pathname;
const dataDir = mkdtempSync(join(tmpdir(), 'molecule-demo-'));
const TOKEN = 'demo-test-token-0123456789abcdef';

interface Demo {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function startDemo(): Demo {
  // The demo must use its own embedded store, whatever the test run's DATABASE_URL says.
  const { DATABASE_URL: _, ...env } = process.env;
  const child = spawn(process.execPath, [bin, 'demo', '--data-dir', dataDir, '--sim-port', '0'], {
    env: { ...env, PORT: '0', METRICS_PORT: '0', CP_ADMIN_API_TOKEN: TOKEN, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function waitFor(demo: Demo, pattern: RegExp, timeoutMs = 90_000): Promise<RegExpMatchArray> {
  const start = Date.now();
  for (;;) {
    const m = demo.output().match(pattern);
    if (m) return m;
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out waiting for ${pattern}; output:\n${demo.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function api(base: string, path: string) {
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return res.json() as Promise<any>;
}

type DumpInstance = { state: string; tags: Record<string, string> | { key: string; value: string }[] };
interface SimDump {
  instances: DumpInstance[];
  tunnels: { name: string; deletedAt?: number | string | null }[];
  commands?: { comment: string }[];
  partitions: {
    account: string;
    region: string;
    instances: DumpInstance[];
    commands?: { comment: string }[];
  }[];
}

const tagsOf = (t: SimDump['instances'][number]['tags']): Record<string, string> =>
  Array.isArray(t) ? Object.fromEntries(t.map((x) => [x.key, x.value])) : t;

afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start (the demo)', () => {
  it('converges the sample fleet, shows the injected orphan, stops cleanly, and resumes without duplicates', async () => {
    const first = startDemo();
    try {
      const apiUrl = (await waitFor(first, /API\s+(http:\/\/\S+)/))[1]!;
      const metricsUrl = (await waitFor(first, /Metrics\s+(http:\/\/\S+)/))[1]!;
      await waitFor(first, /canary:\s+account 222222222222, us-west-2/);
      await waitFor(first, /globex .*\[canary: account 222222222222, us-west-2\]/);
      await waitFor(first, /All Ready in/);
      await waitFor(first, /Orphan scan: 1 ec2_instance orphaned/);
      // The image rollout: the canary org (in its own account) first, the soak, then the rest.
      await waitFor(first, /Rollout done in/);
      expect(first.output()).toMatch(
        /canary: 0 of 3 tenants run it[\s\S]*soaking[\s\S]*done: 3 of 3 tenants run it/,
      );

      // The last redeploys' Ready rows follow their tag updates within moments.
      const deadline = Date.now() + 10_000;
      for (;;) {
        const orgs = (await api(apiUrl, '/cp/orgs')).items as {
          status: { ready: boolean };
          workspaces: { status: { ready: boolean } }[];
        }[];
        expect(orgs).toHaveLength(3);
        if (orgs.every((o) => o.status.ready && o.workspaces.every((w) => w.status.ready))) break;
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 100));
      }
      const metrics = await (await fetch(metricsUrl)).text();
      expect(metrics).toMatch(
        /^molecule_orphan_resources\{kind="ec2_instance",env="demo",target="primary"\} 1$/m,
      );

      first.child.kill('SIGINT');
      expect(await first.exited).toBe(0);
      expect(first.output()).toContain('Stopped cleanly');
    } finally {
      first.child.kill('SIGKILL');
    }

    const second = startDemo();
    try {
      const apiUrl = (await waitFor(second, /API\s+(http:\/\/\S+)/))[1]!;
      const simUrl = (await waitFor(second, /Simulator\s+(http:\/\/\S+)/))[1]!;
      await waitFor(second, /Resuming/);
      await waitFor(second, /All Ready in/);
      await waitFor(second, /The image rollout ran in an earlier run/);
      const orgs = (await api(apiUrl, '/cp/orgs')).items as {
        id: string;
        slug: string;
        target: string;
        workspaces: { id: string }[];
      }[];
      expect(orgs).toHaveLength(3);
      const dump = (await (await fetch(`${simUrl}/_sim/state`)).json()) as SimDump;
      const running = (list: DumpInstance[]) =>
        list
          .filter((i) => i.state !== 'terminated' && i.state !== 'shutting-down')
          .map((i) => tagsOf(i.tags));
      const canary = dump.partitions.find((p) => p.account === '222222222222' && p.region === 'us-west-2');
      const live = [...running(dump.instances), ...running(canary?.instances ?? [])];
      // The canary sample org lives in the canary account, and only there.
      const globex = orgs.find((o) => o.slug === 'globex')!;
      expect(globex.target).toBe('canary');
      expect(running(canary?.instances ?? []).filter((t) => t.OrgID === globex.id)).toHaveLength(2);
      expect(running(dump.instances).filter((t) => t.OrgID === globex.id)).toHaveLength(0);
      for (const org of orgs) {
        expect(live.filter((t) => t.OrgID === org.id && t.Role === 'tenant')).toHaveLength(1);
        for (const w of org.workspaces) expect(live.filter((t) => t.WorkspaceID === w.id)).toHaveLength(1);
        expect(dump.tunnels.filter((t) => t.name === `molecule-demo-${org.id}` && !t.deletedAt)).toHaveLength(
          1,
        );
      }
      // Every tenant runs the rolled-out image; the canary's command was sent in the canary account.
      for (const t of live.filter((x) => x.Role === 'tenant' && x['molecule-demo-orphan'] !== 'true'))
        expect(t.Image).toBe('ghcr.io/molecule-ai/platform-tenant:demo-2');
      const canaryCommands = (canary?.commands ?? []).filter((c) => c.comment.endsWith(':demo-2'));
      expect(canaryCommands.map((c) => c.comment)).toEqual([
        expect.stringContaining(`redeploy ${globex.id} `),
      ]);
      expect((dump.commands ?? []).filter((c) => c.comment.endsWith(':demo-2'))).toHaveLength(2);
      // The orphan the first run leaked is still the only extra instance; nothing else was added.
      expect(live.filter((t) => t['molecule-demo-orphan'] === 'true')).toHaveLength(1);
      expect(live).toHaveLength(3 + 5 + 1);
      second.child.kill('SIGINT');
      expect(await second.exited).toBe(0);
    } finally {
      second.child.kill('SIGKILL');
    }
  }, 240_000);
});
