import { describe, expect, it } from 'vitest';
import { instance } from '../../../controllers/index.js';
import type { Instance } from '../../../src/cloud/ports.js';
import { ownerTags } from '../../../src/provisioning/tags.js';
import { config, decide, type Given, ORG_ID, WS_ID } from './harness.js';

const tenantTags = {
  ...ownerTags({ env: 'test', orgId: ORG_ID, orgSlug: 'acme', name: 'molecule-test-tenant-acme' }),
  SGID: 'sg-tenant',
};
const workspaceTags = {
  ...ownerTags({
    env: 'test',
    orgId: ORG_ID,
    orgSlug: 'acme',
    name: `molecule-test-ws-${WS_ID.slice(0, 12)}`,
    workspace: { id: WS_ID, runtime: 'langgraph' },
  }),
  SGID: 'sg-ws',
};
const tenantVm = (over: Partial<Instance> = {}): Instance => ({
  id: 'i-tenant',
  state: 'running',
  instanceType: config.EC2_INSTANCE_TYPE,
  imageId: config.EC2_AMI,
  subnetId: config.EC2_SUBNET_ID,
  vpcId: config.EC2_VPC_ID,
  securityGroupIds: ['sg-tenant'],
  iamInstanceProfileArn: undefined,
  clientToken: `${ORG_ID}-1`,
  launchTime: new Date('2026-05-01T00:00:00Z'),
  metadata: { httpTokens: 'required', hopLimit: 1 },
  tags: tenantTags,
  ...over,
});
const workspaceVm = (over: Partial<Instance> = {}): Instance =>
  tenantVm({ id: 'i-ws', instanceType: 't3.large', clientToken: `${WS_ID}-1`, tags: workspaceTags, ...over });

const tenant: Given = {
  self: {
    securitygroup: { externalIds: { groupId: 'sg-tenant' } },
    instance: { externalIds: { instanceId: 'i-tenant' }, state: { token: `${ORG_ID}-1` } },
  },
};
const ws = (g: Given): Given => ({
  workspace: {},
  self: {
    securitygroup: { externalIds: { groupId: 'sg-ws' } },
    instance: { externalIds: { instanceId: 'i-ws' }, state: { token: `${WS_ID}-1` } },
  },
  ...g,
});

describe('instance: observed + desired → action', () => {
  it.each<{ reason: string; given: Given; want: { action: string; diff?: string[]; token?: string } }>([
    {
      reason: 'no instance: launch with the first launch generation as the client token',
      given: { self: { securitygroup: { externalIds: { groupId: 'sg-tenant' } } } },
      want: { action: 'create', token: `${ORG_ID}-1` },
    },
    {
      reason: 'running as desired: nothing to do',
      given: { ...tenant, cloud: { instances: [tenantVm()] } },
      want: { action: 'none', diff: [] },
    },
    {
      reason: 'the tenant is stopped by request: stop the instance',
      given: { ...tenant, org: { powerState: 'stopped', generation: 2 }, cloud: { instances: [tenantVm()] } },
      want: { action: 'update', diff: ['power: running → stopped'] },
    },
    {
      reason: 'stopped out of band while desired running: start it (drift)',
      given: { ...tenant, cloud: { instances: [tenantVm({ state: 'stopped' })] } },
      want: { action: 'update', diff: ['power: stopped → running'] },
    },
    {
      reason: 'a stopped tenant stops its workspaces too',
      given: ws({ org: { powerState: 'stopped' }, cloud: { instances: [workspaceVm()] } }),
      want: { action: 'update', diff: ['power: running → stopped'] },
    },
    {
      reason: 'tier 3 on a tier-4 instance: resize (stop, modify, start)',
      given: ws({ workspace: { tier: 3, generation: 2 }, cloud: { instances: [workspaceVm()] } }),
      want: { action: 'update', diff: ['instanceType: t3.large → t3.medium'] },
    },
    {
      reason: 'tier 5 clamps to tier 4: nothing to do',
      given: ws({ workspace: { tier: 5 }, cloud: { instances: [workspaceVm()] } }),
      want: { action: 'none', diff: [] },
    },
    {
      reason: 'still pending: wait for it to settle before acting on its power state',
      given: {
        ...tenant,
        org: { powerState: 'stopped' },
        cloud: { instances: [tenantVm({ state: 'pending' })] },
      },
      want: { action: 'none', diff: [] },
    },
    {
      reason: 'terminated out of band: relaunch under the next launch generation',
      given: { ...tenant, cloud: { instances: [tenantVm({ state: 'terminated' })] } },
      want: { action: 'create', token: `${ORG_ID}-2` },
    },
    {
      reason: 'a tag removed out of band is put back',
      given: { ...tenant, cloud: { instances: [tenantVm({ tags: { ...tenantTags, OrgSlug: 'old' } })] } },
      want: { action: 'update', diff: ['tag OrgSlug'] },
    },
    {
      reason: 'deleting: terminate every live instance of the owner',
      given: { ...tenant, deleting: true, cloud: { instances: [tenantVm(), tenantVm({ id: 'i-dup' })] } },
      want: { action: 'delete' },
    },
    {
      reason: 'deleting and only terminated instances remain: release',
      given: { ...tenant, deleting: true, cloud: { instances: [tenantVm({ state: 'terminated' })] } },
      want: { action: 'release' },
    },
  ])('$reason', async ({ given, want }) => {
    const { action, obs } = await decide(instance, given);
    expect(action.type).toBe(want.action);
    if (want.diff) expect(obs.diff).toEqual(want.diff);
    if (want.token) expect(action).toEqual({ type: 'create', token: want.token });
  });

  it('keeps the instance its launch token names when there are two, and reports pending as progress', async () => {
    const older = tenantVm({
      id: 'i-older',
      clientToken: 'someone-else',
      launchTime: new Date('2026-01-01'),
    });
    const { obs } = await decide(instance, { ...tenant, cloud: { instances: [older, tenantVm()] } });
    expect(obs.externalIds).toEqual({ instanceId: 'i-tenant' });
    const pending = await decide(instance, {
      ...tenant,
      cloud: { instances: [tenantVm({ state: 'pending' })] },
    });
    expect(pending.obs.progressing).toBe('instance is pending');
  });
});
