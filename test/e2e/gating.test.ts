import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CloudReader, cloudReader } from '../helpers/cloud.js';
import { eventually, type Stack, startStack } from '../helpers/stack.js';

let stack: Stack;
let cloud: CloudReader;

beforeAll(async () => {
  // No Cloudflare: the tunnel controller is off; everything else still converges.
  stack = await startStack({
    env: { CLOUDFLARE_API_TOKEN: '', CLOUDFLARE_ACCOUNT_ID: '', CLOUDFLARE_ZONE_ID: '' },
  });
  cloud = cloudReader(stack.sim);
});
afterAll(async () => {
  await stack?.close();
});

describe('gating: missing Cloudflare settings', () => {
  it('disables only the tunnel controller and says why; secrets, groups and instances converge', async () => {
    expect(stack.operator!.disabled.get('tunnel')).toMatch(/CLOUDFLARE_API_TOKEN/);
    expect([...stack.operator!.disabled.keys()]).toEqual(['tunnel']);
    const org = (await stack.api('POST', '/cp/orgs', { slug: 'no-cf' })).body;
    await stack.api('POST', '/cp/orgs/no-cf/workspaces', { runtime: 'langgraph', tier: 3 });
    const ready = await eventually(async () => {
      const o = (await stack.api('GET', '/cp/orgs/no-cf')).body;
      return o.status.ready && o.workspaces.every((w: { status: { ready: boolean } }) => w.status.ready)
        ? o
        : undefined;
    }, 20_000);
    expect(ready.status.conditions.map((c: { controller: string }) => c.controller).sort()).toEqual([
      'instance',
      'redeploy',
      'secrets',
      'securitygroup',
    ]);
    expect(await cloud.liveInstances({ OrgID: org.id })).toHaveLength(2);
    const bundle = await cloud.secretValue(`molecule/test/tenant/${org.id}/bootstrap`);
    expect(bundle.tunnelToken).toBe('');
    expect(bundle.dbPassword).toBeTruthy();
    expect(await cloud.liveTunnels()).toHaveLength(0);

    // Deletion still completes without the disabled controller.
    expect((await stack.api('DELETE', '/cp/orgs/no-cf')).status).toBe(202);
    await eventually(async () => (await stack.api('GET', '/cp/orgs/no-cf')).status === 404, 20_000);
    expect(await cloud.liveInstances({ OrgID: org.id })).toHaveLength(0);
    expect(await cloud.securityGroups({ OrgID: org.id })).toHaveLength(0);
  });
});
