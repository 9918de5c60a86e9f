import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  CreateTagsCommand,
  DeleteSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetResourcesCommand } from '@aws-sdk/client-resource-groups-tagging-api';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  ListSecretsCommand,
} from '@aws-sdk/client-secrets-manager';
import Cloudflare from 'cloudflare';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NO_FIDELITY, STRICT_FIDELITY } from '../../src/sim/index.js';
import { AMI, failure, type Harness, launch, startHarness } from './helpers.js';

/**
 * Issue 21's real-cloud behaviours, one knob at a time. Each is off in the `fast` and
 * `realistic` profiles; the simulated clock (`advance`) drives every window.
 */

let h: Harness;
let n = 0;
beforeAll(async () => {
  h = await startHarness();
});
afterEach(() => {
  h.sim.setFaults(NO_FIDELITY);
});
afterAll(async () => {
  await h.close();
});

const stateOf = async (id: string) =>
  (await h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0]
    ?.State?.Name;

describe('fidelity knobs', () => {
  it('are all off by default and all on with STRICT_FIDELITY', () => {
    const f = h.sim.getFaults();
    for (const key of Object.keys(STRICT_FIDELITY) as (keyof typeof f)[]) expect(f[key] ?? 0).toBeFalsy();
    h.sim.setFaults(STRICT_FIDELITY);
    expect(h.sim.getFaults()).toMatchObject(STRICT_FIDELITY);
  });

  it('1: write calls right after RunInstances, CreateSecurityGroup or TerminateInstances answer NotFound', async () => {
    h.sim.setFaults({ writeConsistencyMs: 5_000 });
    const i = (await launch(h, { Role: 'tenant' })).InstanceId!;
    const tag = () => h.ec2.send(new CreateTagsCommand({ Resources: [i], Tags: [{ Key: 'k', Value: 'v' }] }));
    const terminate = () => h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [i] }));
    expect((await failure(tag())).name).toBe('InvalidInstanceID.NotFound');
    // A NotFound from TerminateInstances does not mean the instance is gone.
    expect((await failure(terminate())).name).toBe('InvalidInstanceID.NotFound');
    h.sim.advance(100);
    expect(await stateOf(i)).toBe('running');
    h.sim.advance(5_000);
    await tag();
    await terminate();
    expect((await failure(terminate())).name).toBe('InvalidInstanceID.NotFound');
    expect(await stateOf(i)).toMatch(/^(shutting-down|terminated)$/);

    const g = (
      await h.ec2.send(
        new CreateSecurityGroupCommand({ GroupName: `wc-${++n}`, Description: 'd', VpcId: h.sim.seed.vpcId }),
      )
    ).GroupId!;
    const authorize = () =>
      h.ec2.send(
        new AuthorizeSecurityGroupIngressCommand({
          GroupId: g,
          IpPermissions: [
            { IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '10.0.0.0/8' }] },
          ],
        }),
      );
    expect((await failure(authorize())).name).toBe('InvalidGroup.NotFound');
    expect((await failure(h.ec2.send(new DeleteSecurityGroupCommand({ GroupId: g })))).name).toBe(
      'InvalidGroup.NotFound',
    );
    expect((await failure(launch(h, {}, { SecurityGroupIds: [g] }))).name).toBe('InvalidGroup.NotFound');
    h.sim.advance(5_000);
    await authorize();
    expect(
      (await h.ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [g] }))).SecurityGroups,
    ).toHaveLength(1);
  });

  it('2: a force-deleted name stays blocked, a scheduled secret refuses force delete, ListSecrets lags', async () => {
    h.sim.setFaults({
      secretNameReuseMs: 60_000,
      refuseForceDeleteOfScheduled: true,
      listSecretsLagMs: 10_000,
    });
    const name = `molecule/test/tenant/fid-${++n}/bootstrap`;
    await h.sm.send(new CreateSecretCommand({ Name: name, SecretString: 'x' }));
    const listed = async () =>
      (
        (
          await h.sm.send(
            new ListSecretsCommand({
              IncludePlannedDeletion: true,
              Filters: [{ Key: 'name', Values: [name] }],
            }),
          )
        ).SecretList ?? []
      ).map((s) => ({ name: s.Name, deleted: s.DeletedDate !== undefined }));
    expect(await listed()).toEqual([]);
    h.sim.advance(10_000);
    expect(await listed()).toEqual([{ name, deleted: false }]);

    await h.sm.send(new DeleteSecretCommand({ SecretId: name, RecoveryWindowInDays: 7 }));
    expect(await listed()).toEqual([{ name, deleted: false }]);
    const force = await failure(
      h.sm.send(new DeleteSecretCommand({ SecretId: name, ForceDeleteWithoutRecovery: true })),
    );
    expect(force).toMatchObject({
      name: 'InvalidRequestException',
      message: expect.stringMatching(/marked deleted/),
    });
    h.sim.advance(10_000);
    expect(await listed()).toEqual([{ name, deleted: true }]);

    const other = `molecule/test/tenant/fid-${++n}/bootstrap`;
    await h.sm.send(new CreateSecretCommand({ Name: other, SecretString: 'x' }));
    await h.sm.send(new DeleteSecretCommand({ SecretId: other, ForceDeleteWithoutRecovery: true }));
    const again = () => h.sm.send(new CreateSecretCommand({ Name: other, SecretString: 'y' }));
    expect(await failure(again())).toMatchObject({
      name: 'InvalidRequestException',
      message: expect.stringMatching(/already scheduled for deletion/),
    });
    h.sim.advance(60_000);
    expect((await again()).Name).toBe(other);
  });

  it('3: Cloudflare blocks a token for the rest of its 5-minute window after 1200 calls', async () => {
    h.sim.setFaults({ cloudflareRateLimit: true });
    const token = `fid-token-${++n}`;
    const verify = (t = token) =>
      fetch(`${h.sim.cloudflareBaseUrl}/user/tokens/verify`, { headers: { authorization: `Bearer ${t}` } });
    for (let sent = 0; sent < 1200; sent += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => verify()));
      expect(batch.every((r) => r.status === 200)).toBe(true);
    }
    const over = await verify();
    expect(over.status).toBe(429);
    expect(over.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(over.headers.get('retry-after-ms')).toBeNull();
    expect(((await over.json()) as { errors: { code: number }[] }).errors[0]?.code).toBe(971);
    // Every call fails for the rest of the window, through the SDK too; other tokens are not affected.
    const cf = new Cloudflare({ apiToken: token, baseURL: h.sim.cloudflareBaseUrl, maxRetries: 0 });
    expect(
      (await failure(cf.zeroTrust.tunnels.cloudflared.list({ account_id: h.sim.seed.cloudflareAccountId })))
        .status,
    ).toBe(429);
    expect((await verify('someone-else')).status).toBe(200);
    h.sim.advance(300_000);
    expect((await verify()).status).toBe(200);
  });

  it('4 and 7: tunnel connections linger after the connector stops; status runs inactive → healthy → degraded → down', async () => {
    h.sim.setFaults({ tunnelConnectionLingerMs: 30_000, tunnelStatusDetail: true });
    const account = { account_id: h.sim.seed.cloudflareAccountId };
    const tunnels = h.cf.zeroTrust.tunnels.cloudflared;
    const t = await tunnels.create({ ...account, name: `fid-tunnel-${++n}`, config_src: 'cloudflare' });
    const status = async () => (await tunnels.get(t.id!, account)).status;
    expect(await status()).toBe('inactive');
    const i = (await launch(h, { TunnelID: t.id! })).InstanceId!;
    h.sim.advance(1_000);
    expect(await status()).toBe('healthy');
    await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [i] }));
    h.sim.advance(1_000);
    expect(await status()).toBe('degraded');
    const refused = await failure(tunnels.delete(t.id!, account));
    expect(refused.status).toBe(400);
    expect(refused.errors?.[0]?.code).toBe(1022);
    h.sim.advance(30_000);
    expect(await status()).toBe('down');

    // The cleanup endpoint clears lingering connections at once.
    const u = await tunnels.create({ ...account, name: `fid-tunnel-${++n}`, config_src: 'cloudflare' });
    const j = (await launch(h, { TunnelID: u.id! })).InstanceId!;
    h.sim.advance(1_000);
    await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [j] }));
    h.sim.advance(1_000);
    expect((await failure(tunnels.delete(u.id!, account))).errors?.[0]?.code).toBe(1022);
    await tunnels.connections.delete(u.id!, account);
    expect((await tunnels.delete(u.id!, account)).deleted_at).not.toBeNull();

    // ?cascade=true deletes with lingering connections.
    const v = await tunnels.create({ ...account, name: `fid-tunnel-${++n}`, config_src: 'cloudflare' });
    const k = (await launch(h, { TunnelID: v.id! })).InstanceId!;
    h.sim.advance(1_000);
    await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [k] }));
    h.sim.advance(1_000);
    const cascaded = await fetch(
      `${h.sim.cloudflareBaseUrl}/accounts/${account.account_id}/cfd_tunnel/${v.id}?cascade=true`,
      { method: 'DELETE', headers: { authorization: `Bearer ${h.sim.seed.apiToken}` } },
    );
    expect(cascaded.status).toBe(200);
  });

  it('5: a terminated instance holds its security group for a while', async () => {
    h.sim.setFaults({ groupReleaseMs: 20_000 });
    const g = (
      await h.ec2.send(
        new CreateSecurityGroupCommand({
          GroupName: `rel-${++n}`,
          Description: 'd',
          VpcId: h.sim.seed.vpcId,
        }),
      )
    ).GroupId!;
    const i = (await launch(h, {}, { SecurityGroupIds: [g] })).InstanceId!;
    h.sim.advance(1_000);
    await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [i] }));
    h.sim.advance(1_000);
    expect(await stateOf(i)).toBe('terminated');
    const del = () => h.ec2.send(new DeleteSecurityGroupCommand({ GroupId: g }));
    expect((await failure(del())).name).toBe('DependencyViolation');
    h.sim.advance(20_000);
    await del();
  });

  it('6: short and empty pages carry tokens; every item is still listed exactly once', async () => {
    h.sim.setFaults({ shortPages: true });
    const env = `pages-${++n}`;
    for (let k = 0; k < 12; k++) await launch(h, { MOLECULE_ENV: env });
    const sizes: number[] = [];
    const seen: string[] = [];
    for (let walk = 0; walk < 3; walk++) {
      let token: string | undefined;
      const ids: string[] = [];
      do {
        const page = await h.ec2.send(
          new DescribeInstancesCommand({
            Filters: [{ Name: 'tag:MOLECULE_ENV', Values: [env] }],
            MaxResults: 5,
            NextToken: token,
          }),
        );
        const got = (page.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((x) => x.InstanceId!);
        ids.push(...got);
        token = page.NextToken;
        if (token) sizes.push(got.length);
      } while (token);
      expect(new Set(ids).size).toBe(12);
      expect(ids).toHaveLength(12);
      seen.push(...ids);
    }
    expect(sizes.some((s) => s < 5)).toBe(true);

    const arns = new Set<string>();
    let token: string | undefined;
    let calls = 0;
    do {
      const page = await h.tagging.send(
        new GetResourcesCommand({
          TagFilters: [{ Key: 'MOLECULE_ENV', Values: [env] }],
          ResourceTypeFilters: ['ec2:instance'],
          ResourcesPerPage: 5,
          PaginationToken: token,
        }),
      );
      for (const r of page.ResourceTagMappingList ?? []) arns.add(r.ResourceARN!);
      token = page.PaginationToken || undefined;
      calls++;
    } while (token);
    expect(arns.size).toBe(12);
    expect(calls).toBeGreaterThanOrEqual(3);
  });

  it('6: Tagging API tokens expire after 15 minutes', async () => {
    h.sim.setFaults({ taggingTokenExpiry: true });
    const env = `expiry-${++n}`;
    for (let k = 0; k < 3; k++) await launch(h, { MOLECULE_ENV: env });
    const first = await h.tagging.send(
      new GetResourcesCommand({ TagFilters: [{ Key: 'MOLECULE_ENV', Values: [env] }], ResourcesPerPage: 1 }),
    );
    const next = () =>
      h.tagging.send(
        new GetResourcesCommand({
          TagFilters: [{ Key: 'MOLECULE_ENV', Values: [env] }],
          ResourcesPerPage: 1,
          PaginationToken: first.PaginationToken,
        }),
      );
    expect((await next()).ResourceTagMappingList).toHaveLength(1);
    h.sim.advance(15 * 60_000);
    const expired = await failure(next());
    expect(expired).toMatchObject({
      name: 'PaginationTokenExpiredException',
      $metadata: { httpStatusCode: 400 },
    });
  });

  it('7: RunInstances without groups attaches the VPC’s default group', async () => {
    const none = await launch(h);
    expect(none.SecurityGroups).toEqual([]);
    h.sim.setFaults({ defaultGroupOnLaunch: true });
    const withDefault = await launch(h);
    expect(withDefault.SecurityGroups).toEqual([
      { GroupId: h.sim.network(h.sim.seed.accountId).defaultSecurityGroupId, GroupName: 'default' },
    ]);
    expect(AMI).toMatch(/^ami-/);
  });
});
