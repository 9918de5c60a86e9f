import { DescribeInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { GetResourcePolicyCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapSecretName, workspaceBootstrapSecretName } from '../../src/provisioning/names.js';
import { CANARY_ACCOUNT, CANARY_REGION, CANARY_ROLE, canaryEnv } from '../fixtures/sim.js';
import { asInstance, type CloudReader, cloudReader } from '../helpers/cloud.js';
import { eventually, type Stack, startStack } from '../helpers/stack.js';

/**
 * Tenant isolation (DESIGN §12), asserted with the credentials each instance's metadata service
 * would hand it: who can read which secret, after the operator converged the fleet.
 */

let stack: Stack;
let cloud: CloudReader;
let canaryCloud: CloudReader;

interface Org {
  id: string;
  tenant: string;
  workspace: string;
}
const orgs: Record<'a' | 'b' | 'c', Org> = {} as never;
const SHARED = workspaceBootstrapSecretName('test');
const bundle = (o: Org) => bootstrapSecretName('test', o.id);

async function converge(slug: string, isCanary = false): Promise<Org> {
  const org = (await stack.api('POST', '/cp/orgs', { slug, isCanary })).body as { id: string };
  await stack.api('POST', `/cp/orgs/${slug}/workspaces`, { runtime: 'langgraph', tier: 3 });
  const reader = isCanary ? canaryCloud : cloud;
  return eventually(async () => {
    const o = (await stack.api('GET', `/cp/orgs/${slug}`)).body as {
      status: { ready: boolean };
      workspaces: { id: string; status: { ready: boolean } }[];
    };
    if (!o.status.ready || !o.workspaces.every((w) => w.status.ready)) return undefined;
    const vms = await reader.liveInstances({ OrgID: org.id });
    const tenant = vms.find((i) => i.Tags?.some((t) => t.Key === 'Role' && t.Value === 'tenant'));
    const ws = vms.find((i) => i.Tags?.some((t) => t.Key === 'WorkspaceID'));
    if (tenant?.State?.Name !== 'running' || ws?.State?.Name !== 'running') return undefined;
    return { id: org.id, tenant: tenant.InstanceId!, workspace: ws.InstanceId! };
  }, 30_000);
}

/** Reads a secret as an instance, retrying while the policy may still be catching up (as the boot script does). */
async function readAs(instanceId: string, secretId: string, region?: string) {
  const as = asInstance(stack.sim, instanceId, region);
  if (!as) throw new Error(`instance ${instanceId} gets no credentials`);
  return as.read(secretId);
}

beforeAll(async () => {
  stack = await startStack({ env: (sim) => canaryEnv(sim.network(CANARY_ACCOUNT, CANARY_REGION)) });
  cloud = cloudReader(stack.sim);
  canaryCloud = cloudReader(stack.sim, { roleArn: CANARY_ROLE, region: CANARY_REGION });
  orgs.a = await converge('iso-a');
  orgs.b = await converge('iso-b');
  orgs.c = await converge('iso-c', true);
  // The policies follow the launches: wait until each tenant reads its own bundle.
  for (const o of [orgs.a, orgs.b])
    await eventually(async () => (await readAs(o.tenant, bundle(o))).value !== undefined, 30_000);
  await eventually(
    async () => (await readAs(orgs.c.tenant, bundle(orgs.c), CANARY_REGION)).value !== undefined,
    30_000,
  );
}, 120_000);
afterAll(async () => {
  await stack?.close();
});

describe('who reads which secret', () => {
  it('a tenant reads its own bundle and no other tenant’s', async () => {
    const own = await readAs(orgs.a.tenant, bundle(orgs.a));
    expect(JSON.parse(own.value!).orgId).toBe(orgs.a.id);
    expect(await readAs(orgs.a.tenant, bundle(orgs.b))).toEqual({ error: 'AccessDeniedException' });
    expect(await readAs(orgs.b.tenant, bundle(orgs.a))).toEqual({ error: 'AccessDeniedException' });
    // Nor the workspaces' secret: that is the workspace role's.
    expect(await readAs(orgs.a.tenant, SHARED)).toEqual({ error: 'AccessDeniedException' });
  });

  it('a workspace reads the workspace bootstrap secret and no tenant bundle, its own tenant’s included', async () => {
    const shared = await readAs(orgs.a.workspace, SHARED);
    expect(Object.keys(JSON.parse(shared.value!)).sort()).toEqual(['cpBaseUrl', 'ghcrPullToken']);
    expect(await readAs(orgs.a.workspace, bundle(orgs.a))).toEqual({ error: 'AccessDeniedException' });
    expect(await readAs(orgs.a.workspace, bundle(orgs.b))).toEqual({ error: 'AccessDeniedException' });
  });

  it('an instance role can do nothing else: no EC2, no listing, no other account', async () => {
    const as = asInstance(stack.sim, orgs.a.tenant)!;
    await expect(as.ec2.send(new DescribeInstancesCommand({}))).rejects.toMatchObject({
      name: 'UnauthorizedOperation',
    });
    await expect(
      as.sm.send(new GetResourcePolicyCommand({ SecretId: bundle(orgs.a) })),
    ).rejects.toMatchObject({
      name: 'AccessDeniedException',
    });
    // The canary tenant, in its own account, reads its own bundle there and nothing here.
    expect(JSON.parse((await readAs(orgs.c.tenant, bundle(orgs.c), CANARY_REGION)).value!).orgId).toBe(
      orgs.c.id,
    );
    expect((await readAs(orgs.c.tenant, bundle(orgs.a))).error).toBeDefined();
  });

  it('the operator (the account’s administrator) still reads every bundle', async () => {
    expect((await cloud.secretValue(bundle(orgs.a))).orgId).toBe(orgs.a.id);
    expect((await canaryCloud.secretValue(bundle(orgs.c))).orgId).toBe(orgs.c.id);
  });

  it('launches instances with IMDSv2 only and a hop limit of 1', async () => {
    for (const id of [orgs.a.tenant, orgs.a.workspace]) {
      const res = await cloud.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
      expect(res.Reservations?.[0]?.Instances?.[0]?.MetadataOptions).toMatchObject({
        HttpTokens: 'required',
        HttpPutResponseHopLimit: 1,
      });
    }
  });
});

describe('a replaced tenant instance', () => {
  it('loses the bundle to its successor: the old credentials are refused, the new ones read', async () => {
    const old = asInstance(stack.sim, orgs.b.tenant)!;
    expect((await old.read(bundle(orgs.b))).value).toBeDefined();
    await cloud.ec2.send(new TerminateInstancesCommand({ InstanceIds: [orgs.b.tenant] }));
    // Out of band: the next resync finds it gone and launches the successor.
    await stack.operator!.manager.resync('test');
    const successor = await eventually(async () => {
      const [vm] = (await cloud.liveInstances({ OrgID: orgs.b.id, Role: 'tenant' })).filter(
        (i) => i.InstanceId !== orgs.b.tenant && i.State?.Name === 'running',
      );
      return vm?.InstanceId;
    }, 30_000);
    // Credentials handed out before the termination stay valid for hours, as in AWS; the
    // policy no longer names that instance.
    await eventually(async () => (await readAs(successor, bundle(orgs.b))).value !== undefined, 30_000);
    expect(await old.read(bundle(orgs.b))).toEqual({ error: 'AccessDeniedException' });
  });
});

describe('policy drift', () => {
  it('puts back a bundle policy replaced out of band', async () => {
    const { PutResourcePolicyCommand } = await import('@aws-sdk/client-secrets-manager');
    const open = JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { AWS: `arn:aws:iam::${stack.sim.seed.accountId}:role/molecule-tenant` },
          Action: 'secretsmanager:GetSecretValue',
          Resource: '*',
        },
      ],
    });
    await cloud.sm.send(new PutResourcePolicyCommand({ SecretId: bundle(orgs.a), ResourcePolicy: open }));
    const tenantOfB = (await cloud.liveInstances({ OrgID: orgs.b.id, Role: 'tenant' })).find(
      (i) => i.State?.Name === 'running',
    )!.InstanceId!;
    // While the drift lasts, any tenant could read it: that is what the operator must undo.
    expect((await readAs(tenantOfB, bundle(orgs.a))).value).toBeDefined();
    // The next resync sees the secret changed (LastChangedDate) and writes the policy back.
    await stack.operator!.manager.resync('test');
    await eventually(
      async () => (await readAs(tenantOfB, bundle(orgs.a))).error === 'AccessDeniedException',
      30_000,
    );
    expect((await readAs(orgs.a.tenant, bundle(orgs.a))).value).toBeDefined();
  });
});
