import { RunInstancesCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCloudPorts } from '../../src/cloud/index.js';
import type { CloudPorts } from '../../src/cloud/ports.js';
import { type BucketName, RateLimiter, unlimited } from '../../src/cloud/ratelimit.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { CloudError, type ErrorClass } from '../../src/runtime/errors.js';
import { type Simulator, startSimulator } from '../../src/sim/index.js';
import { testConfig } from '../fixtures/config.js';
import { cloudReader } from '../helpers/cloud.js';
import { metricValue } from '../helpers/metrics.js';
import { SIM_CREDENTIALS, simEnv } from '../helpers/stack.js';

let sim: Simulator;
let ports: CloudPorts;
let metrics: ReturnType<typeof createMetrics>;

const config = () => testConfig(simEnv(sim));
const makePorts = (limiter: Pick<RateLimiter, 'take'> = unlimited, pageSize = 5) =>
  createCloudPorts(config(), { metrics, awsCredentials: SIM_CREDENTIALS, maxAttempts: 1, limiter, pageSize });

beforeAll(async () => {
  sim = await startSimulator({ port: 0, profile: 'fast' });
});
afterAll(async () => {
  await sim.close();
});
beforeEach(() => {
  sim.reset();
  sim.setFaults({
    errorRate: 0,
    throttleRate: 0,
    buckets: false,
    operations: { 'ec2:DescribeInstances': null, 'secretsmanager:ListSecrets': null } as never,
  });
  metrics = createMetrics({ defaults: false });
  ports = makePorts();
});

/** The class and provider code a call failed with. */
async function failure(p: Promise<unknown>): Promise<{ errorClass: ErrorClass; code: string | undefined }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CloudError);
    return { errorClass: (e as CloudError).errorClass, code: (e as CloudError).code };
  }
  throw new Error('expected the call to fail');
}

const group = (name: string) =>
  ports.ec2.createSecurityGroup({
    name,
    description: 'd',
    vpcId: sim.seed.vpcId,
    tags: { ManagedBy: 'molecule-operator', MOLECULE_ENV: 'test' },
  });

