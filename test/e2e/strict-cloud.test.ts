import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STRICT_FIDELITY } from '../../src/sim/index.js';
import { type CloudReader, cloudReader } from '../helpers/cloud.js';
import { metricValue } from '../helpers/metrics.js';
import { eventually, type Stack, startStack } from '../helpers/stack.js';

/**
 * The whole operator against a strict cloud (every issue 21 behaviour on, at its realistic
 * window): write calls that do not see new objects, groups EC2 holds after termination,
 * tunnel connections that linger, short pages, the default group, tunnel status detail.
 * An org is created and deleted; the deletion waits where the cloud makes it wait, saying
 * why, without a reconcile error, and leaves nothing behind.
 */

let stack: Stack;
let cloud: CloudReader;

beforeAll(async () => {
  stack = await startStack({ env: { CREATE_GRACE: '2s' }, sim: { faults: STRICT_FIDELITY } });
  cloud = cloudReader(stack.sim);
});
afterAll(async () => {
  await stack?.close();
});

const bundle = (orgId: string) => `molecule/test/tenant/${orgId}/bootstrap`;

const errors = (controller: string) =>
  metricValue(stack.metrics.registry, 'molecule_reconcile_total', { controller, result: 'error' });

describe('a strict cloud', () => {
  it('creates an org with one of everything and deletes it without a leak, the waits named', {
    timeout: 120_000,
  }, async () => {
    const org = (await stack.api('POST', '/cp/orgs', { slug: 'strict-a' })).body as { id: string };
    expect(
      (await stack.api('POST', '/cp/orgs/strict-a/workspaces', { runtime: 'hermes', tier: 3 })).status,
    ).toBe(201);
    await eventually(
      async () => {
        const o = (await stack.api('GET', '/cp/orgs/strict-a')).body;
        return o.status.ready && o.workspaces.every((w: { status: { ready: boolean } }) => w.status.ready);
      },
      60_000,
      50,
    );
    expect(await cloud.liveInstances({ OrgID: org.id })).toHaveLength(2);
    expect(await cloud.securityGroups({ OrgID: org.id })).toHaveLength(2);
    // DescribeSecret: ListSecrets lags on this cloud.
    expect((await stack.ports.secrets.describeSecret(bundle(org.id))).deletedDate).toBeUndefined();
    expect((await cloud.liveTunnels()).filter((t) => t.name === `molecule-test-${org.id}`)).toHaveLength(1);

    const errorsBefore = {
      securitygroup: await errors('securitygroup'),
      tunnel: await errors('tunnel'),
      instance: await errors('instance'),
    };
    stack.sim.resetCalls();
    expect((await stack.api('DELETE', '/cp/orgs/strict-a')).status).toBe(202);
    const reasons = new Set<string>();
    await eventually(
      async () => {
        const res = await stack.api('GET', '/cp/orgs/strict-a');
        if (res.status === 404) return true;
        const views = [res.body.status, ...res.body.workspaces.map((w: { status: unknown }) => w.status)];
        for (const v of views)
          for (const c of (v as { conditions: { controller: string; reason: string }[] }).conditions)
            reasons.add(`${c.controller}:${c.reason}`);
        return false;
      },
      90_000,
      50,
    );

    // EC2 held the groups after their instances terminated: the deletion waited, saying so.
    expect([...reasons]).toContain('securitygroup:WaitingForDependents');
    // Waiting is not failing: no reconcile error while the cloud made the deletion wait.
    expect(await errors('securitygroup')).toBe(errorsBefore.securitygroup);
    expect(await errors('tunnel')).toBe(errorsBefore.tunnel);
    expect(await errors('instance')).toBe(errorsBefore.instance);
    // The tunnel's lingering connections were cleaned up rather than waited out.
    const cf = stack.sim.callLog().filter((c) => c.service === 'cloudflare' && c.mutating);
    expect(cf.map((c) => c.operation)).toContain('DELETE cfd_tunnel/:id/connections');
    expect(cf.filter((c) => c.operation === 'DELETE cfd_tunnel/:id').length).toBeLessThanOrEqual(3);

    // Nothing left behind.
    expect(await cloud.liveInstances({ OrgID: org.id })).toEqual([]);
    expect(await cloud.securityGroups({ OrgID: org.id })).toEqual([]);
    const secret = await stack.ports.secrets.describeSecret(bundle(org.id)).catch(() => undefined);
    expect(secret === undefined || secret.deletedDate !== undefined).toBe(true);
    expect((await cloud.liveTunnels()).filter((t) => t.name === `molecule-test-${org.id}`)).toEqual([]);
  });
});
