import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { amiPins, runtimeImagePins } from '../../schema/index.js';
import { type CloudReader, cloudReader } from '../helpers/cloud.js';
import { eventually, IAM_PROFILE, type Stack, startStack } from '../helpers/stack.js';

let stack: Stack;
let cloud: CloudReader;

beforeAll(async () => {
  stack = await startStack({
    env: {
      TENANT_IMAGE: 'ghcr.io/molecule-ai/platform-tenant:v1',
      CANARY_TENANT_IMAGE: 'ghcr.io/molecule-ai/platform-tenant:canary',
    },
  });
  cloud = cloudReader(stack.sim);
});
afterAll(async () => {
  await stack?.close();
});

const tag = (tags: { Key?: string; Value?: string }[] | undefined, key: string) =>
  tags?.find((t) => t.Key === key)?.Value;

async function createOrg(slug: string, extra: Record<string, unknown> = {}) {
  const res = await stack.api('POST', '/cp/orgs', { slug, ...extra });
  expect(res.status).toBe(201);
  return res.body as { id: string; slug: string };
}

async function createWorkspace(slug: string, runtime: string, tier: number) {
  const res = await stack.api('POST', `/cp/orgs/${slug}/workspaces`, { runtime, tier });
  expect(res.status).toBe(201);
  return res.body as { id: string };
}

/** Waits until the org and every workspace report Ready through the API. */
async function waitReady(slug: string, timeoutMs = 20_000) {
  return eventually(async () => {
    const res = await stack.api('GET', `/cp/orgs/${slug}`);
    const org = res.body;
    return org?.status?.ready && org.workspaces.every((w: { status: { ready: boolean } }) => w.status.ready)
      ? org
      : undefined;
  }, timeoutMs);
}

