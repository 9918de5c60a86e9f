import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createInstanceController, type DesiredInstance } from '../../controllers/instance.js';
import { createSecretsController, type DesiredSecret } from '../../controllers/secrets.js';
import { createSecurityGroupController } from '../../controllers/securitygroup.js';
import { createTunnelController } from '../../controllers/tunnel.js';
import type { StatusRow } from '../../schema/index.js';
import { createCloudPorts } from '../../src/cloud/index.js';
import { LiveView } from '../../src/cloud/inventory.js';
import type { CloudPorts, Tags } from '../../src/cloud/ports.js';
import { type BucketName, cloudflareWindow, RateLimiter, unlimited } from '../../src/cloud/ratelimit.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { bootstrapSecretName, tunnelName } from '../../src/provisioning/names.js';
import { ownershipTags, ownerTags } from '../../src/provisioning/tags.js';
import { conditionForError } from '../../src/runtime/conditions.js';
import type { ActContext, ObserveContext } from '../../src/runtime/controller.js';
import { CloudError, type ErrorClass } from '../../src/runtime/errors.js';
import { NO_FIDELITY, type Simulator, startSimulator } from '../../src/sim/index.js';
import { testConfig } from '../fixtures/config.js';
import { metricValue } from '../helpers/metrics.js';
import { SIM_CREDENTIALS, simEnv } from '../helpers/stack.js';

/**
 * Issue 21, the operator's side: one conformance test per real-cloud behaviour the simulator
 * reproduces (src/sim/faults.ts), through the real SDKs, the adapters and the controllers.
 * The simulated clock (`sim.advance`) drives every window; no test sleeps for correctness.
 */

const ENV = 'test';
const AMI = 'ami-0ea3c35c5c3284d82';

let sim: Simulator;
let metrics: ReturnType<typeof createMetrics>;
let ports: CloudPorts;

const makePorts = (limiter: Pick<RateLimiter, 'take'> = unlimited, pageSize = 5) =>
  createCloudPorts(testConfig(simEnv(sim)), {
    metrics,
    awsCredentials: SIM_CREDENTIALS,
    maxAttempts: 1,
    limiter,
    pageSize,
  });

beforeAll(async () => {
  sim = await startSimulator({ port: 0, profile: 'fast' });
});
afterAll(async () => {
  await sim.close();
});
beforeEach(() => {
  sim.reset();
  metrics = createMetrics({ defaults: false });
  ports = makePorts();
});
afterEach(() => {
  sim.setFaults(NO_FIDELITY);
});

async function failure(p: Promise<unknown>): Promise<{ errorClass: ErrorClass; code: string | undefined }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CloudError);
    return { errorClass: (e as CloudError).errorClass, code: (e as CloudError).code };
  }
  throw new Error('expected the call to fail');
}

async function thrown(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to fail');
}

const tenantTags = (orgId: string): Tags =>
  ownerTags({ env: ENV, orgId, orgSlug: 'acme', name: `molecule-${ENV}-tenant-acme` });

const launch = (tags: Tags, securityGroupIds: string[] = [], clientToken: string = randomUUID()) =>
  ports.ec2.runInstance({
    clientToken,
    imageId: AMI,
    instanceType: 't3.small',
    subnetId: sim.seed.subnetId,
    securityGroupIds,
    iamInstanceProfileName: 'p',
    volumeSizeGb: 30,
    userData: 'echo hi',
    tags,
  });

const createGroup = (name: string) =>
  ports.ec2.createSecurityGroup({ name, description: 'd', vpcId: sim.seed.vpcId, tags: ownershipTags(ENV) });

const stateOf = async (id: string) =>
  (await ports.ec2.describeInstances({ tags: ownershipTags(ENV) })).find((i) => i.id === id)?.state;

/** What a controller's delete receives: the reconciler's clock and the status row's bookkeeping. */
const act = (now: number, state?: Record<string, unknown>): ActContext => ({
  assertLeader: () => {},
  status: state ? ({ state } as unknown as StatusRow) : undefined,
  now: () => now,
});

const observing = (view: LiveView): ObserveContext => ({
  ...act(0),
  view,
  deleting: false,
  resync: false,
  allowDeepCheck: () => false,
});

