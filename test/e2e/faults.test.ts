import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CloudReader, cloudReader } from '../helpers/cloud.js';
import { eventually, type Stack, startStack } from '../helpers/stack.js';

let stack: Stack;
let cloud: CloudReader;

const LOST = 0.4; // share of creates whose response is lost after the change was applied

beforeAll(async () => {
  stack = await startStack({
    env: { CREATE_GRACE: '1s' },
    sim: {
      faults: {
        errorAfterCommitRatio: 1,
        eventualConsistencyMs: 300,
        operations: {
          'ec2:RunInstances': { errorRate: LOST },
          'ec2:CreateSecurityGroup': { errorRate: LOST },
          'secretsmanager:CreateSecret': { errorRate: LOST },
          'cloudflare:POST cfd_tunnel': { errorRate: LOST },
          'cloudflare:POST dns_records': { errorRate: LOST },
          // Failed observations must never read as "absent".
          'ec2:DescribeInstances': { errorRate: 0.2, throttleRate: 0.1 },
          'ec2:DescribeSecurityGroups': { errorRate: 0.2 },
          'secretsmanager:ListSecrets': { errorRate: 0.2 },
          'cloudflare:GET cfd_tunnel': { errorRate: 0.2 },
        },
      },
    },
  });
  cloud = cloudReader(stack.sim);
});
afterAll(async () => {
  await stack?.close();
});

describe('faults: lost create responses, failing reads, eventual consistency', () => {
  it('converges with exactly one of everything: lost creates are adopted, never repeated', async () => {
    const slugs = ['lossy-a', 'lossy-b', 'lossy-c'];
    const orgs: { id: string }[] = [];
    for (const slug of slugs) {
      orgs.push((await stack.api('POST', '/cp/orgs', { slug })).body);
      for (const runtime of ['hermes', 'langgraph']) {
        expect((await stack.api('POST', `/cp/orgs/${slug}/workspaces`, { runtime, tier: 4 })).status).toBe(
          201,
        );
      }
    }
    await eventually(
      async () => {
        for (const slug of slugs) {
          const o = (await stack.api('GET', `/cp/orgs/${slug}`)).body;
          if (!o.status.ready || !o.workspaces.every((w: { status: { ready: boolean } }) => w.status.ready))
            return false;
        }
        return true;
      },
      60_000,
      100,
    );
    const clear = Object.fromEntries(
      Object.keys(stack.sim.getFaults().operations ?? {}).map((k) => [k, null]),
    );
    stack.sim.setFaults({ operations: clear as never, eventualConsistencyMs: 0 });

    // The faults did happen: some creates failed after committing.
    const failed = stack.sim
      .calls()
      .filter(
        (c) =>
          ['RunInstances', 'CreateSecurityGroup', 'CreateSecret'].includes(c.operation) && c.status >= 500,
      );
    expect(failed.reduce((a, c) => a + c.count, 0)).toBeGreaterThan(0);

    for (const org of orgs) {
      expect(await cloud.liveInstances({ OrgID: org.id })).toHaveLength(3);
      expect(await cloud.securityGroups({ OrgID: org.id })).toHaveLength(3);
      expect(await cloud.liveSecrets(`molecule/test/tenant/${org.id}/`)).toHaveLength(1);
      expect((await cloud.liveTunnels()).filter((t) => t.name === `molecule-test-${org.id}`)).toHaveLength(1);
    }
    const records = await cloud.dnsRecords();
    for (const slug of slugs)
      expect(records.filter((r) => r.name === `${slug}.moleculesai.app`)).toHaveLength(1);
    // Nothing was ever deleted on the strength of a failed read.
    const deletes = stack.sim
      .callLog()
      .filter((c) => c.mutating && /Terminate|Delete/.test(c.operation) && c.status < 300);
    expect(deletes).toEqual([]);
  }, 90_000);
});
