import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Simulator, startSimulator } from '../../src/sim/index.js';
import { insertOrg, insertWorkspace } from '../fixtures/owners.js';
import { cloudReader } from '../helpers/cloud.js';
import { createTestDatabase, type TestDatabase, usingServer } from '../helpers/db.js';
import { eventually, SIM_CREDENTIALS, simEnv } from '../helpers/stack.js';

const bin = new URL('../../bin/molecule-operator.js', import.meta.url).pathname;

let sim: Simulator;
let tdb: TestDatabase;

beforeAll(async () => {
  sim = await startSimulator({ port: 0, profile: 'fast' });
  tdb = await createTestDatabase();
});
afterAll(async () => {
  await tdb?.drop();
  await sim?.close();
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

// A child process needs a database it can reach on its own: PostgreSQL (always in CI).
describe.skipIf(!usingServer())('molecule-operator run', () => {
  it('gates the instance controller without an instance profile, converges the rest, and stops cleanly on SIGTERM', async () => {
    const metricsPort = await freePort();
    const { EC2_TENANT_IAM_PROFILE: _, ...env } = simEnv(sim);
    const child: ChildProcess = spawn(process.execPath, [bin, 'run'], {
      env: {
        ...process.env,
        ...env,
        AWS_ACCESS_KEY_ID: SIM_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: SIM_CREDENTIALS.secretAccessKey,
        DATABASE_URL: tdb.url,
        MOLECULE_ENV: 'runtest',
        METRICS_PORT: String(metricsPort),
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let logs = '';
    child.stdout!.on('data', (d) => (logs += d));
    child.stderr!.on('data', (d) => (logs += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const ready = await eventually(async () => {
        const res = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
        return res.status === 200
          ? ((await res.json()) as { checks: { controllers: Record<string, string> } })
          : undefined;
      }, 30_000);
      expect(ready.checks.controllers.instance).toMatch(/^disabled: .*EC2_TENANT_IAM_PROFILE/);
      expect(ready.checks.controllers.securitygroup).toBe('enabled');
      expect(logs).toContain('controller disabled');

      const org = await insertOrg(tdb.database.db, { slug: 'gated' });
      await insertWorkspace(tdb.database.db, org.id);
      const cloud = cloudReader(sim);
      await eventually(async () => (await cloud.securityGroups({ OrgID: org.id })).length === 2, 20_000);
      await eventually(
        async () => (await cloud.liveSecrets(`molecule/runtest/tenant/${org.id}/`)).length === 1,
        20_000,
      );
      await eventually(
        async () => (await cloud.liveTunnels()).some((t) => t.name === `molecule-runtest-${org.id}`),
        20_000,
      );
      expect(await cloud.liveInstances({ OrgID: org.id })).toHaveLength(0);
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(metrics).toMatch(/^molecule_controller_enabled\{controller="instance"\} 0$/m);
      expect(metrics).toMatch(/^molecule_is_leader\{target="primary"\} 1$/m);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      const [lease] = await tdb.database.query<{ released: boolean }>(
        'SELECT expires_at <= now() AS released FROM leases',
      );
      expect(lease?.released).toBe(true); // handed over at once, not after 15 s
    } finally {
      child.kill('SIGKILL');
    }
  }, 90_000);
});
