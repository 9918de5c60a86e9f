import {
  AuthorizeSecurityGroupIngressCommand,
  RevokeSecurityGroupIngressCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { DeleteSecretCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CloudReader, cloudReader } from '../helpers/cloud.js';
import { metricValue } from '../helpers/metrics.js';
import { eventually, type Stack, startStack } from '../helpers/stack.js';

let stack: Stack;
let cloud: CloudReader;
let org: { id: string };
let ws: { id: string };
const secretName = () => `molecule/test/tenant/${org.id}/bootstrap`;

beforeAll(async () => {
  stack = await startStack();
  cloud = cloudReader(stack.sim);
  org = (await stack.api('POST', '/cp/orgs', { slug: 'drifty' })).body;
  ws = (await stack.api('POST', '/cp/orgs/drifty/workspaces', { runtime: 'langgraph', tier: 4 })).body;
  await converged();
});
afterAll(async () => {
  await stack?.close();
});

async function converged() {
  return eventually(async () => {
    const o = (await stack.api('GET', '/cp/orgs/drifty')).body;
    return o.status.ready && o.workspaces.every((w: { status: { ready: boolean } }) => w.status.ready);
  }, 20_000);
}

/** A periodic resync, as the cron would run it. */
async function resync() {
  await stack.operator!.manager.resync('test');
  await stack.operator!.manager.idle();
}

const drift = (controller: string) =>
  metricValue(stack.metrics.registry, 'molecule_drift_corrections_total', { controller });

describe('drift is corrected by the next resync and counted', () => {
  it('security group: a revoked rule comes back and an SSH-to-the-world rule goes', async () => {
    const [sg] = await cloud.securityGroups({ WorkspaceID: ws.id });
    const before = await drift('securitygroup');
    await cloud.ec2.send(
      new RevokeSecurityGroupIngressCommand({
        GroupId: sg!.GroupId,
        IpPermissions: [
          {
            IpProtocol: 'tcp',
            FromPort: 22,
            ToPort: 22,
            UserIdGroupPairs: [{ GroupId: stack.sim.seed.eicSecurityGroupId }],
          },
        ],
      }),
    );
    await cloud.ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: sg!.GroupId,
        IpPermissions: [{ IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '0.0.0.0/0' }] }],
      }),
    );
    await resync();
    await eventually(async () => {
      const [g] = await cloud.securityGroups({ WorkspaceID: ws.id });
      const perms = g!.IpPermissions ?? [];
      return (
        perms.length === 1 &&
        perms[0]!.UserIdGroupPairs?.[0]?.GroupId === stack.sim.seed.eicSecurityGroupId &&
        (perms[0]!.IpRanges ?? []).length === 0
      );
    });
    expect(await drift('securitygroup')).toBeGreaterThan(before);
  });

  it('instance: terminated out of band is relaunched under a new launch generation', async () => {
    const [old] = await cloud.liveInstances({ WorkspaceID: ws.id });
    await cloud.ec2.send(new TerminateInstancesCommand({ InstanceIds: [old!.InstanceId!] }));
    await resync();
    const replacement = await eventually(async () => {
      const live = (await cloud.liveInstances({ WorkspaceID: ws.id })).filter(
        (i) => i.State?.Name !== 'shutting-down',
      );
      return live.length === 1 && live[0]!.InstanceId !== old!.InstanceId ? live[0] : undefined;
    });
    expect(replacement.ClientToken).toBe(`${ws.id}-2`);
    await converged();
  });

  it('instance: stopped out of band is started again', async () => {
    const [i] = await cloud.liveInstances({ WorkspaceID: ws.id });
    await cloud.ec2.send(new StopInstancesCommand({ InstanceIds: [i!.InstanceId!] }));
    await eventually(
      async () => (await cloud.liveInstances({ WorkspaceID: ws.id }))[0]?.State?.Name === 'stopped',
    );
    const before = await drift('instance');
    await resync();
    await eventually(
      async () => (await cloud.liveInstances({ WorkspaceID: ws.id }))[0]?.State?.Name === 'running',
    );
    expect(await drift('instance')).toBeGreaterThan(before);
  });

  it('DNS: a deleted record is recreated and a redirected one is pointed back', async () => {
    const zone = stack.sim.seed.cloudflareZoneId;
    const [rec] = (await cloud.dnsRecords()).filter((r) => r.name === 'drifty.moleculesai.app');
    await cloud.cf.dns.records.delete(rec!.id!, { zone_id: zone });
    await resync();
    const back = await eventually(async () =>
      (await cloud.dnsRecords()).find((r) => r.name === 'drifty.moleculesai.app'),
    );
    const target = back.content;
    await cloud.cf.dns.records.edit(back.id!, { zone_id: zone, content: 'evil.example.com' } as never);
    await resync();
    await eventually(
      async () =>
        (await cloud.dnsRecords()).find((r) => r.name === 'drifty.moleculesai.app')?.content === target,
    );
    expect((await cloud.dnsRecords()).filter((r) => r.name === 'drifty.moleculesai.app')).toHaveLength(1);
  });

  it('tunnel: a replaced configuration is restored', async () => {
    const [t] = (await cloud.liveTunnels()).filter((x) => x.name === `molecule-test-${org.id}`);
    await cloud.cf.zeroTrust.tunnels.cloudflared.configurations.update(t!.id!, {
      account_id: stack.sim.seed.cloudflareAccountId,
      config: { ingress: [{ service: 'http_status:503' } as never] },
    });
    await resync();
    await eventually(async () => {
      const c = await cloud.tunnelConfig(t!.id!);
      return c.config?.ingress?.length === 2 && c.config.ingress[1]?.service === 'http_status:404';
    });
  });

  it('secret: a removed key is put back, keeping the generated credentials', async () => {
    const original = await cloud.secretValue(secretName());
    const { adminToken: _, ...partial } = original;
    await cloud.sm.send(
      new PutSecretValueCommand({ SecretId: secretName(), SecretString: JSON.stringify(partial) }),
    );
    await resync();
    await eventually(async () => !!(await cloud.secretValue(secretName())).adminToken);
    const repaired = await cloud.secretValue(secretName());
    expect(repaired.dbPassword).toBe(original.dbPassword);
    expect(repaired.tunnelToken).toBe(original.tunnelToken);
  });

  it('secret: deleted with a recovery window, it is restored with the same credentials', async () => {
    const original = await cloud.secretValue(secretName());
    await cloud.sm.send(new DeleteSecretCommand({ SecretId: secretName(), RecoveryWindowInDays: 7 }));
    await resync();
    await eventually(async () => (await cloud.liveSecrets(secretName())).length === 1);
    const restored = await cloud.secretValue(secretName());
    expect(restored.dbPassword).toBe(original.dbPassword);
    expect(restored.adminToken).toBe(original.adminToken);
  });

  it('secret: force-deleted, it is recreated with new credentials and a condition saying so', async () => {
    const original = await cloud.secretValue(secretName());
    await cloud.sm.send(
      new DeleteSecretCommand({ SecretId: secretName(), ForceDeleteWithoutRecovery: true }),
    );
    await resync();
    const recreated = await eventually(async () => {
      const v = await cloud.secretValue(secretName()).catch(() => undefined);
      return v?.dbPassword ? v : undefined;
    });
    expect(recreated.dbPassword).not.toBe(original.dbPassword);
    const cond = await eventually(async () => {
      const o = (await stack.api('GET', '/cp/orgs/drifty')).body;
      return o.status.conditions.find(
        (c: { controller: string; reason: string }) =>
          c.controller === 'secrets' && c.reason === 'CredentialsRegenerated',
      );
    });
    expect(cond.ready).toBe(true);
    expect(await cloud.liveSecrets(`molecule/test/tenant/${org.id}/`)).toHaveLength(1);
  });

  it('a steady-state resync makes no mutating call', async () => {
    await converged();
    await resync();
    stack.sim.resetCalls();
    await resync();
    const mutating = stack.sim.callLog().filter((c) => c.mutating);
    expect(mutating).toEqual([]);
  });
});