describe('1: a write call that does not see a new object yet', () => {
  it('is not "gone": terminate and group delete wait, a describe decides, nothing is terminated twice or leaked', async () => {
    sim.setFaults({ writeConsistencyMs: 5_000 });
    const orgId = randomUUID();
    const instance = await launch(tenantTags(orgId));
    expect(await failure(ports.ec2.terminateInstance(instance.id))).toEqual({
      errorClass: 'Transient',
      code: 'NotYetConsistent',
    });
    expect(await failure(ports.ec2.tagResources([instance.id], { k: 'v' }))).toEqual({
      errorClass: 'Transient',
      code: 'NotYetConsistent',
    });
    // The NotFound terminated nothing: the instance still runs.
    sim.advance(100);
    expect(await stateOf(instance.id)).toBe('running');

    // The instance controller's deletion waits with a condition saying why, and does not release.
    const instances = createInstanceController(ports);
    const live = { instance, live: [instance] };
    const waiting = await instances.delete({} as DesiredInstance, { ...observed(), resource: live }, act(0));
    expect(waiting).toMatchObject({ gone: false, waiting: { reason: 'WaitingForConsistency' } });
    sim.advance(5_000);
    // Once the write path sees it, the same deletion terminates it.
    const done = await instances.delete({} as DesiredInstance, { ...observed(), resource: live }, act(0));
    expect(done.waiting).toBeUndefined();
    expect(await stateOf(instance.id)).toMatch(/^(shutting-down|terminated)$/);

    // A group: DeleteSecurityGroup's NotFound does not delete it; the group is still there.
    const groupId = await createGroup(`wc-${randomUUID().slice(0, 8)}`);
    expect(await failure(ports.ec2.deleteSecurityGroup(groupId))).toEqual({
      errorClass: 'Transient',
      code: 'NotYetConsistent',
    });
    const groups = createSecurityGroupController(ports);
    const groupObs = { ...observed(), resource: { id: groupId } as never };
    expect(await groups.delete({ sharedGroupId: undefined } as never, groupObs, act(0))).toMatchObject({
      gone: false,
      waiting: { reason: 'WaitingForConsistency' },
    });
    expect((await ports.ec2.describeSecurityGroups({ tags: ownershipTags(ENV) })).map((g) => g.id)).toEqual([
      groupId,
    ]);

    // A launch naming the new group: transient, and replayed with the same ClientToken it makes one instance.
    const token = `fid-${randomUUID()}`;
    expect(await failure(launch(tenantTags(orgId), [groupId], token))).toEqual({
      errorClass: 'Transient',
      code: 'NotYetConsistent',
    });
    sim.advance(5_000);
    const first = await launch(tenantTags(orgId), [groupId], token);
    const again = await launch(tenantTags(orgId), [groupId], token);
    expect(again.id).toBe(first.id);
    expect(await ports.ec2.describeInstances({ tags: ownershipTags(ENV), clientToken: token })).toHaveLength(
      1,
    );
    expect(await groups.delete({ sharedGroupId: undefined } as never, groupObs, act(0))).toMatchObject({
      gone: false,
      waiting: { reason: 'WaitingForDependents' },
    });
  });
});