describe('provisioning lifecycle', () => {
  it('converges an org and two workspaces to exactly the intended cloud state', async () => {
    const org = await createOrg('acme');
    const hermes = await createWorkspace('acme', 'hermes', 3);
    const lang = await createWorkspace('acme', 'langgraph', 5);
    const ready = await waitReady('acme');
    expect(ready.status.conditions.map((c: { controller: string }) => c.controller).sort()).toEqual([
      'instance',
      'redeploy',
      'secrets',
      'securitygroup',
      'tunnel',
    ]);

    // Cloudflare: one tunnel, configured with the catch-all last; one proxied CNAME to it.
    const tunnels = (await cloud.liveTunnels()).filter((t) => t.name === `molecule-test-${org.id}`);
    expect(tunnels).toHaveLength(1);
    const tunnelId = tunnels[0]!.id!;
    const config = await cloud.tunnelConfig(tunnelId);
    expect(config.config?.ingress).toEqual([
      { hostname: 'acme.moleculesai.app', service: stack.config.TENANT_ORIGIN_SERVICE },
      { service: 'http_status:404' },
    ]);
    const records = (await cloud.dnsRecords()).filter((r) => r.name === 'acme.moleculesai.app');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      type: 'CNAME',
      content: `${tunnelId}.cfargotunnel.com`,
      proxied: true,
      comment: `molecule-operator env=test org=${org.id}`,
    });

    // Secrets Manager: one bundle with every key; generated credentials present.
    const secrets = await cloud.liveSecrets(`molecule/test/tenant/${org.id}/`);
    expect(secrets).toHaveLength(1);
    const bundle = await cloud.secretValue(`molecule/test/tenant/${org.id}/bootstrap`);
    expect(Object.keys(bundle).sort()).toEqual([
      'adminToken',
      'cpBaseUrl',
      'dbPassword',
      'ghcrPullToken',
      'orgId',
      'orgSlug',
      'provisionSharedSecret',
      'tunnelToken',
    ]);
    expect(bundle.dbPassword!.length).toBeGreaterThanOrEqual(24);
    expect(bundle.tunnelToken).toBe(
      await cloud.cf.zeroTrust.tunnels.cloudflared.token.get(tunnelId, {
        account_id: stack.sim.seed.cloudflareAccountId,
      }),
    );
    expect(bundle.provisionSharedSecret).toBe('provision-shared-secret-value-0001');

    // Security groups: one per owner with exactly the intended rules, never 0.0.0.0/0.
    const groups = await cloud.securityGroups({ OrgID: org.id });
    expect(groups).toHaveLength(3);
    const tenantSg = groups.find((g) => g.GroupName === `molecule-test-tenant-${org.id}`)!;
    const rules = (g: typeof tenantSg) =>
      (g.IpPermissions ?? [])
        .flatMap((p) => [
          ...(p.UserIdGroupPairs ?? []).map((x) => `${p.IpProtocol}/${p.FromPort} ${x.GroupId}`),
          ...(p.IpRanges ?? []).map((x) => `${p.IpProtocol}/${p.FromPort} ${x.CidrIp}`),
        ])
        .sort();
    expect(rules(tenantSg)).toEqual([
      `tcp/22 ${stack.sim.seed.eicSecurityGroupId}`,
      `tcp/8080 ${stack.sim.seed.vpcCidr}`,
    ]);
    for (const ws of [hermes, lang]) {
      const g = groups.find((x) => x.GroupName === `molecule-test-ws-${ws.id}`)!;
      expect(rules(g)).toEqual([`tcp/22 ${stack.sim.seed.eicSecurityGroupId}`]);
    }

    // EC2: one live instance per owner, sized by the seed's rules, tagged, no secret in user-data.
    const instances = await cloud.liveInstances({ OrgID: org.id });
    expect(instances).toHaveLength(3);
    const tenant = instances.find((i) => tag(i.Tags, 'Role') === 'tenant')!;
    expect(tenant).toMatchObject({
      InstanceType: 't3.small',
      ImageId: stack.config.EC2_AMI,
      SubnetId: stack.sim.seed.subnetId,
    });
    expect(tenant.SecurityGroups?.map((g) => g.GroupId)).toEqual([tenantSg.GroupId]);
    expect(tenant.IamInstanceProfile?.Arn).toContain(IAM_PROFILE);
    expect(tag(tenant.Tags, 'TunnelID')).toBe(tunnelId);
    expect(tag(tenant.Tags, 'SGID')).toBe(tenantSg.GroupId);
    expect(tag(tenant.Tags, 'ManagedBy')).toBe('molecule-operator');
    expect(tag(tenant.Tags, 'MOLECULE_ENV')).toBe('test');
    const wsHermes = instances.find((i) => tag(i.Tags, 'WorkspaceID') === hermes.id)!;
    expect(wsHermes.InstanceType).toBe('t3.medium');
    expect(tag(wsHermes.Tags, 'Runtime')).toBe('hermes');
    const wsLang = instances.find((i) => tag(i.Tags, 'WorkspaceID') === lang.id)!;
    expect(wsLang.InstanceType).toBe('t3.large'); // tier 5 clamps to 4
    expect(cloud.volumeGb(tenant.InstanceId!)).toBe(30);
    expect(cloud.volumeGb(wsHermes.InstanceId!)).toBe(50); // hermes floor over tier 3's 40 GB
    expect(cloud.volumeGb(wsLang.InstanceId!)).toBe(80);
    for (const i of instances) {
      const userData = cloud.userData(i.InstanceId!);
      // A tenant boots from its org's bundle, a workspace from the workspace secret only.
      if (i === tenant) expect(userData).toContain(`molecule/test/tenant/${org.id}/bootstrap`);
      else {
        expect(userData).toContain('molecule/test/shared/workspace-bootstrap');
        expect(userData).not.toContain('/tenant/');
      }
      expect(i.MetadataOptions).toMatchObject({ HttpTokens: 'required', HttpPutResponseHopLimit: 1 });
      for (const secret of [
        bundle.dbPassword,
        bundle.adminToken,
        bundle.tunnelToken,
        bundle.provisionSharedSecret,
        bundle.ghcrPullToken,
      ]) {
        expect(userData).not.toContain(secret);
      }
    }
  });

  it('honours AMI and image pins and the canary image', async () => {
    await stack.tdb.database.db
      .insert(amiPins)
      .values({ runtime: 'crewai', region: stack.sim.seed.region, amiId: 'ami-0123456789abcdef0' });
    await stack.tdb.database.db
      .insert(runtimeImagePins)
      .values({ runtime: 'crewai', image: 'ghcr.io/molecule-ai/crewai:pinned' });
    const org = await createOrg('canary-co', { isCanary: true });
    const ws = await createWorkspace('canary-co', 'crewai', 4);
    await waitReady('canary-co');
    const instances = await cloud.liveInstances({ OrgID: org.id });
    const wsInstance = instances.find((i) => tag(i.Tags, 'WorkspaceID') === ws.id)!;
    expect(wsInstance.ImageId).toBe('ami-0123456789abcdef0');
    expect(cloud.userData(wsInstance.InstanceId!)).toContain('ghcr.io/molecule-ai/crewai:pinned');
    const tenant = instances.find((i) => tag(i.Tags, 'Role') === 'tenant')!;
    expect(tenant.ImageId).toBe(stack.config.EC2_AMI);
    expect(cloud.userData(tenant.InstanceId!)).toContain('platform-tenant:canary');
  });

  it('applies a tier change as stop → modify → start, and follows the power state', async () => {
    const org = await createOrg('resize');
    const ws = await createWorkspace('resize', 'langgraph', 4);
    await waitReady('resize');
    expect((await stack.api('PATCH', `/cp/workspaces/${ws.id}`, { tier: 3 })).status).toBe(202);
    await eventually(async () => {
      const [i] = await cloud.liveInstances({ WorkspaceID: ws.id });
      return i?.InstanceType === 't3.medium' && i.State?.Name === 'running';
    });
    await waitReady('resize');
    expect((await stack.api('POST', '/cp/admin/tenants/resize/stop')).status).toBe(202);
    await eventually(async () => {
      const all = await cloud.liveInstances({ OrgID: org.id });
      return all.length === 2 && all.every((i) => i.State?.Name === 'stopped');
    });
    expect((await stack.api('POST', '/cp/admin/tenants/resize/start')).status).toBe(202);
    await eventually(async () => {
      const all = await cloud.liveInstances({ OrgID: org.id });
      return all.length === 2 && all.every((i) => i.State?.Name === 'running');
    });
    expect(await cloud.liveInstances({ WorkspaceID: ws.id })).toHaveLength(1);
  });

  it('deletes a workspace, then the whole org in cascade, leaving nothing; the slug is reusable at once', async () => {
    const org = await createOrg('doomed');
    const keep = await createWorkspace('doomed', 'langgraph', 4);
    const gone = await createWorkspace('doomed', 'hermes', 4);
    await waitReady('doomed');

    expect((await stack.api('DELETE', `/cp/workspaces/${gone.id}`)).status).toBe(202);
    await eventually(async () => (await stack.api('GET', `/cp/workspaces/${gone.id}`)).status === 404);
    expect(await cloud.liveInstances({ WorkspaceID: gone.id })).toHaveLength(0);
    expect(await cloud.securityGroups({ WorkspaceID: gone.id })).toHaveLength(0);
    expect(await cloud.liveInstances({ WorkspaceID: keep.id })).toHaveLength(1);

    expect((await stack.api('DELETE', '/cp/orgs/doomed')).status).toBe(202);
    await eventually(async () => (await stack.api('GET', '/cp/orgs/doomed')).status === 404, 30_000);
    expect(await cloud.liveInstances({ OrgID: org.id })).toHaveLength(0);
    expect(await cloud.securityGroups({ OrgID: org.id })).toHaveLength(0);
    expect(await cloud.liveSecrets(`molecule/test/tenant/${org.id}/`)).toHaveLength(0);
    expect((await cloud.liveTunnels()).filter((t) => t.name === `molecule-test-${org.id}`)).toHaveLength(0);
    expect((await cloud.dnsRecords()).filter((r) => r.name === 'doomed.moleculesai.app')).toHaveLength(0);

    // The audit trail keeps the history of everything that existed.
    const audit = await stack.tdb.database.query<{ action: string; kind: string }>(
      'SELECT action, kind FROM tenant_resources WHERE org_id = $1',
      [org.id],
    );
    for (const kind of ['ec2_instance', 'security_group', 'secret', 'cf_tunnel']) {
      expect(audit.filter((a) => a.kind === kind && a.action === 'created').length).toBeGreaterThan(0);
      expect(audit.filter((a) => a.kind === kind && a.action === 'deleted').length).toBeGreaterThan(0);
    }

    const again = await createOrg('doomed');
    expect(again.id).not.toBe(org.id);
    await waitReady('doomed');
    const [record] = (await cloud.dnsRecords()).filter((r) => r.name === 'doomed.moleculesai.app');
    const [tunnel] = (await cloud.liveTunnels()).filter((t) => t.name === `molecule-test-${again.id}`);
    expect(record?.content).toBe(`${tunnel!.id}.cfargotunnel.com`);
    expect(record?.comment).toBe(`molecule-operator env=test org=${again.id}`);
  });
});
