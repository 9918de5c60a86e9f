import { describe, expect, it } from 'vitest';
import {
  bootstrapSecretName,
  dnsComment,
  orgIdFromDnsComment,
  orgIdFromSecretName,
  orgIdFromTunnelName,
  tunnelName,
  workspaceBootstrapSecretName,
} from '../../../src/provisioning/names.js';
import { ownerTags, TAG } from '../../../src/provisioning/tags.js';
import { workspaceResources } from '../../../src/provisioning/tiers.js';
import { renderUserData } from '../../../src/provisioning/userdata.js';

const ORG = '0b7c1c5e-9f4b-4d0e-8a51-1c2d3e4f5a6b';

describe('tier table (seed: workspaceTierResources)', () => {
  it.each([
    { tier: 1, runtime: 'langgraph', want: { tier: 4, instanceType: 't3.large', volumeGb: 80 } },
    { tier: 2, runtime: 'langgraph', want: { tier: 4, instanceType: 't3.large', volumeGb: 80 } },
    { tier: 3, runtime: 'langgraph', want: { tier: 3, instanceType: 't3.medium', volumeGb: 40 } },
    { tier: 4, runtime: 'langgraph', want: { tier: 4, instanceType: 't3.large', volumeGb: 80 } },
    { tier: 5, runtime: 'langgraph', want: { tier: 4, instanceType: 't3.large', volumeGb: 80 } },
    { tier: 3, runtime: 'hermes', want: { tier: 3, instanceType: 't3.medium', volumeGb: 50 } },
    { tier: 4, runtime: 'hermes', want: { tier: 4, instanceType: 't3.large', volumeGb: 80 } },
    { tier: 1, runtime: 'hermes', want: { tier: 4, instanceType: 't3.large', volumeGb: 80 } },
  ])('tier $tier $runtime → $want.instanceType $want.volumeGb GB', ({ tier, runtime, want }) => {
    expect(workspaceResources(tier, runtime)).toEqual(want);
  });
});

describe('names', () => {
  it('round-trips the org id through every deterministic name, for this env only', () => {
    expect(orgIdFromTunnelName('prod', tunnelName('prod', ORG))).toBe(ORG);
    expect(orgIdFromTunnelName('staging', tunnelName('prod', ORG))).toBeUndefined();
    expect(orgIdFromSecretName('prod', `${bootstrapSecretName('prod', ORG)}-AbC123`)).toBe(ORG);
    expect(orgIdFromSecretName('prod', 'molecule/prod/tenant/not-a-uuid/bootstrap')).toBeUndefined();
    expect(orgIdFromDnsComment('prod', dnsComment('prod', ORG))).toBe(ORG);
    expect(orgIdFromDnsComment('dev', dnsComment('prod', ORG))).toBeUndefined();
    expect(orgIdFromDnsComment('prod', undefined)).toBeUndefined();
  });
});

describe('tags', () => {
  it('marks tenant and workspace resources with owner and env', () => {
    expect(ownerTags({ env: 'prod', orgId: ORG, orgSlug: 'acme', name: 'n' })).toEqual({
      ManagedBy: 'molecule-operator',
      MOLECULE_ENV: 'prod',
      OrgID: ORG,
      OrgSlug: 'acme',
      Role: 'tenant',
      Name: 'n',
    });
    expect(
      ownerTags({
        env: 'prod',
        orgId: ORG,
        orgSlug: 'acme',
        name: 'n',
        workspace: { id: 'w', runtime: 'hermes' },
      }),
    ).toMatchObject({
      Role: 'workspace',
      WorkspaceID: 'w',
      Runtime: 'hermes',
    });
  });
});

describe('user-data', () => {
  it('names the bootstrap secret and carries no credential', () => {
    const text = renderUserData({
      role: 'tenant',
      env: 'prod',
      region: 'us-east-1',
      orgId: ORG,
      image: "ghcr.io/x/y:1 '; rm -rf /",
      secretName: bootstrapSecretName('prod', ORG),
      cpBaseUrl: 'https://api.example',
    });
    expect(text).toContain(`MOLECULE_BOOTSTRAP_SECRET='molecule/prod/tenant/${ORG}/bootstrap'`);
    expect(text).toContain(`MOLECULE_IMAGE='ghcr.io/x/y:1 '\\''; rm -rf /'`);
    expect(text).not.toMatch(/dbPassword|adminToken|tunnelToken/i);
    // The secret's policy follows the launch: the script waits until it may read.
    expect(text).toMatch(/until aws secretsmanager get-secret-value/);
  });

  it('gives a workspace the workspace bootstrap secret and nothing of its tenant', () => {
    const text = renderUserData({
      role: 'workspace',
      env: 'prod',
      region: 'us-east-1',
      orgId: ORG,
      workspaceId: 'w-1',
      runtime: 'hermes',
      image: 'ghcr.io/x/hermes:1',
      secretName: workspaceBootstrapSecretName('prod'),
      cpBaseUrl: 'https://api.example',
    });
    expect(text).toContain("MOLECULE_BOOTSTRAP_SECRET='molecule/prod/shared/workspace-bootstrap'");
    expect(text).not.toContain('/tenant/');
    expect(text).not.toContain('--env-file');
    // The agent gets who it is and its identity document, read-only; the host reads IMDS with a token.
    expect(text).toContain('/etc/molecule/identity.pkcs7:/etc/molecule/identity.pkcs7:ro');
    expect(text).toContain('X-aws-ec2-metadata-token');
  });
});

describe('owner tags', () => {
  it('use exactly the TAG names (ownerTags spells them out for speed)', () => {
    const ws = { id: 'w1', runtime: 'hermes' };
    expect(Object.keys(ownerTags({ env: 'e', orgId: ORG, orgSlug: 's', name: 'n', workspace: ws }))).toEqual([
      TAG.managedBy,
      TAG.env,
      TAG.orgId,
      TAG.orgSlug,
      TAG.role,
      TAG.name,
      TAG.workspaceId,
      TAG.runtime,
    ]);
  });
});
