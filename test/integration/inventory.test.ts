import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCloudPorts } from '../../src/cloud/index.js';
import { FleetInventory, Inventory, MAX_ORGS_PER_LISTING } from '../../src/cloud/inventory.js';
import type { CloudPorts } from '../../src/cloud/ports.js';
import { unlimited } from '../../src/cloud/ratelimit.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { tenantSecurityGroupName, workspaceSecurityGroupName } from '../../src/provisioning/names.js';
import { ownerTags } from '../../src/provisioning/tags.js';
import { CloudError } from '../../src/runtime/errors.js';
import { type Simulator, startSimulator } from '../../src/sim/index.js';
import { testConfig } from '../fixtures/config.js';
import { SIM_CREDENTIALS, simEnv } from '../helpers/stack.js';

/**
 * The resync lists instances and security groups per batch of orgs (OrgID filter), the rest
 * once for the env: each batch must see exactly its orgs' resources, across pages, and a batch
 * EC2 would refuse is never sent.
 */

const ENV = 'test';
let sim: Simulator;
let ports: CloudPorts;

const config = () => testConfig({ ...simEnv(sim), MOLECULE_ENV: ENV });

beforeAll(async () => {
  sim = await startSimulator({ port: 0, profile: 'fast' });
});
afterAll(async () => {
  await sim.close();
});
beforeEach(() => {
  sim.reset();
  sim.setFaults({ errorRate: 0, throttleRate: 0, buckets: false });
  // Pages of 5 so that one batch's listing spans several pages.
  ports = createCloudPorts(config(), {
    metrics: createMetrics({ defaults: false }),
    awsCredentials: SIM_CREDENTIALS,
    maxAttempts: 1,
    limiter: unlimited,
    pageSize: 5,
  });
});

/** An org's tenant group and instance, and one workspace's, tagged as the controllers tag them. */
async function provisionOrg(orgId: string, env = ENV) {
  const wsId = randomUUID();
  const owners = [
    { name: tenantSecurityGroupName(env, orgId), tags: ownerTags({ env, orgId, orgSlug: 's', name: 'n' }) },
    {
      name: workspaceSecurityGroupName(env, wsId),
      tags: ownerTags({ env, orgId, orgSlug: 's', name: 'n', workspace: { id: wsId, runtime: 'node' } }),
    },
  ];
  for (const o of owners) {
    const sg = await ports.ec2.createSecurityGroup({
      name: o.name,
      description: 'd',
      vpcId: sim.seed.vpcId,
      tags: o.tags,
    });
    await ports.ec2.runInstance({
      clientToken: `${o.name}-1`,
      imageId: 'ami-0ea3c35c5c3284d82',
      instanceType: 't3.small',
      subnetId: sim.seed.subnetId,
      securityGroupIds: [sg],
      iamInstanceProfileName: 'p',
      volumeSizeGb: 30,
      userData: '',
      tags: o.tags,
    });
  }
  return { orgId, wsId };
}

const describeCalls = () =>
  sim
    .calls()
    .filter((c) => c.operation === 'DescribeInstances' || c.operation === 'DescribeSecurityGroups')
    .reduce((n, c) => n + c.count, 0);

describe('FleetInventory.forOrgs', () => {
  it("answers each batch's owners from its own listing, across pages, and nobody else's", async () => {
    const orgs = [];
    for (let i = 0; i < 6; i++) orgs.push(await provisionOrg(randomUUID()));
    const foreignEnv = await provisionOrg(orgs[0]!.orgId, 'other'); // same org id, other env
    const fleet = await FleetInventory.list(ports, ENV);
    const batch = await fleet.forOrgs(orgs.slice(0, 4).map((o) => o.orgId));

    expect(batch.counts.instances).toBe(8);
    expect(batch.counts.securityGroups).toBe(8);
    for (const o of orgs.slice(0, 4)) {
      const [tenant] = await batch.instances({ kind: 'org', id: o.orgId }, o.orgId);
      expect(tenant?.tags).toMatchObject({ OrgID: o.orgId, Role: 'tenant', MOLECULE_ENV: ENV });
      const [ws] = await batch.instances({ kind: 'workspace', id: o.wsId }, o.orgId);
      expect(ws?.tags).toMatchObject({ OrgID: o.orgId, WorkspaceID: o.wsId });
      expect(await batch.securityGroups(tenantSecurityGroupName(ENV, o.orgId))).toHaveLength(1);
      expect(await batch.securityGroups(workspaceSecurityGroupName(ENV, o.wsId))).toHaveLength(1);
    }
    // Orgs outside the batch, and the other env's resources, are not in it.
    for (const o of [...orgs.slice(4), foreignEnv]) {
      expect(await batch.instances({ kind: 'workspace', id: o.wsId }, o.orgId)).toEqual([]);
      expect(await batch.securityGroups(workspaceSecurityGroupName(ENV, o.wsId))).toEqual([]);
    }
    expect(await batch.instances({ kind: 'org', id: orgs[5]!.orgId }, orgs[5]!.orgId)).toEqual([]);

    // The whole-env inventory (`plan`) holds the union.
    const all = await Inventory.build(ports, ENV);
    expect(all.counts.instances).toBe(12);
    expect(all.counts.securityGroups).toBe(12);
  });

  it('lists as many orgs as one EC2 filter can name in one call per page, and refuses more without a call', async () => {
    const o = await provisionOrg(randomUUID());
    const fleet = await FleetInventory.list(ports, ENV);
    const ids = [o.orgId, ...Array.from({ length: MAX_ORGS_PER_LISTING - 1 }, () => randomUUID())];
    sim.resetCalls();
    const batch = await fleet.forOrgs(ids);
    expect(await batch.instances({ kind: 'workspace', id: o.wsId }, o.orgId)).toHaveLength(1);
    expect(describeCalls()).toBe(2); // one page each: two instances and two groups

    sim.resetCalls();
    await expect(fleet.forOrgs([...ids, randomUUID()])).rejects.toThrow(RangeError);
    // The adapter refuses a filter EC2 would refuse, before sending it.
    await expect(
      ports.ec2.describeInstances({
        tags: { ManagedBy: 'molecule-operator', MOLECULE_ENV: ENV },
        tagIn: { key: 'OrgID', values: [...ids, randomUUID()] },
      }),
    ).rejects.toMatchObject({ errorClass: 'Terminal' });
    expect(describeCalls()).toBe(0);
  });

  it('fails as a whole when a page fails: a batch is never a partial listing', async () => {
    const orgs = [];
    for (let i = 0; i < 4; i++) orgs.push(await provisionOrg(randomUUID()));
    const fleet = await FleetInventory.list(ports, ENV);
    sim.setFaults({ operations: { 'ec2:DescribeSecurityGroups': { errorRate: 1 } } as never });
    const failed = await fleet.forOrgs(orgs.map((o) => o.orgId)).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(CloudError);
    expect((failed as CloudError).errorClass).toBe('Transient');
  });
});
