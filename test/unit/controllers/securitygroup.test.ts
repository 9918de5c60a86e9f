import { describe, expect, it } from 'vitest';
import { securitygroup } from '../../../controllers/index.js';
import type { IngressRule, SecurityGroup } from '../../../src/cloud/ports.js';
import { tenantSecurityGroupName, workspaceSecurityGroupName } from '../../../src/provisioning/names.js';
import { ownerTags } from '../../../src/provisioning/tags.js';
import { config, decide, type Given, NOW, ORG_ID, WS_ID } from './harness.js';

const EIC: IngressRule = {
  protocol: 'tcp',
  fromPort: 22,
  toPort: 22,
  sourceGroupId: config.EIC_ENDPOINT_SG_ID!,
  description: 'EC2 Instance Connect',
};
const PLATFORM: IngressRule = {
  protocol: 'tcp',
  fromPort: 8080,
  toPort: 8080,
  cidr: '10.42.0.0/16',
  description: 'platform',
};
const WORLD_SSH: IngressRule = { protocol: 'tcp', fromPort: 22, toPort: 22, cidr: '0.0.0.0/0' };

const TENANT = tenantSecurityGroupName('test', ORG_ID);
const tenantGroup = (over: Partial<SecurityGroup> = {}): SecurityGroup => ({
  id: 'sg-tenant',
  name: TENANT,
  vpcId: config.EC2_VPC_ID,
  description: 'molecule tenant acme',
  ingress: [EIC, PLATFORM],
  tags: ownerTags({ env: 'test', orgId: ORG_ID, orgSlug: 'acme', name: TENANT }),
  ...over,
});
const WORKSPACE = workspaceSecurityGroupName('test', WS_ID);
const workspaceGroup = (over: Partial<SecurityGroup> = {}): SecurityGroup => ({
  id: 'sg-ws',
  name: WORKSPACE,
  vpcId: config.EC2_VPC_ID,
  description: `molecule workspace ${WS_ID}`,
  ingress: [EIC],
  tags: ownerTags({
    env: 'test',
    orgId: ORG_ID,
    orgSlug: 'acme',
    name: WORKSPACE,
    workspace: { id: WS_ID, runtime: 'langgraph' },
  }),
  ...over,
});
const ready = { securitygroup: { externalIds: { groupId: 'sg-tenant' } } };

describe('securitygroup: observed + desired → action', () => {
  it.each<{ reason: string; given: Given; want: { action: string; diff?: string[]; drift?: boolean } }>([
    { reason: 'no group: create it under its deterministic name', given: {}, want: { action: 'create' } },
    {
      reason: 'the tenant group as desired: nothing to do',
      given: { cloud: { groups: [tenantGroup()] }, self: ready },
      want: { action: 'none', diff: [] },
    },
    {
      reason: 'SSH opened to the world out of band: revoke it (drift)',
      given: { cloud: { groups: [tenantGroup({ ingress: [EIC, PLATFORM, WORLD_SSH] })] }, self: ready },
      want: { action: 'update', diff: ['ingress: extra tcp/22 from 0.0.0.0/0'], drift: true },
    },
    {
      reason: 'the platform rule is missing',
      given: { cloud: { groups: [tenantGroup({ ingress: [EIC] })] }, self: ready },
      want: { action: 'update', diff: ['ingress: missing tcp/8080 from 10.42.0.0/16'], drift: true },
    },
    {
      reason: 'the VPC CIDR changed: the platform rule follows it',
      given: { cloud: { groups: [tenantGroup()], vpcCidr: '10.50.0.0/16' }, self: ready },
      want: {
        action: 'update',
        diff: ['ingress: missing tcp/8080 from 10.50.0.0/16', 'ingress: extra tcp/8080 from 10.42.0.0/16'],
      },
    },
    {
      reason: 'a workspace group admits SSH from the EIC endpoint only',
      given: {
        workspace: {},
        cloud: { groups: [workspaceGroup({ ingress: [EIC, PLATFORM] })] },
        self: { securitygroup: { externalIds: { groupId: 'sg-ws' } } },
      },
      want: { action: 'update', diff: ['ingress: extra tcp/8080 from 10.42.0.0/16'], drift: true },
    },
    {
      reason: 'an ownership tag stripped out of band is put back',
      given: {
        cloud: { groups: [tenantGroup({ tags: { ...tenantGroup().tags, OrgID: '' } })] },
        self: ready,
      },
      want: { action: 'update', diff: ['tag OrgID'], drift: true },
    },
    {
      reason: 'a new generation of the spec is an update, not drift',
      given: { org: { generation: 2 }, cloud: { groups: [tenantGroup({ ingress: [EIC] })] }, self: ready },
      want: { action: 'update', drift: false },
    },
    {
      reason: 'created moments ago and not visible yet: wait, never create twice',
      given: {
        self: {
          securitygroup: {
            ready: false,
            pending: { token: TENANT, startedAt: new Date(NOW - 1_000).toISOString() },
          },
        },
      },
      want: { action: 'wait' },
    },
    {
      reason: 'deleting with the group there: delete it',
      given: { deleting: true, cloud: { groups: [tenantGroup()] }, self: ready },
      want: { action: 'delete' },
    },
    {
      reason: 'deleting and the group is gone: release',
      given: { deleting: true, self: ready },
      want: { action: 'release' },
    },
    {
      reason: 'no VPC configured: the shared group stands for every owner',
      given: { config: { EC2_VPC_ID: '', EC2_SECURITY_GROUP: 'sg-0badc0ffee0000001' } },
      want: { action: 'none', diff: [] },
    },
  ])('$reason', async ({ given, want }) => {
    const { action, obs } = await decide(securitygroup, given);
    expect(action.type).toBe(want.action);
    if (want.diff) expect(obs.diff).toEqual(want.diff);
    if (want.drift !== undefined) expect(action).toMatchObject({ drift: want.drift });
    if (want.action === 'create') expect(action).toEqual({ type: 'create', token: TENANT });
  });

  it('says which shared group it uses when no VPC is configured', async () => {
    const { obs } = await decide(securitygroup, {
      config: { EC2_VPC_ID: '', EC2_SECURITY_GROUP: 'sg-0badc0ffee0000001' },
    });
    expect(obs.externalIds).toEqual({ groupId: 'sg-0badc0ffee0000001' });
    expect(obs.readyCondition).toEqual({
      reason: 'SharedSecurityGroup',
      message: 'EC2_VPC_ID is not set: using the shared EC2_SECURITY_GROUP for every owner',
    });
  });
});
