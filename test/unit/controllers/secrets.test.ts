import { describe, expect, it } from 'vitest';
import { secrets } from '../../../controllers/index.js';
import type { SecretSummary } from '../../../src/cloud/ports.js';
import { bootstrapSecretName } from '../../../src/provisioning/names.js';
import { ownerTags } from '../../../src/provisioning/tags.js';
import { config, decide, type Given, ORG_ID } from './harness.js';

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
const tunnelReady = { tunnel: { externalIds: { tunnelId: 't1' } } };
const withValue = (value: string): Given => ({
  self: { ...tunnelReady, secrets: { externalIds: { secretArn: summary().arn } } },
  cloud: { secrets: [summary()], secretValues: { [NAME]: value } },
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

  it('reads no value once a version is verified with the same inputs', async () => {
    const first = await decide(secrets, withValue(bundle()));
    const verified = first.obs.state as { verifiedVersionId: string; fingerprint: string };
    expect(verified.verifiedVersionId).toBe('v1');
    // The value would now read as broken: it is not read again.
    const again = await decide(secrets, {
      self: { ...tunnelReady, secrets: { externalIds: { secretArn: summary().arn }, state: verified } },
      cloud: { secrets: [summary()], secretValues: { [NAME]: 'not json' } },
    });
    expect(again.action).toEqual({ type: 'none' });
  });
});