describe('2: Secrets Manager', () => {
  const desired = (orgId: string, tags = tenantTags(orgId)): DesiredSecret => ({
    name: bootstrapSecretName(ENV, orgId),
    orgId,
    orgSlug: 'acme',
    tunnelId: undefined,
    tags,
    provisionSharedSecret: 'p',
    ghcrPullToken: 'g',
    cpBaseUrl: 'https://cp.example',
    recoveryDays: 0,
    fingerprint: 'f',
    tenantRole: undefined,
    workspaceRole: undefined,
  });

  it('a lagging ListSecrets does not hide a fresh bundle from its owner', async () => {
    sim.setFaults({ listSecretsLagMs: 10_000 });
    const d = desired(randomUUID());
    const secrets = createSecretsController({ secrets: ports.secrets });
    await secrets.create(d, `${d.orgId}-bootstrap-1`, act(0));
    expect(await ports.secrets.listSecrets(d.name)).toEqual([]); // the list lags
    const view = new LiveView(ports, ENV, sim.seed.vpcId);
    expect((await view.secrets(d.name)).map((s) => s.name)).toEqual([d.name]);
    const obs = await secrets.observe(d, observing(view));
    expect(obs.exists).toBe(true); // so no second create is decided
  });

  it('"already scheduled for deletion" restores only our own bundle, and waits on a blocked name', async () => {
    sim.setFaults({ secretNameReuseMs: 60_000, refuseForceDeleteOfScheduled: true, listSecretsLagMs: 5_000 });
    const secrets = createSecretsController({ secrets: ports.secrets });

    // Ours, deleted out of band with a recovery window: restored, with its credentials.
    const ours = desired(randomUUID());
    await secrets.create(ours, `${ours.orgId}-bootstrap-1`, act(0));
    const before = await ports.secrets.getSecretValue(ours.name);
    await ports.secrets.deleteSecret(ours.name, 7);
    const restored = await secrets.create(ours, `${ours.orgId}-bootstrap-2`, act(0));
    expect(restored).toMatchObject({ adopted: true, details: { restored: true } });
    expect((await ports.secrets.describeSecret(ours.name)).deletedDate).toBeUndefined();
    expect((await ports.secrets.getSecretValue(ours.name)).value).toBe(before.value);

    // A force delete of a scheduled secret is refused: it stays scheduled, which is what was asked.
    await ports.secrets.deleteSecret(ours.name, 7);
    await ports.secrets.deleteSecret(ours.name, 0);
    expect((await ports.secrets.describeSecret(ours.name)).deletedDate).toBeInstanceOf(Date);

    // Scheduled, but its tags name another org: not restored; the create waits, saying why.
    const foreign = desired(randomUUID());
    await ports.secrets.createSecret({
      name: foreign.name,
      value: '{}',
      tags: tenantTags(randomUUID()),
      token: randomUUID(),
      description: '',
    });
    await ports.secrets.deleteSecret(foreign.name, 7);
    const refused = await thrown(secrets.create(foreign, `${foreign.orgId}-bootstrap-1`, act(0)));
    expect(conditionForError(refused).reason).toBe('WaitingForSecretName');
    expect((await ports.secrets.describeSecret(foreign.name)).deletedDate).toBeInstanceOf(Date);

    // Force-deleted moments ago: the name is blocked for a while; the create waits, then succeeds.
    const blocked = desired(randomUUID());
    await secrets.create(blocked, `${blocked.orgId}-bootstrap-1`, act(0));
    await ports.secrets.deleteSecret(blocked.name, 0);
    const waiting = await thrown(secrets.create(blocked, `${blocked.orgId}-bootstrap-2`, act(0)));
    expect(conditionForError(waiting)).toMatchObject({ reason: 'WaitingForSecretName' });
    expect(await failure(ports.secrets.describeSecret(blocked.name))).toMatchObject({
      errorClass: 'NotFound',
    });
    sim.advance(60_000);
    expect((await secrets.create(blocked, `${blocked.orgId}-bootstrap-2`, act(0))).adopted).toBeUndefined();
    expect((await ports.secrets.describeSecret(blocked.name)).deletedDate).toBeUndefined();
  });
});

describe("3: Cloudflare's 1200 requests per 5 minutes", () => {
  it('the client window stays under it, also for a share of a token', () => {
    expect(cloudflareWindow(1)).toEqual({ limit: 1140, windowSeconds: 300 });
    expect(cloudflareWindow(0.5).limit).toBeLessThanOrEqual(600);
    expect(new RateLimiter({}, undefined, '').spec('cloudflare')).toEqual(cloudflareWindow(1));
    const config = testConfig({ ...simEnv(sim), CLOUDFLARE_RATE_SHARE: '0.25' });
    expect(config.CLOUDFLARE_RATE_SHARE).toBe(0.25);
    expect(() => testConfig({ ...simEnv(sim), CLOUDFLARE_RATE_SHARE: '0' })).toThrow(/CLOUDFLARE_RATE_SHARE/);
  });

  it('a lockout is not retried inside the call: every Cloudflare call is held until the window ends', async () => {
    sim.setFaults({ cloudflareRateLimit: true });
    let now = 1_000_000;
    const limiter = new RateLimiter({}, metrics, '', () => now);
    const cf = makePorts(limiter).tunnels!;
    await cf.listTunnels({});
    // Someone else on the same token (the dashboard, a script) spends the window.
    const verify = () =>
      fetch(`${sim.cloudflareBaseUrl}/user/tokens/verify`, {
        headers: { authorization: `Bearer ${sim.seed.apiToken}` },
      });
    for (let sent = 1; sent < 1200; sent += 50)
      await Promise.all(Array.from({ length: Math.min(50, 1200 - sent) }, () => verify()));

    sim.resetCalls();
    const first = await thrown(cf.listTunnels({}));
    expect(first).toMatchObject({ errorClass: 'Throttled', code: 'RateLimited' });
    expect(conditionForError(first).reason).toBe('RateLimited');
    // One request: the SDK did not sleep out the retry-after and ask again.
    expect(sim.callLog().filter((c) => c.service === 'cloudflare')).toHaveLength(1);
    expect(
      await metricValue(metrics.registry, 'molecule_ratelimit_lockouts_total', { bucket: 'cloudflare' }),
    ).toBe(1);

    // Until the window ends, nothing reaches Cloudflare: calls fail at once, naming the wait.
    for (let k = 0; k < 5; k++)
      expect(await failure(cf.createTunnel(`molecule-${ENV}-held-${k}`))).toEqual({
        errorClass: 'Throttled',
        code: 'RateLimited',
      });
    expect(sim.callLog().filter((c) => c.service === 'cloudflare')).toHaveLength(1);
    expect(
      await metricValue(metrics.registry, 'molecule_ratelimit_lockouts_total', { bucket: 'cloudflare' }),
    ).toBe(1);

    now += 300_000;
    sim.advance(300_000);
    expect((await cf.createTunnel(`molecule-${ENV}-after`)).name).toBe(`molecule-${ENV}-after`);
  });
});