describe('AWS adapters translate every SDK error into our classes', () => {
  it('NotFound: an unknown VPC, a missing secret', async () => {
    expect(await failure(ports.ec2.describeVpcCidr('vpc-0123456789abcdef0'))).toEqual({
      errorClass: 'NotFound',
      code: 'InvalidVpcID.NotFound',
    });
    expect(await failure(ports.secrets.getSecretValue('molecule/test/none'))).toMatchObject({
      errorClass: 'NotFound',
    });
  });

  it('Conflict: a duplicate group name, an existing secret, a secret scheduled for deletion', async () => {
    await group('dup');
    expect(await failure(group('dup'))).toEqual({ errorClass: 'Conflict', code: 'InvalidGroup.Duplicate' });
    await ports.secrets.createSecret({
      name: 's/1',
      value: '{}',
      tags: {},
      token: 'a'.repeat(32),
      description: '',
    });
    expect(
      await failure(
        ports.secrets.createSecret({
          name: 's/1',
          value: '{"x":1}',
          tags: {},
          token: 'b'.repeat(32),
          description: '',
        }),
      ),
    ).toMatchObject({
      errorClass: 'Conflict',
    });
    await ports.secrets.deleteSecret('s/1', 7);
    expect(await failure(ports.secrets.getSecretValue('s/1'))).toEqual({
      errorClass: 'Conflict',
      code: 'ScheduledForDeletion',
    });
    await ports.secrets.deleteSecret('s/1', 7); // already scheduled: still success
  });

  it('Transient: DependencyViolation while a group is attached; Terminal: a malformed image', async () => {
    const sg = await group('attached');
    await ports.ec2.runInstance({
      clientToken: 'tok-1',
      imageId: 'ami-0ea3c35c5c3284d82',
      instanceType: 't3.small',
      subnetId: sim.seed.subnetId,
      securityGroupIds: [sg],
      iamInstanceProfileName: 'p',
      volumeSizeGb: 30,
      userData: 'echo hi',
      tags: {},
    });
    expect(await failure(ports.ec2.deleteSecurityGroup(sg))).toEqual({
      errorClass: 'Transient',
      code: 'DependencyViolation',
    });
    expect(
      await failure(
        ports.ec2.runInstance({
          clientToken: 'tok-2',
          imageId: 'ami-bad',
          instanceType: 't3.small',
          subnetId: sim.seed.subnetId,
          securityGroupIds: [],
          iamInstanceProfileName: 'p',
          volumeSizeGb: 30,
          userData: '',
          tags: {},
        }),
      ),
    ).toMatchObject({ errorClass: 'Terminal' });
  });

  it('Throttled and Transient from injected faults, counted by outcome', async () => {
    sim.setFaults({
      operations: {
        'ec2:DescribeInstances': { throttleRate: 1 },
        'secretsmanager:ListSecrets': { errorRate: 1 },
      },
    });
    expect(await failure(ports.ec2.describeInstances({ tags: {} }))).toEqual({
      errorClass: 'Throttled',
      code: 'RequestLimitExceeded',
    });
    expect((await failure(ports.secrets.listSecrets('molecule/'))).errorClass).toBe('Transient');
    expect(
      await metricValue(metrics.registry, 'molecule_cloud_requests_total', {
        operation: 'DescribeInstances',
        outcome: 'throttled',
      }),
    ).toBe(1);
    expect(
      await metricValue(metrics.registry, 'molecule_cloud_requests_total', {
        operation: 'ListSecrets',
        outcome: 'transient',
      }),
    ).toBe(1);
  });

  it('a NotFound from TerminateInstances or DeleteSecurityGroup is not "gone": a describe decides', async () => {
    // EC2's write path is eventually consistent: the adapter cannot tell an id it does not see
    // yet from one that is gone, so it says so (transient) and the controller describes again.
    expect(await failure(ports.ec2.terminateInstance('i-0123456789abcdef0'))).toEqual({
      errorClass: 'Transient',
      code: 'NotYetConsistent',
    });
    expect(await failure(ports.ec2.deleteSecurityGroup('sg-0123456789abcdef0'))).toEqual({
      errorClass: 'Transient',
      code: 'NotYetConsistent',
    });
    // Secrets Manager is read-after-write consistent for its own calls: gone is gone.
    await ports.secrets.deleteSecret('molecule/test/none', 0);
  });
});

describe('Cloudflare adapter', () => {
  it('maps a tunnel-name conflict, active connections, a DNS conflict and an unknown tunnel', async () => {
    const cf = ports.tunnels!;
    const t = await cf.createTunnel('molecule-test-x');
    expect(await failure(cf.createTunnel('molecule-test-x'))).toEqual({
      errorClass: 'Conflict',
      code: '1013',
    });
    await ports.dns!.createRecord({
      name: 'x.moleculesai.app',
      content: `${t.id}.cfargotunnel.com`,
      proxied: true,
      comment: 'c',
    });
    expect(
      await failure(
        ports.dns!.createRecord({
          name: 'x.moleculesai.app',
          content: 'y.cfargotunnel.com',
          proxied: true,
          comment: 'c',
        }),
      ),
    ).toMatchObject({
      errorClass: 'Conflict',
    });
    // A running instance carrying the tunnel's id counts as an active connector.
    await cloudReader(sim).ec2.send(
      new RunInstancesCommand({
        ImageId: 'ami-0ea3c35c5c3284d82',
        MinCount: 1,
        MaxCount: 1,
        TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'TunnelID', Value: t.id }] }],
      }),
    );
    await new Promise((r) => setTimeout(r, 100)); // the fast profile's pending → running
    // 1022 is met with the connections cleanup and, still refused, a cascading delete: bounded.
    sim.resetCalls();
    await cf.deleteTunnel(t.id);
    expect(await cf.listTunnels({ name: 'molecule-test-x' })).toEqual([]);
    expect(
      sim
        .callLog()
        .filter((c) => c.service === 'cloudflare' && c.mutating)
        .map((c) => `${c.operation} ${c.status}`),
    ).toEqual([
      'DELETE cfd_tunnel/:id 400',
      'DELETE cfd_tunnel/:id/connections 200',
      'DELETE cfd_tunnel/:id 400',
      'DELETE cfd_tunnel/:id 200',
    ]);
    expect((await failure(cf.getTunnelToken('00000000-0000-4000-8000-000000000000'))).errorClass).toBe(
      'NotFound',
    );
  });
});

