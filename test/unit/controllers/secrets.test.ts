import { describe, expect, it } from 'vitest';
import { secrets } from '../../../controllers/index.js';
import type { Instance, SecretSummary } from '../../../src/cloud/ports.js';
import { bootstrapSecretName } from '../../../src/provisioning/names.js';
import { bundlePolicy, instanceArn } from '../../../src/provisioning/policies.js';
import { ownerTags } from '../../../src/provisioning/tags.js';
import { config, decide, ec2Instance, type Given, ORG_ID } from './harness.js';

const NAME = bootstrapSecretName('test', ORG_ID);
const summary = (over: Partial<SecretSummary> = {}): SecretSummary => ({
  arn: `arn:aws:secretsmanager:us-east-1:123456789012:secret:${NAME}-AbCdEf`,
  name: NAME,
  tags: ownerTags({ env: 'test', orgId: ORG_ID, orgSlug: 'acme', name: NAME }),
  currentVersionId: 'v1',
  deletedDate: undefined,
  lastChangedDate: undefined,
  ...over,
});
const bundle = (over: Record<string, string> = {}) =>
  JSON.stringify({
    orgId: ORG_ID,
    orgSlug: 'acme',
    dbPassword: 'generated-1',
    adminToken: 'generated-2',
    tunnelToken: 'token-t1',
    provisionSharedSecret: config.PROVISION_SHARED_SECRET,
    ghcrPullToken: config.GHCR_PULL_TOKEN,
    cpBaseUrl: config.CP_BASE_URL,
    ...over,
  });
const ACCOUNT = '123456789012';
/** The policy the controller wants: the tenant role from these instances only. */
const policy = (instanceIds: string[] = []) =>
  bundlePolicy({
    account: ACCOUNT,
    tenantRole: 'molecule-tenant',
    workspaceRole: 'molecule-workspace',
    instanceArns: instanceIds.map((id) => instanceArn('us-east-1', ACCOUNT, id)),
  });
const tenantVm = (id: string, state: Instance['state'] = 'running'): Instance =>
  ec2Instance({ id, state, tags: ownerTags({ env: 'test', orgId: ORG_ID, orgSlug: 'acme', name: 'vm' }) });
const tunnelReady = { tunnel: { externalIds: { tunnelId: 't1' } } };
const withValue = (value: string, over: { policy?: string; instances?: Instance[] } = {}): Given => ({
  self: { ...tunnelReady, secrets: { externalIds: { secretArn: summary().arn } } },
  cloud: {
    secrets: [summary()],
    secretValues: { [NAME]: value },
    secretPolicies: { [NAME]: 'policy' in over ? over.policy! : policy() },
    instances: over.instances ?? [],
  },
});

describe('secrets: observed + desired → action', () => {
  it.each<{ reason: string; given: Given; want: { action: string; diff?: string[] } }>([
    {
      reason: 'no bundle: create it, the token becoming its first version',
      given: { self: tunnelReady },
      want: { action: 'create' },
    },
    {
      reason: 'a complete bundle: nothing to do',
      given: withValue(bundle()),
      want: { action: 'none', diff: [] },
    },
    {
      reason: 'a generated credential missing: rewrite, generating only that one',
      given: withValue(bundle({ adminToken: '' })),
      want: { action: 'update', diff: ['bundle: adminToken missing'] },
    },
    {
      reason: 'the tunnel token changed: rewrite the bundle',
      given: withValue(bundle({ tunnelToken: 'token-old' })),
      want: { action: 'update', diff: ['bundle: tunnelToken outdated'] },
    },
    {
      reason: 'no policy yet and no tenant instance: close it to everyone',
      given: withValue(bundle(), { policy: undefined as never }),
      want: { action: 'update', diff: ['policy: not closed until the tenant instance exists'] },
    },
    {
      reason: 'the tenant instance launched: the policy must name it',
      given: withValue(bundle(), { instances: [tenantVm('i-new', 'pending')] }),
      want: { action: 'update', diff: ['policy: not limited to the current tenant instance'] },
    },
    {
      reason: 'the policy names the current instance (whitespace and order aside): nothing to do',
      given: withValue(bundle(), {
        instances: [tenantVm('i-1'), tenantVm('i-gone', 'terminated')],
        policy: JSON.stringify(JSON.parse(policy(['i-1'])), null, 2),
      }),
      want: { action: 'none', diff: [] },
    },
    {
      reason: 'the policy still names a replaced instance: rewrite it',
      given: withValue(bundle(), {
        instances: [tenantVm('i-old', 'terminated'), tenantVm('i-new')],
        policy: policy(['i-old']),
      }),
      want: { action: 'update', diff: ['policy: not limited to the current tenant instance'] },
    },
    {
      reason: 'an unreadable bundle is repaired like an empty one',
      given: withValue('not json'),
      want: { action: 'update' },
    },
    {
      reason: 'scheduled for deletion out of band: restore it',
      given: {
        self: { ...tunnelReady, secrets: { externalIds: { secretArn: summary().arn } } },
        cloud: { secrets: [summary({ deletedDate: new Date() })] },
      },
      want: { action: 'update', diff: ['secret is scheduled for deletion'] },
    },
    {
      reason: 'deleting with the bundle there: delete it (recovery window)',
      given: { deleting: true, self: tunnelReady, cloud: { secrets: [summary()] } },
      want: { action: 'delete' },
    },
    {
      reason: 'deleting and it is scheduled for deletion already: release',
      given: {
        deleting: true,
        self: tunnelReady,
        cloud: { secrets: [summary({ deletedDate: new Date() })] },
      },
      want: { action: 'release' },
    },
  ])('$reason', async ({ given, want }) => {
    const { action, obs } = await decide(secrets, given);
    expect(action.type).toBe(want.action);
    if (want.diff) expect(obs.diff).toEqual(want.diff);
    if (want.action === 'create') expect(action).toEqual({ type: 'create', token: `${ORG_ID}-bootstrap-1` });
  });

  it('reads neither value nor policy again until the secret changes', async () => {
    const changed = new Date('2026-05-01T00:00:00Z');
    const first = await decide(secrets, {
      ...withValue(bundle()),
      cloud: { ...withValue(bundle()).cloud, secrets: [summary({ lastChangedDate: changed })] },
    });
    const verified = first.obs.state as Record<string, unknown>;
    expect(verified).toMatchObject({
      verifiedVersionId: 'v1',
      policy: policy(),
      policyCheckedAt: changed.toISOString(),
    });
    // Value and policy would now read as broken: neither is read again.
    const again = await decide(secrets, {
      self: { ...tunnelReady, secrets: { externalIds: { secretArn: summary().arn }, state: verified } },
      cloud: {
        secrets: [summary({ lastChangedDate: changed })],
        secretValues: { [NAME]: 'not json' },
        secretPolicies: { [NAME]: '{}' },
      },
    });
    expect(again.action).toEqual({ type: 'none' });
    // Once LastChangedDate moves (someone changed the secret), the policy is read again.
    const moved = await decide(secrets, {
      self: { ...tunnelReady, secrets: { externalIds: { secretArn: summary().arn }, state: verified } },
      cloud: {
        secrets: [summary({ lastChangedDate: new Date('2026-05-02T00:00:00Z') })],
        secretPolicies: { [NAME]: '{}' },
      },
    });
    expect(moved.obs.diff).toEqual(['policy: not closed until the tenant instance exists']);
  });
});
