import { describe, expect, it } from 'vitest';
import { desiredImage } from '../../../src/provisioning/images.js';
import { bootstrapSecretName, workspaceBootstrapSecretName } from '../../../src/provisioning/names.js';
import {
  bootScriptFingerprint,
  renderRedeployCommand,
  renderUserData,
  type UserDataInput,
} from '../../../src/provisioning/userdata.js';

const ORG = '3f1c2a4e-0000-4000-8000-00000000000a';

const tenant: UserDataInput & { image: string } = {
  role: 'tenant',
  env: 'prod',
  region: 'us-east-1',
  orgId: ORG,
  image: 'ghcr.io/molecule/platform:2',
  secretName: bootstrapSecretName('prod', ORG),
  cpBaseUrl: 'https://api.example',
};
const workspace: UserDataInput & { image: string } = {
  role: 'workspace',
  env: 'prod',
  region: 'us-east-1',
  orgId: ORG,
  workspaceId: 'w-1',
  runtime: 'hermes',
  image: 'ghcr.io/molecule/hermes:7',
  secretName: workspaceBootstrapSecretName('prod'),
  cpBaseUrl: 'https://api.example',
};

/** The lines from the first `docker pull` to the end: the container section. */
const containerLines = (script: string) => {
  const lines = script.trimEnd().split('\n');
  return lines.slice(lines.findIndex((l) => l.includes('read_boot_secret >')));
};

describe('redeploy command', () => {
  it.each([
    { reason: 'tenant', given: tenant },
    { reason: 'workspace', given: workspace },
  ])('runs the boot script itself, with the new image ($reason)', ({ given }) => {
    const boot = renderUserData(given);
    const command = renderRedeployCommand(given);
    // One source: the redeploy recreates the container exactly as the boot script created it.
    expect(command).toBe(boot);
    expect(containerLines(command).filter((l) => l.startsWith('docker run')).length).toBe(1);
    // It pulls before it removes: a failed pull leaves the running container alone.
    const lines = containerLines(command);
    expect(lines.findIndex((l) => l.startsWith('docker pull'))).toBeLessThan(
      lines.findIndex((l) => l.startsWith('docker rm -f molecule')),
    );
    expect(command).toContain(`MOLECULE_IMAGE='${given.image}'`);
    // The host reads its secret with its role: no credential is in the command.
    expect(command).not.toMatch(/dbPassword|adminToken|tunnelToken|ghp_|AKIA/);
    // Never stops, reboots or replaces the host.
    expect(command).not.toMatch(/\b(reboot|shutdown|poweroff|halt)\b/);
  });

  it('reads the workspace bootstrap secret for a workspace, never its tenant bundle', () => {
    const command = renderRedeployCommand(workspace);
    expect(command).toContain("MOLECULE_BOOTSTRAP_SECRET='molecule/prod/shared/workspace-bootstrap'");
    expect(command).not.toContain('/tenant/');
    expect(command).not.toContain('--env-file');
  });

  it('boots a workspace without an image pin with no container', () => {
    const text = renderUserData({ ...workspace, image: undefined });
    expect(text).not.toContain('docker');
  });

  it('fingerprints the boot script without its image', () => {
    expect(bootScriptFingerprint(tenant)).toBe(bootScriptFingerprint({ ...tenant, image: 'ghcr.io/x/y:3' }));
    expect(bootScriptFingerprint(tenant)).not.toBe(
      bootScriptFingerprint({ ...tenant, cpBaseUrl: 'https://b' }),
    );
    expect(bootScriptFingerprint(tenant)).not.toBe(bootScriptFingerprint(workspace));
    // Another owner of the same kind boots from the same script.
    const other = '3f1c2a4e-0000-4000-8000-00000000000b';
    expect(
      bootScriptFingerprint({ ...tenant, orgId: other, secretName: bootstrapSecretName('prod', other) }),
    ).toBe(bootScriptFingerprint(tenant));
  });
});

describe('desired image', () => {
  const config = { TENANT_IMAGE: 'ghcr.io/m/platform:1', CANARY_TENANT_IMAGE: 'ghcr.io/m/platform:2' };
  const pins = (image: Record<string, string | undefined>) => ({ image: (r: string) => image[r] });
  it.each([
    { reason: 'tenant', given: { canary: false, pins: {}, ws: undefined }, want: 'ghcr.io/m/platform:1' },
    {
      reason: 'canary tenant',
      given: { canary: true, pins: {}, ws: undefined },
      want: 'ghcr.io/m/platform:2',
    },
    {
      reason: 'tenant pin',
      given: { canary: true, pins: { tenant: 'ghcr.io/m/platform:9' }, ws: undefined },
      want: 'ghcr.io/m/platform:9',
    },
    {
      reason: 'workspace pin',
      given: { canary: false, pins: { hermes: 'ghcr.io/m/hermes:3' }, ws: 'hermes' },
      want: 'ghcr.io/m/hermes:3',
    },
    { reason: 'workspace without pin', given: { canary: true, pins: {}, ws: 'hermes' }, want: undefined },
  ])('$reason', ({ given, want }) => {
    expect(
      desiredImage(
        config,
        pins(given.pins),
        { isCanary: given.canary },
        given.ws ? { runtime: given.ws } : undefined,
      ),
    ).toBe(want);
  });
  it('falls back to TENANT_IMAGE for a canary when CANARY_TENANT_IMAGE is unset', () => {
    expect(desiredImage({ TENANT_IMAGE: 'a/b:1' }, pins({}), { isCanary: true }, undefined)).toBe('a/b:1');
  });
});