describe('4: tunnel connections that linger after cloudflared stopped', () => {
  it('are cleaned up and the tunnel deleted, in a bounded number of calls', async () => {
    sim.setFaults({ tunnelConnectionLingerMs: 30_000, tunnelStatusDetail: true });
    const cf = ports.tunnels!;
    const name = tunnelName(ENV, randomUUID());
    const t = await cf.createTunnel(name);
    const connector = await launch({ ...ownershipTags(ENV), TunnelID: t.id });
    sim.advance(1_000);
    await ports.ec2.terminateInstance(connector.id);
    sim.advance(1_000);
    sim.resetCalls();
    await cf.deleteTunnel(t.id);
    expect(await cf.listTunnels({ name })).toEqual([]);
    expect(
      sim
        .callLog()
        .filter((c) => c.service === 'cloudflare' && c.mutating)
        .map((c) => `${c.operation} ${c.status}`),
    ).toEqual([
      'DELETE cfd_tunnel/:id 400',
      'DELETE cfd_tunnel/:id/connections 200',
      'DELETE cfd_tunnel/:id 200',
    ]);
  });
});

describe('5: a group EC2 still holds after its instance terminated', () => {
  it('lingers with a growing interval and a condition, then is deleted: no storm, no leak', async () => {
    sim.setFaults({ groupReleaseMs: 20_000 });
    const groupId = await createGroup(`rel-${randomUUID().slice(0, 8)}`);
    const instance = await launch(tenantTags(randomUUID()), [groupId]);
    sim.advance(1_000);
    await ports.ec2.terminateInstance(instance.id);
    sim.advance(1_000);
    expect(await stateOf(instance.id)).toBe('terminated');

    const groups = createSecurityGroupController(ports);
    const obs = { ...observed(), resource: { id: groupId } as never };
    const d = { sharedGroupId: undefined } as never;
    sim.resetCalls();
    const first = await groups.delete(d, obs, act(0));
    expect(first).toMatchObject({ gone: false, waiting: { reason: 'WaitingForDependents', afterMs: 1_000 } });
    // Looked at again later, the interval has grown with the wait (a quarter of it).
    const later = await groups.delete(d, obs, act(40_000, first.state));
    expect(later.waiting?.afterMs).toBe(10_000);
    const long = await groups.delete(d, obs, act(600_000, later.state));
    expect(long.waiting?.afterMs).toBe(30_000);
    expect(sim.callLog().filter((c) => c.operation === 'DeleteSecurityGroup')).toHaveLength(3);

    sim.advance(20_000);
    expect(await groups.delete(d, obs, act(620_000, long.state))).toMatchObject({ gone: true });
    expect(await ports.ec2.describeSecurityGroups({ tags: ownershipTags(ENV) })).toEqual([]);
  });
});

