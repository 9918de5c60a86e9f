import { RunInstancesCommand, StopInstancesCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createOperator, type Operator, operatorMetrics } from '../../src/operator.js';
import { CANARY_ACCOUNT, CANARY_REGION, CANARY_ROLE, canaryEnv } from '../fixtures/sim.js';
import { type CloudReader, cloudReader } from '../helpers/cloud.js';
import { eventually, type Stack, startStack } from '../helpers/stack.js';

let stack: Stack;
let primary: CloudReader;
let canary: CloudReader;

beforeAll(async () => {
  stack = await startStack({ env: (sim) => canaryEnv(sim.network(CANARY_ACCOUNT, CANARY_REGION)) });
  primary = cloudReader(stack.sim);
  canary = cloudReader(stack.sim, { roleArn: CANARY_ROLE, region: CANARY_REGION });
});
afterAll(async () => {
  await stack?.close();
});

type OrgView = {
  id: string;
  target: string;
  status: { ready: boolean; reason: string; conditions: { reason: string }[] };
  workspaces: { status: { ready: boolean } }[];
};

const ready = (slug: string) =>
  eventually(async () => {
    const o = (await stack.api('GET', `/cp/orgs/${slug}`)).body as OrgView;
    return o.status.ready && o.workspaces.every((w) => w.status.ready) ? o : undefined;
  }, 30_000);

/** A second operator on the same database and simulator, with other settings. */
function replica(env: Record<string, string | undefined>, holder: string): Operator {
  const base = Object.fromEntries(
    Object.entries(stack.config)
      .filter(([, v]) => typeof v === 'string' || typeof v === 'number')
      .map(([k, v]) => [k, String(v)]),
  ) as Record<string, string>;
  for (const k of [
    'CREATE_GRACE',
    'ORPHAN_GRACE',
    'LEASE_DURATION',
    'LEASE_RENEW_DEADLINE',
    'LEASE_RETRY_PERIOD',
  ])
    delete base[k];
  return createOperator({
    config: loadConfig({ ...base, ...env }),
    database: stack.tdb.database,
    logger: stack.logger,
    metrics: operatorMetrics(false),
    cloud: stack.cloud,
    manager: {
      holder,
      pollIntervalMs: 50,
      lease: { name: 'shared-lease', leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 100 },
    },
  });
}