describe('pagination', () => {
  it('walks every page of every listing', async () => {
    for (let i = 0; i < 12; i++) await group(`page-${i}`);
    for (let i = 0; i < 7; i++) {
      await ports.secrets.createSecret({
        name: `molecule/test/tenant/p${i}`,
        value: '{}',
        tags: { ManagedBy: 'molecule-operator' },
        token: `${i}`.padEnd(32, 'x'),
        description: '',
      });
      await ports.tunnels!.createTunnel(`molecule-test-page-${i}`);
    }
    sim.resetCalls();
    expect(await ports.ec2.describeSecurityGroups({ tags: { ManagedBy: 'molecule-operator' } })).toHaveLength(
      12,
    );
    expect(await ports.secrets.listSecrets('molecule/test/')).toHaveLength(7);
    expect(await ports.tunnels!.listTunnels({ namePrefix: 'molecule-test-page-' })).toHaveLength(7);
    expect((await ports.tagging.getResources({ ManagedBy: 'molecule-operator' })).length).toBe(19);
    const calls = sim.calls();
    const count = (op: string) => calls.filter((c) => c.operation === op).reduce((a, c) => a + c.count, 0);
    expect(count('DescribeSecurityGroups')).toBe(3); // pages of 5
    expect(count('GET cfd_tunnel')).toBe(2); // 5 + 2: the short page is the last
    expect(count('ListSecrets')).toBe(2);
    expect(count('GetResources')).toBe(4);
  });
});

describe('Cloudflare pagination stops at a short page, else at an empty one', () => {
  it.each([
    [0, 1],
    [4, 1],
    [5, 2],
    [10, 3],
  ])('%i tunnels in pages of 5: %i calls', async (tunnels, calls) => {
    for (let i = 0; i < tunnels; i++) await ports.tunnels!.createTunnel(`molecule-test-count-${i}`);
    sim.resetCalls();
    const listed = await ports.tunnels!.listTunnels({ namePrefix: 'molecule-test-count-' });
    expect(listed.map((t) => t.name).sort()).toEqual(
      Array.from({ length: tunnels }, (_, i) => `molecule-test-count-${i}`).sort(),
    );
    const made = sim.calls().filter((c) => c.operation === 'GET cfd_tunnel');
    expect(made.reduce((n, c) => n + c.count, 0)).toBe(calls);
  });
});

describe('fleet-wide listings read again only the pages that changed', () => {
  it('an unchanged page gives the last objects; every change out of band is read', async () => {
    const tunnels: string[] = [];
    for (let i = 0; i < 7; i++) {
      await ports.secrets.createSecret({
        name: `molecule/test/tenant/m${i}`,
        value: '{}',
        tags: { ManagedBy: 'molecule-operator' },
        token: `m${i}`.padEnd(32, 'x'),
        description: '',
      });
      const t = await ports.tunnels!.createTunnel(`molecule-test-memo-${i}`);
      tunnels.push(t.id);
      await ports.dns!.createRecord({
        name: `m${i}.moleculesai.app`,
        content: `${t.id}.cfargotunnel.com`,
        proxied: true,
        comment: 'molecule-memo',
      });
    }
    const list = () =>
      Promise.all([
        ports.secrets.listSecrets('molecule/test/'),
        ports.tunnels!.listTunnels({ namePrefix: 'molecule-test-memo-' }),
        ports.dns!.listRecords({ commentContains: 'molecule-memo' }),
      ]);
    const [s1, t1, d1] = await list();
    const [s2, t2, d2] = await list();
    // Pages of 5: nothing changed, so every object is the one listed before.
    for (const [a, b] of [
      [s1, s2],
      [t1, t2],
      [d1, d2],
    ] as const) {
      expect(b).toHaveLength(7);
      for (let i = 0; i < b.length; i++) expect(b[i]).toBe(a[i]);
    }

    // Out of band, one object on each listing's second page.
    const lastSecret = s1[6]!.name; // newest first
    await ports.secrets.tagSecret(lastSecret, { Drift: 'yes' });
    await ports.tunnels!.deleteTunnel(tunnels[6]!);
    const record = d1.find((r) => r.name === 'm6.moleculesai.app')!;
    await ports.dns!.updateRecord(record.id, {
      name: record.name,
      content: 'elsewhere.example.com',
      proxied: true,
      comment: 'molecule-memo',
    });
    const [s3, t3, d3] = await list();
    expect(s3.find((s) => s.name === lastSecret)?.tags.Drift).toBe('yes');
    expect(t3.map((t) => t.id)).toEqual(tunnels.slice(0, 6));
    expect(d3.find((r) => r.id === record.id)?.content).toBe('elsewhere.example.com');
    // The first pages did not change: their objects are still the first listing's. (Not the
    // tunnels': a page tells the total count, so a deletion changes every page.)
    for (const [a, b] of [
      [s1, s3],
      [d1, d3],
    ] as const)
      for (let i = 0; i < 5; i++) expect(b[i]).toBe(a[i]);
    expect(t3).toEqual(t1.slice(0, 6));
    // A lookup by name is read as it comes, never from a listing's pages.
    const [byName] = await ports.tunnels!.listTunnels({ name: 'molecule-test-memo-0' });
    expect(byName).toEqual(t1[0]);
    expect(byName).not.toBe(t1[0]);
  });
});