describe('6: pagination', () => {
  it('short and empty pages that carry a token: every listing is complete', async () => {
    sim.setFaults({ shortPages: true });
    const orgId = randomUUID();
    for (let k = 0; k < 12; k++) await createGroup(`page-${k}`);
    for (let k = 0; k < 9; k++) await launch(tenantTags(orgId));
    for (let k = 0; k < 7; k++)
      await ports.secrets.createSecret({
        name: `molecule/${ENV}/tenant/page-${k}/bootstrap`,
        value: '{}',
        tags: ownershipTags(ENV),
        token: randomUUID(),
        description: '',
      });
    for (let walk = 0; walk < 3; walk++) {
      expect(await ports.ec2.describeSecurityGroups({ tags: ownershipTags(ENV) })).toHaveLength(12);
      expect(await ports.ec2.describeInstances({ tags: ownershipTags(ENV) })).toHaveLength(9);
      expect(await ports.secrets.listSecrets(`molecule/${ENV}/tenant/`)).toHaveLength(7);
      const tagged = await ports.tagging.getResources(ownershipTags(ENV));
      const byType = (type: string) => tagged.filter((r) => r.resourceType === type).length;
      expect([byType('ec2:security-group'), byType('ec2:instance'), byType('secretsmanager:secret')]).toEqual(
        [12, 9, 7],
      );
      expect(new Set(tagged.map((r) => r.arn)).size).toBe(tagged.length);
    }
  });

  it('an expired Tagging API token restarts the listing from the first page, a bounded number of times', async () => {
    sim.setFaults({ taggingTokenExpiry: true });
    for (let k = 0; k < 12; k++) await createGroup(`tok-${k}`);
    // A long wait in the rate limiter between two pages: the token of the first expired.
    let takes = 0;
    let expireEvery = false;
    const slow = {
      take: async (name: BucketName) => {
        if (name !== 'tagging') return;
        takes++;
        if (takes === 2 || (expireEvery && takes % 2 === 0)) sim.advance(16 * 60_000);
      },
    };
    const tagging = makePorts(slow).tagging;
    expect(await tagging.getResources(ownershipTags(ENV))).toHaveLength(12);
    expect(
      await metricValue(metrics.registry, 'molecule_cloud_listing_restarts_total', { service: 'tagging' }),
    ).toBe(1);

    // Every second page expires: after three restarts the listing fails (transient, not "empty").
    expireEvery = true;
    takes = 0;
    sim.resetCalls();
    expect(await failure(tagging.getResources(ownershipTags(ENV)))).toEqual({
      errorClass: 'Transient',
      code: 'PaginationTokenExpiredException',
    });
    expect(sim.callLog().filter((c) => c.operation === 'GetResources')).toHaveLength(8);
  });
});

describe('7: what the real clouds add on their own', () => {
  it('a launch without groups gets the default group, and the instance controller sees nothing to fix', async () => {
    sim.setFaults({ defaultGroupOnLaunch: true });
    const orgId = randomUUID();
    const tags = tenantTags(orgId);
    const bare = await launch(tags, [], `${orgId}-1`);
    expect(bare.securityGroupIds).toEqual([
      sim.network(sim.seed.accountId, sim.seed.region).defaultSecurityGroupId,
    ]);
    sim.advance(5_000);
    const instances = createInstanceController(ports);
    // Only what observing reads (other fields, e.g. launch-only tags, do not matter to it).
    const d = {
      ownerId: orgId,
      role: 'tenant',
      imageId: AMI,
      instanceType: 't3.small',
      volumeGb: 30,
      subnetId: sim.seed.subnetId,
      securityGroupId: undefined,
      profile: 'p',
      keyName: undefined,
      tags,
      userData: '',
      powerState: 'running',
    } as DesiredInstance;
    const view = new LiveView(ports, ENV, sim.seed.vpcId);
    for (let pass = 0; pass < 3; pass++) {
      const obs = await instances.observe(d, observing(view));
      expect(obs).toMatchObject({ exists: true, upToDate: true, diff: [] });
    }
    // With a group of ours named, that group alone.
    const groupId = await createGroup(`own-${orgId.slice(0, 8)}`);
    expect((await launch(tenantTags(randomUUID()), [groupId])).securityGroupIds).toEqual([groupId]);
  });

  it('a tunnel degraded or down is a condition, not a missing tunnel', async () => {
    sim.setFaults({ tunnelConnectionLingerMs: 30_000, tunnelStatusDetail: true });
    const orgId = randomUUID();
    const name = tunnelName(ENV, orgId);
    const t = await ports.tunnels!.createTunnel(name);
    const connector = await launch({ ...ownershipTags(ENV), TunnelID: t.id });
    sim.advance(1_000);
    await ports.ec2.terminateInstance(connector.id);
    sim.advance(1_000);
    const tunnels = createTunnelController({ tunnels: ports.tunnels!, dns: ports.dns! });
    const d = {
      env: ENV,
      orgId,
      name,
      hostname: 'acme.moleculesai.app',
      ingress: [],
      comment: `molecule-operator env=${ENV} org=${orgId}`,
    };
    const view = new LiveView(ports, ENV, sim.seed.vpcId);
    const degraded = await tunnels.observe(d, observing(view));
    expect(degraded).toMatchObject({
      exists: true,
      externalIds: { tunnelId: t.id },
      readyCondition: { reason: 'TunnelDegraded' },
    });
    sim.advance(30_000);
    const down = await tunnels.observe(d, observing(view));
    expect(down).toMatchObject({
      exists: true,
      externalIds: { tunnelId: t.id },
      readyCondition: { reason: 'TunnelDown' },
    });
  });
});

function observed() {
  return { exists: true, upToDate: false, diff: ['deleting'], externalIds: {} };
}