describe('canary orgs in a second AWS account', () => {
  it('places canary orgs in the canary account and converges every controller there', async () => {
    const c = (await stack.api('POST', '/cp/orgs', { slug: 'canary-co', isCanary: true })).body;
    const p = (await stack.api('POST', '/cp/orgs', { slug: 'primary-co' })).body;
    expect([c.target, p.target]).toEqual(['canary', 'primary']);
    await stack.api('POST', '/cp/orgs/canary-co/workspaces', { runtime: 'langgraph', tier: 3 });
    await Promise.all([ready('canary-co'), ready('primary-co')]);

    // AWS resources in the org's own account; Cloudflare is one account for both.
    expect(await canary.liveInstances({ OrgID: c.id })).toHaveLength(2);
    expect(await canary.securityGroups({ OrgID: c.id })).toHaveLength(2);
    expect(await canary.liveSecrets(`molecule/test/tenant/${c.id}`)).toHaveLength(1);
    expect(await primary.liveInstances({ OrgID: c.id })).toHaveLength(0);
    expect(await primary.securityGroups({ OrgID: c.id })).toHaveLength(0);
    expect(await canary.liveInstances({ OrgID: p.id })).toHaveLength(0);
    expect(await primary.liveInstances({ OrgID: p.id })).toHaveLength(1);
    const [vm] = await canary.liveInstances({ OrgID: c.id, Role: 'tenant' });
    expect(vm!.IamInstanceProfile?.Arn).toBe(
      `arn:aws:iam::${CANARY_ACCOUNT}:instance-profile/molecule-tenant`,
    );
    expect(vm!.SubnetId).toBe(stack.sim.network(CANARY_ACCOUNT, CANARY_REGION).subnetId);
    expect((await primary.liveTunnels()).map((t) => t.name)).toContain(`molecule-test-${c.id}`);
    // The bundle is readable in the canary account with the canary's credentials only.
    expect((await canary.secretValue(`molecule/test/tenant/${c.id}/bootstrap`)).orgSlug).toBe('canary-co');
  });

  it('corrects drift in the canary account', async () => {
    const c = (await stack.api('GET', '/cp/orgs/canary-co')).body as OrgView;
    const [vm] = await canary.liveInstances({ OrgID: c.id, Role: 'tenant' });
    await canary.ec2.send(new StopInstancesCommand({ InstanceIds: [vm!.InstanceId!] }));
    // Out-of-band changes are found by the periodic resync.
    await stack.operator!.manager.resync('test');
    await eventually(async () => {
      const [again] = await canary.liveInstances({ OrgID: c.id, Role: 'tenant' });
      return again?.State?.Name === 'running' && again.InstanceId === vm!.InstanceId;
    }, 30_000);
  });

  it('changes isCanary only while the org has nothing in the cloud', async () => {
    const res = await stack.api('PATCH', '/cp/orgs/primary-co', { isCanary: true });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('TargetChangeRequiresRecreate');
    expect((await stack.api('GET', '/cp/orgs/primary-co')).body).toMatchObject({
      target: 'primary',
      isCanary: false,
    });
    // The name alone changes freely.
    const renamed = await stack.api('PATCH', '/cp/orgs/primary-co', { name: 'Primary Co' });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ name: 'Primary Co', target: 'primary' });
  });

  it('counts an orphan in the canary account under the canary target, and only there', async () => {
    const net = stack.sim.network(CANARY_ACCOUNT, CANARY_REGION);
    const gone = '00000000-0000-4000-8000-0000000000cc';
    await canary.ec2.send(
      new RunInstancesCommand({
        ImageId: 'ami-0ea3c35c5c3284d82',
        InstanceType: 't3.small',
        MinCount: 1,
        MaxCount: 1,
        SubnetId: net.subnetId,
        TagSpecifications: [
          {
            ResourceType: 'instance',
            Tags: [
              { Key: 'ManagedBy', Value: 'molecule-operator' },
              { Key: 'MOLECULE_ENV', Value: 'test' },
              { Key: 'OrgID', Value: gone },
              { Key: 'Role', Value: 'tenant' },
            ],
          },
        ],
      }),
    );
    const scanner = stack.operator!.scanner;
    const [p, c] = [await scanner.scan('primary'), await scanner.scan('canary')];
    expect(p.ok && c.ok).toBe(true);
    expect(p.counts.ec2_instance).toBe(0);
    expect(c.counts.ec2_instance).toBe(1);
    expect(c.managed.ec2_instance).toBeGreaterThanOrEqual(3);
  });

  it('renews the canary credentials when they expire between reconciles, never reading the account as empty', async () => {
    const c = (await stack.api('GET', '/cp/orgs/canary-co')).body as OrgView;
    stack.sim.resetCalls();
    stack.sim.advance(2 * 3_600_000); // past the one-hour session
    await stack.operator!.manager.resync('test');
    await stack.operator!.manager.idle();
    const calls = stack.sim.callLog();
    expect(calls.filter((r) => r.mutating)).toEqual([]);
    // The session the operator held was refused (ExpiredToken, before any account is known),
    // renewed, and the listing in the canary account went through.
    const inCanary = calls.filter((r) => r.account === CANARY_ACCOUNT);
    expect(calls.some((r) => r.status === 403 && r.account === undefined)).toBe(true);
    expect(calls.some((r) => r.service === 'sts' && r.operation === 'AssumeRole' && r.status === 200)).toBe(
      true,
    );
    expect(inCanary.some((r) => r.operation === 'DescribeInstances' && r.status === 200)).toBe(true);
    expect(await canary.liveInstances({ OrgID: c.id })).toHaveLength(2);
    expect((await ready('canary-co')).id).toBe(c.id);
  });

  it('waits with TargetNotConfigured when an operator without the canary target meets a canary org', async () => {
    const c = (await stack.api('GET', '/cp/orgs/canary-co')).body as OrgView;
    await stack.stopOperator();
    const blind = replica(
      {
        CANARY_ROLE_ARN: '',
        CANARY_REGION: '',
        CANARY_VPC_ID: '',
        CANARY_SUBNET_ID: '',
        CANARY_EIC_ENDPOINT_SG_ID: '',
      },
      'blind',
    );
    stack.sim.resetCalls();
    await blind.start();
    try {
      await eventually(async () => {
        const o = (await stack.api('GET', '/cp/orgs/canary-co')).body as OrgView;
        return o.status.conditions.every((x) => x.reason === 'TargetNotConfigured') ? o : undefined;
      }, 20_000);
      // Nothing was made for it in the primary account, and nothing was deleted anywhere.
      expect(await primary.liveInstances({ OrgID: c.id })).toHaveLength(0);
      expect(stack.sim.callLog().filter((r) => r.mutating)).toEqual([]);
      expect(await canary.liveInstances({ OrgID: c.id })).toHaveLength(2);
    } finally {
      await blind.stop();
    }
    await stack.startOperator();
    await ready('canary-co');
  });

  it('shares the two targets between two replicas, and a survivor takes both', async () => {
    await stack.stopOperator();
    const a = replica({}, 'replica-a');
    const b = replica({}, 'replica-b');
    await a.start();
    await b.start();
    try {
      const split = await eventually(() => {
        const [la, lb] = [a.manager.ledTargets(), b.manager.ledTargets()];
        return la.length === 1 && lb.length === 1 ? [...la, ...lb].sort() : undefined;
      }, 20_000);
      expect(split).toEqual(['canary', 'primary']);
      await a.stop();
      expect(
        await eventually(
          () => (b.manager.ledTargets().length === 2 ? b.manager.ledTargets().sort() : undefined),
          20_000,
        ),
      ).toEqual(['canary', 'primary']);
      // The survivor still converges both kinds of org.
      await stack.api('POST', '/cp/orgs/canary-co/workspaces', { runtime: 'hermes', tier: 4 });
      await ready('canary-co');
    } finally {
      await a.stop();
      await b.stop();
    }
    await stack.startOperator();
  });

  it('runs the whole cascade in the canary account', async () => {
    const c = (await stack.api('GET', '/cp/orgs/canary-co')).body as OrgView;
    expect((await stack.api('DELETE', '/cp/orgs/canary-co')).status).toBe(202);
    await eventually(async () => (await stack.api('GET', '/cp/orgs/canary-co')).status === 404, 30_000);
    expect(await canary.liveInstances({ OrgID: c.id })).toHaveLength(0);
    expect(await canary.securityGroups({ OrgID: c.id })).toHaveLength(0);
    expect(await canary.liveSecrets(`molecule/test/tenant/${c.id}`)).toHaveLength(0);
    expect((await primary.liveTunnels()).map((t) => t.name)).not.toContain(`molecule-test-${c.id}`);
  });
});