describe('client-side rate limiting', () => {
  it('keeps a burst under the provider bucket: no throttles with the limiter, many without it', async () => {
    // Measured in simulated time: the limiter and the simulator read one clock, which moves only
    // while no call is in flight, so both see the same instant for every call. A loaded machine
    // then changes how long the test takes, never what it measures.
    let now = Date.now();
    const paced = await startSimulator({ port: 0, profile: 'fast', now: () => now });
    try {
      paced.setFaults({ buckets: true, errorRate: 0, throttleRate: 0, latencyMs: 0 });
      const burst = async (limiter: Pick<RateLimiter, 'take'>) => {
        paced.reset(); // full provider buckets
        paced.resetCalls();
        let inFlight = 0;
        const counted = {
          take: async (name: BucketName, operation?: string) => {
            await limiter.take(name, operation);
            inFlight++;
          },
        };
        const p = createCloudPorts(testConfig(simEnv(paced)), {
          metrics,
          awsCredentials: SIM_CREDENTIALS,
          maxAttempts: 1,
          limiter: counted,
        });
        const started = now;
        let settled = false;
        const clock = (async () => {
          while (!settled) {
            await new Promise((r) => setTimeout(r, 1));
            if (inFlight === 0) now += 5;
          }
        })();
        await Promise.allSettled(
          Array.from({ length: 130 }, () =>
            p.ec2.describeVpcCidr(paced.seed.vpcId).finally(() => {
              inFlight--;
            }),
          ),
        );
        settled = true;
        await clock;
        const calls = paced.callLog().filter((c) => c.operation === 'DescribeVpcs');
        return {
          calls: calls.length,
          throttled: calls.filter((c) => c.status === 503).length,
          simulatedMs: now - started,
        };
      };

      // Provider: 100 DescribeVpcs at once, 20 more a second; the client's bucket refills at 19.
      const limited = await burst(new RateLimiter({}, metrics, 'primary', () => now));
      expect(limited).toMatchObject({ calls: 130, throttled: 0 });
      // It waited for the 30 calls over the bucket, and not much longer.
      const lowerBoundMs = (30 / (20 * 0.95)) * 1000;
      expect(limited.simulatedMs).toBeGreaterThanOrEqual(lowerBoundMs);
      expect(limited.simulatedMs).toBeLessThan(lowerBoundMs * 3);
      expect(
        await metricValue(metrics.registry, 'molecule_ratelimit_wait_seconds_total', {
          bucket: 'ec2-non-mutating',
        }),
      ).toBeGreaterThan(0);

      // Without the limiter the provider refuses what its bucket does not hold.
      const unlimitedBurst = await burst(unlimited);
      expect(unlimitedBurst.calls).toBe(130);
      expect(unlimitedBurst.throttled).toBeGreaterThanOrEqual(
        30 - Math.floor((unlimitedBurst.simulatedMs / 1000) * 20),
      );
      expect(unlimitedBurst.throttled).toBeGreaterThan(0);
    } finally {
      await paced.close();
    }
  });
});
