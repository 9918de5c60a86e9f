import { randomUUID } from 'node:crypto';
import { EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RESOURCE_KINDS } from '../../controllers/index.js';
import { createOrphanScanner, type OrphanScannerDeps } from '../../controllers/orphan.js';
import { orgs, orphans, tenantResources } from '../../schema/index.js';
import { runOrphansCommand } from '../../src/cli/orphans.js';
import { createTargets } from '../../src/cloud/index.js';
import type { CloudPorts, Tags } from '../../src/cloud/ports.js';
import type { CloudTargets } from '../../src/cloud/targets.js';
import { type Config, loadConfig, MIN_ORPHAN_GRACE_MS } from '../../src/config.js';
import { OrphanLedger } from '../../src/db/orphans.js';
import { StatusRepository } from '../../src/db/status.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics, type Metrics } from '../../src/observability/metrics.js';
import {
  bootstrapSecretName,
  dnsComment,
  tunnelCnameTarget,
  tunnelName,
} from '../../src/provisioning/names.js';
import { ManualClock } from '../../src/runtime/clock.js';
import { NotLeaderError } from '../../src/runtime/errors.js';
import { type Simulator, startSimulator } from '../../src/sim/index.js';
import { insertOrg, insertWorkspace } from '../fixtures/owners.js';
import { simEnv as simSettings } from '../fixtures/sim.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { metricValue } from '../helpers/metrics.js';
import { snapshotTables } from '../helpers/tables.js';

const ENV = 'test';
const HOUR = 3_600_000;
const CREDENTIALS = { accessKeyId: 'x', secretAccessKey: 'y' };

let tdb: TestDatabase;
let sim: Simulator;
let ports: CloudPorts;
let targets: CloudTargets;
let status: StatusRepository;

const simEnv = (): Record<string, string> => ({
  MOLECULE_ENV: ENV,
  LOG_LEVEL: 'silent',
  ...simSettings(sim),
  ORPHAN_MAX_FRACTION: '1',
  // The client-side buckets are sized for AWS; tests launch faster than a real account may.
  RATE_LIMITS: JSON.stringify(
    Object.fromEntries(
      ['ec2-run-instances', 'ec2-terminate-instances', 'ec2-mutating', 'tagging', 'cloudflare'].map((b) => [
        b,
        { capacity: 1000, refillPerSecond: 1000 },
      ]),
    ),
  ),
});

const configWith = (overrides: Record<string, string> = {}): Config =>
  loadConfig({ ...simEnv(), ...overrides });

beforeAll(async () => {
  tdb = await createTestDatabase();
  sim = await startSimulator({ port: 0, profile: 'fast' });
  targets = createTargets(configWith(), { awsCredentials: CREDENTIALS, maxAttempts: 1 });
  ports = targets.portsFor(targets.primary);
  status = new StatusRepository(tdb.database.db);
});

afterAll(async () => {
  await sim?.close();
  await tdb?.drop();
});

beforeEach(async () => {
  sim.reset();
  sim.resetCalls();
  sim.setFaults({ errorRate: 0, throttleRate: 0, operations: { 'tagging:GetResources': null } as never });
  await tdb.database.query(
    'TRUNCATE orphans, tenant_resources, reconcile_status, workspaces, orgs RESTART IDENTITY CASCADE',
  );
});

/** A scanner with fresh metrics; every dependency can be overridden. */
function scanner(env: Record<string, string> = {}, over: Partial<OrphanScannerDeps> = {}) {
  const metrics = createMetrics({ defaults: false });
  const deps: OrphanScannerDeps = {
    config: configWith(env),
    database: tdb.database,
    targets,
    metrics,
    logger: createLogger({ level: 'silent' }),
    ...over,
  };
  return {
    scanner: createOrphanScanner({ ...deps, metrics: over.metrics ?? metrics }),
    metrics: over.metrics ?? metrics,
  };
}

/**
 * A delete-mode scanner whose open orphans have already served ORPHAN_GRACE (at least 10 minutes
 * in delete mode): one scan records them, then its clock moves past the grace.
 */
async function graced(env: Record<string, string> = {}, over: Partial<OrphanScannerDeps> = {}) {
  const clock = new ManualClock();
  const made = scanner({ ORPHAN_POLICY: 'delete', ORPHAN_GRACE: '10m', ...env }, { clock, ...over });
  await made.scanner.scan();
  clock.advance(MIN_ORPHAN_GRACE_MS + 1_000);
  return { ...made, clock };
}

const gauge = (metrics: Metrics, kind: string) =>
  metricValue(metrics.registry, 'molecule_orphan_resources', { kind, env: ENV });

async function gauges(metrics: Metrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const kind of RESOURCE_KINDS) out[kind] = await gauge(metrics, kind);
  return out;
}

const zero = Object.fromEntries(RESOURCE_KINDS.map((k) => [k, 0]));

// --- cloud fixtures ------------------------------------------------------------------------

const ours = (extra: Tags = {}, env = ENV): Tags => ({
  ManagedBy: 'molecule-operator',
  MOLECULE_ENV: env,
  ...extra,
});

async function launch(tags: Tags, securityGroupIds: string[] = []): Promise<string> {
  const i = await ports.ec2.runInstance({
    clientToken: randomUUID(),
    imageId: 'ami-0ea3c35c5c3284d82',
    instanceType: 't3.small',
    subnetId: sim.seed.subnetId,
    securityGroupIds,
    iamInstanceProfileName: 'tenant',
    volumeSizeGb: 30,
    userData: '#!/bin/sh\n',
    tags,
  });
  return i.id;
}

const createGroup = (tags: Tags, name = `g-${randomUUID()}`) =>
  ports.ec2.createSecurityGroup({ name, description: 'test', vpcId: sim.seed.vpcId, tags });

const createSecret = async (name: string, tags: Tags) =>
  (await ports.secrets.createSecret({ name, value: '{}', tags, token: randomUUID(), description: 'test' }))
    .arn;

const createTunnel = async (orgId: string) => (await ports.tunnels!.createTunnel(tunnelName(ENV, orgId))).id;

const createRecord = async (name: string, tunnelId: string, orgId: string) =>
  (
    await ports.dns!.createRecord({
      name: `${name}.${sim.seed.zoneName}`,
      content: tunnelCnameTarget(tunnelId),
      proxied: true,
      comment: dnsComment(ENV, orgId),
    })
  ).id;

/** Lets the simulator's timed transitions (pending → running, shutting-down → terminated) happen. */
const settle = () => sim.advance(1_000);

const instanceState = async (id: string) =>
  (await ports.ec2.describeInstances({ tags: ours() })).find((i) => i.id === id)?.state;

const ledger = async () =>
  (await new OrphanLedger(tdb.database.db).listAll({ open: false })).map((r) => ({
    kind: r.kind,
    externalId: r.externalId,
    reason: r.reason,
    open: !r.resolvedAt && !r.deletedAt,
    resolved: !!r.resolvedAt,
    deleted: !!r.deletedAt,
  }));

const audit = async (action?: string) =>
  (await tdb.database.db.select().from(tenantResources).orderBy(tenantResources.id))
    .filter((r) => !action || r.action === action)
    .map((r) => ({ action: r.action, kind: r.kind, externalId: r.externalId, why: r.details.why }));

const ops = (service: string, operation: string) =>
  sim
    .callLog()
    .filter((c) => c.service === service && c.operation === operation && c.status < 300)
    .map((c) => c.at);

// --- tests ---------------------------------------------------------------------------------

describe('orphan scan: counting', () => {
  it('counts an instance launched through the SDK with our tags and a made-up OrgID after one scan', async () => {
    const ec2 = new EC2Client({
      endpoint: sim.awsEndpoint,
      region: 'us-east-1',
      credentials: CREDENTIALS,
      maxAttempts: 1,
    });
    await ec2.send(
      new RunInstancesCommand({
        ImageId: 'ami-0ea3c35c5c3284d82',
        InstanceType: 't3.micro',
        MinCount: 1,
        MaxCount: 1,
        TagSpecifications: [
          {
            ResourceType: 'instance',
            Tags: [
              { Key: 'ManagedBy', Value: 'molecule-operator' },
              { Key: 'MOLECULE_ENV', Value: ENV },
              { Key: 'OrgID', Value: 'made-up-org' },
            ],
          },
        ],
      }),
    );
    ec2.destroy();
    const { scanner: s, metrics } = scanner();
    expect(s.jobs()).toMatchObject([{ name: 'orphan-scan:primary', cron: '*/5 * * * *', target: 'primary' }]);
    // Concurrent triggers (cron tick, CLI) share one run.
    const [result, again] = await Promise.all([s.scan(), s.scan()]);
    expect(again).toBe(result);
    expect(s.last()).toEqual([result]);
    expect(result.ok).toBe(true);
    expect(await gauges(metrics)).toEqual({ ...zero, ec2_instance: 1 });
    expect(await metricValue(metrics.registry, 'molecule_orphan_scan_success')).toBe(1);
    expect(await metricValue(metrics.registry, 'molecule_managed_resources', { kind: 'ec2_instance' })).toBe(
      1,
    );
    expect(await ledger()).toMatchObject([{ kind: 'ec2_instance', reason: 'OwnerGone', open: true }]);
    expect(await audit()).toMatchObject([{ action: 'orphan_detected', kind: 'ec2_instance' }]);
  });

  it('yields the exact gauge value for each orphan shape, and counts nothing that is not an orphan', async () => {
    const gone = randomUUID();
    const live = await insertOrg(tdb.database.db, { slug: 'live-org' });
    const ws = await insertWorkspace(tdb.database.db, live.id);
    const purged = await insertOrg(tdb.database.db, { slug: 'purged-org', purgedAt: new Date() });
    const deleting = await insertOrg(tdb.database.db, {
      slug: 'deleting-org',
      deletionRequestedAt: new Date(),
    });
    const tenantTags = ours({ OrgID: live.id, Role: 'tenant' });
    const wsTags = ours({ OrgID: live.id, Role: 'workspace', WorkspaceID: ws.id });

    // Managed: the live org's tenant + workspace instance, SG, secret, tunnel and record.
    const tenantSg = await createGroup(tenantTags);
    const tenantInstance = await launch(tenantTags, [tenantSg]);
    const wsInstance = await launch(wsTags);
    const secretArn = await createSecret(bootstrapSecretName(ENV, live.id), tenantTags);
    const tunnelId = await createTunnel(live.id);
    const recordId = await createRecord('live-org', tunnelId, live.id);
    const key = { ownerId: live.id, ownerKind: 'org' as const, orgId: live.id };
    await status.upsert({ controller: 'instance', ...key }, { externalIds: { instanceId: tenantInstance } });
    await status.upsert(
      { controller: 'instance', ownerId: ws.id, ownerKind: 'workspace', orgId: live.id },
      { externalIds: { instanceId: wsInstance } },
    );
    await status.upsert({ controller: 'securitygroup', ...key }, { externalIds: { groupId: tenantSg } });
    await status.upsert({ controller: 'secrets', ...key }, { externalIds: { secretArn } });
    await status.upsert(
      { controller: 'tunnel', ...key },
      { externalIds: { tunnelId, dnsRecordId: recordId } },
    );
    // Being deleted: the cascade's business, not an orphan.
    await launch(ours({ OrgID: deleting.id, Role: 'tenant' }));

    // Orphans: one of each shape.
    const duplicate = await launch(wsTags); // Duplicate: the workspace's status points at wsInstance
    const goneSg = await createGroup(ours({ OrgID: gone, Role: 'tenant' })); // OwnerGone
    const noOwnerSg = await createGroup(ours()); // NoOwnerTag
    await createSecret(bootstrapSecretName(ENV, purged.id), ours({ OrgID: purged.id })); // OwnerGone (purged)
    await createTunnel(gone); // OwnerGone by name
    const otherTunnel = await ports.tunnels!.createTunnel('someone-elses-tunnel');
    await ports.dns!.createRecord({
      name: `alias.${sim.seed.zoneName}`,
      content: tunnelCnameTarget(otherTunnel.id),
      proxied: true,
      comment: dnsComment(ENV, live.id),
    }); // ForeignTunnel

    // Never counted: another env, untagged, and a tunnel / record of another env.
    await launch(ours({ OrgID: gone }, 'prod'));
    await launch({ Name: 'untagged' });
    await createGroup({ OrgID: gone });
    await ports.tunnels!.createTunnel(`molecule-prod-${gone}`);
    await ports.dns!.createRecord({
      name: `prod.${sim.seed.zoneName}`,
      content: 'x.cfargotunnel.com',
      proxied: true,
      comment: dnsComment('prod', gone),
    });
    settle();

    const { scanner: s, metrics } = scanner();
    const result = await s.scan();
    expect(result.errors).toEqual([]);
    expect(await gauges(metrics)).toEqual({
      ec2_instance: 1,
      security_group: 2,
      secret: 1,
      cf_tunnel: 1,
      cf_dns_record: 1,
      other: 0,
    });
    const reasons = Object.fromEntries((await ledger()).map((r) => [r.externalId, r.reason]));
    expect(reasons[duplicate]).toBe('Duplicate');
    expect(reasons[goneSg]).toBe('OwnerGone');
    expect(reasons[noOwnerSg]).toBe('NoOwnerTag');
    expect(Object.values(reasons).sort()).toEqual(
      ['Duplicate', 'ForeignTunnel', 'NoOwnerTag', 'OwnerGone', 'OwnerGone', 'OwnerGone'].sort(),
    );
    // Managed: tenant, workspace, deleting-org and duplicate instances (their root volumes as `other`).
    expect(await metricValue(metrics.registry, 'molecule_managed_resources', { kind: 'ec2_instance' })).toBe(
      4,
    );
    // Their volumes are tagged too (the simulator may attach more than the root volume).
    const volumes = sim
      .dump()
      .instances.filter((i) => i.tags.MOLECULE_ENV === ENV && i.tags.ManagedBy === 'molecule-operator')
      .flatMap((i) => i.volumes.filter((v) => v.tags.MOLECULE_ENV === ENV));
    expect(volumes.length).toBeGreaterThanOrEqual(4);
    expect(await metricValue(metrics.registry, 'molecule_managed_resources', { kind: 'other' })).toBe(
      volumes.length,
    );
    expect(await metricValue(metrics.registry, 'molecule_managed_resources', { kind: 'cf_tunnel' })).toBe(2);
    expect(
      await metricValue(metrics.registry, 'molecule_orphan_oldest_age_seconds', { kind: 'secret' }),
    ).toBeGreaterThanOrEqual(0);
  });

  it('counts nothing for resources of another env or without our tags', async () => {
    const gone = randomUUID();
    await launch(ours({ OrgID: gone }, 'prod'));
    await launch({ OrgID: gone, MOLECULE_ENV: ENV });
    await createGroup(ours({ OrgID: gone }, 'staging'));
    await createSecret(bootstrapSecretName('prod', gone), ours({ OrgID: gone }, 'prod'));
    await createSecret(bootstrapSecretName(ENV, gone), {});
    await ports.tunnels!.createTunnel(`molecule-test-2-${gone}`);
    settle();
    const { scanner: s, metrics } = scanner();
    const result = await s.scan();
    expect(result.ok).toBe(true);
    expect(await gauges(metrics)).toEqual(zero);
    expect(Object.values(result.managed).every((n) => n === 0)).toBe(true);
    expect(await ledger()).toEqual([]);
  });

  it('does not count Tagging-API ghosts: terminated instances, deleted groups, secrets pending deletion or purged', async () => {
    const gone = randomUUID();
    const tags = ours({ OrgID: gone, Role: 'tenant' });
    const terminated = await launch(tags);
    const oldTerminated = await launch(tags);
    const sg = await createGroup(tags);
    await createSecret(bootstrapSecretName(ENV, gone), tags);
    const purgedName = bootstrapSecretName(ENV, randomUUID());
    await createSecret(purgedName, ours({ Role: 'tenant' }));
    settle();
    await ports.ec2.terminateInstance(oldTerminated);
    settle();
    // Out of DescribeInstances, still in the Tagging API for another hour.
    sim.advance(HOUR + 60_000);
    await ports.ec2.terminateInstance(terminated);
    await ports.ec2.deleteSecurityGroup(sg);
    await ports.secrets.deleteSecret(bootstrapSecretName(ENV, gone), 7);
    await ports.secrets.deleteSecret(purgedName, 0);
    settle();

    const { scanner: s, metrics } = scanner();
    const result = await s.scan();
    expect(result.ok).toBe(true);
    expect(result.ghosts).toBeGreaterThanOrEqual(5);
    expect(await gauges(metrics)).toEqual(zero);
    expect(await ledger()).toEqual([]);
  });
  it('confirms a tagged secret outside the env prefix with a targeted describe', async () => {
    await createSecret('legacy/bootstrap', ours({ OrgID: randomUUID() }));
    const { scanner: s, metrics } = scanner();
    await s.scan();
    expect(await gauge(metrics, 'secret')).toBe(1);
    await ports.secrets.deleteSecret('legacy/bootstrap', 7);
    const result = await s.scan();
    expect(result.ghosts).toBe(1);
    expect(await gauge(metrics, 'secret')).toBe(0);
    // Listing: once per scan. Counting: the orphan of the first scan was confirmed once more.
    expect(ops('secretsmanager', 'DescribeSecret')).toHaveLength(3);
  });
});

describe('orphan scan: failures', () => {
  it('keeps the last values, sets scan_success 0, writes and deletes nothing when the Tagging API fails', async () => {
    await launch(ours({ OrgID: randomUUID() }));
    settle();
    const clock = new ManualClock();
    const { scanner: s, metrics } = scanner(
      { ORPHAN_POLICY: 'delete', ORPHAN_GRACE: '10m', ORPHAN_MAX_FRACTION: '1' },
      { clock },
    );
    expect((await s.scan()).ok).toBe(true);
    expect(await gauge(metrics, 'ec2_instance')).toBe(1);
    const timestamp = await metricValue(metrics.registry, 'molecule_orphan_scan_timestamp_seconds');

    await launch(ours({ OrgID: randomUUID() }));
    settle();
    clock.advance(2 * HOUR);
    sim.setFaults({ operations: { 'tagging:GetResources': { errorRate: 1 } } });
    const before = await snapshotTables(tdb.database);
    sim.resetCalls();
    const failed = await s.scan();
    expect(failed.ok).toBe(false);
    expect(failed.errors[0]).toMatch(/list tagged resources/);
    expect(await metricValue(metrics.registry, 'molecule_orphan_scan_success')).toBe(0);
    expect(await gauge(metrics, 'ec2_instance')).toBe(1);
    expect(await metricValue(metrics.registry, 'molecule_orphan_scan_timestamp_seconds')).toBe(timestamp);
    expect(await snapshotTables(tdb.database)).toEqual(before);
    expect(sim.callLog().filter((c) => c.mutating)).toEqual([]);
  });

  it('stops deleting when this replica is no longer the leader', async () => {
    await launch(ours({ OrgID: randomUUID() }));
    settle();
    const { scanner: s } = await graced(
      {},
      {
        assertLeader: () => {
          throw new NotLeaderError();
        },
      },
    );
    const result = await s.scan();
    expect(result.deleted).toEqual([]);
    expect(result.errors[0]).toMatch(/not the leader/);
    expect(ops('ec2', 'TerminateInstances')).toEqual([]);
  });
});

describe('orphan scan: delete policy', () => {
  it('deletes only after the orphan was seen continuously for ORPHAN_GRACE; a reappearance starts over', async () => {
    const owner = randomUUID();
    const id = await launch(ours({ OrgID: owner, Role: 'tenant' }));
    settle();
    const clock = new ManualClock();
    const { scanner: s, metrics } = scanner({ ORPHAN_POLICY: 'delete', ORPHAN_GRACE: '1h' }, { clock });

    expect((await s.scan()).deleted).toEqual([]);
    clock.advance(50 * 60_000);
    expect((await s.scan()).deleted).toEqual([]);

    // The owner shows up: resolved. Then it is purged: a new sighting with a new first_seen.
    await insertOrg(tdb.database.db, { id: owner, slug: 'back-again' });
    clock.advance(5 * 60_000);
    await s.scan();
    expect(await gauge(metrics, 'ec2_instance')).toBe(0);
    await tdb.database.db.update(orgs).set({ purgedAt: new Date() }).where(eq(orgs.id, owner));
    clock.advance(5 * 60_000);
    expect((await s.scan()).deleted).toEqual([]);
    clock.advance(59 * 60_000);
    const inGrace = await s.scan();
    expect(inGrace.deleted).toEqual([]);
    expect(inGrace.skipped).toEqual([{ kind: 'ec2_instance', externalId: id, why: 'InGrace' }]);
    expect(await instanceState(id)).toBe('running');

    clock.advance(60_000);
    const result = await s.scan();
    expect(result.deleted).toEqual([{ kind: 'ec2_instance', externalId: id, reason: 'OwnerGone' }]);
    expect(await instanceState(id)).toMatch(/shutting-down|terminated/);
    expect(await gauge(metrics, 'ec2_instance')).toBe(0);
    expect(
      await metricValue(metrics.registry, 'molecule_orphan_deleted_total', { kind: 'ec2_instance' }),
    ).toBe(1);
    expect(await ledger()).toMatchObject([
      { externalId: id, resolved: true, deleted: false },
      { externalId: id, resolved: false, deleted: true },
    ]);
    expect((await audit()).map((a) => a.action)).toEqual([
      'orphan_detected',
      'orphan_delete_skipped',
      'orphan_resolved',
      'orphan_detected',
      'orphan_delete_skipped',
      'orphan_deleted',
    ]);
    // Terminated now: the next scan counts nothing and deletes nothing more.
    settle();
    const after = await s.scan();
    expect(after.deleted).toEqual([]);
    expect(await gauges(metrics)).toEqual(zero);
  });

  it('deletes at most ORPHAN_MAX_DELETIONS per scan', async () => {
    for (let n = 0; n < 3; n++) await launch(ours({ OrgID: randomUUID() }));
    settle();
    const { scanner: s, metrics } = await graced({ ORPHAN_MAX_DELETIONS: '2' });
    const first = await s.scan();
    expect(first.deleted).toHaveLength(2);
    expect(first.skipped.map((x) => x.why)).toEqual(['PerScanCap']);
    expect(await gauge(metrics, 'ec2_instance')).toBe(1);
    settle();
    expect((await s.scan()).deleted).toHaveLength(1);
    expect(ops('ec2', 'TerminateInstances')).toHaveLength(3);
  });

  it('refuses to delete anything when orphans exceed ORPHAN_MAX_FRACTION of managed resources, loudly', async () => {
    const org = await insertOrg(tdb.database.db);
    await launch(ours({ OrgID: org.id, Role: 'tenant' }));
    await launch(ours({ OrgID: randomUUID() }));
    await launch(ours({ OrgID: randomUUID() }));
    settle();
    const { scanner: s, metrics } = await graced({ ORPHAN_MAX_FRACTION: '0.2' });
    const result = await s.scan();
    expect(result.blockedByFraction).toBe(true);
    expect(result.deleted).toEqual([]);
    expect(await metricValue(metrics.registry, 'molecule_orphan_deletion_blocked')).toBe(1);
    expect(await gauge(metrics, 'ec2_instance')).toBe(2);
    expect((await audit('orphan_delete_skipped')).map((a) => a.why)).toEqual([
      'FractionGuard',
      'FractionGuard',
    ]);
    expect(ops('ec2', 'TerminateInstances')).toEqual([]);
    // Repeated decisions are not audited again.
    await s.scan();
    expect(await audit('orphan_delete_skipped')).toHaveLength(2);
  });

  it('never deletes a resource tagged molecule-keep=true, nor one without an owner tag', async () => {
    const kept = await launch(ours({ OrgID: randomUUID(), 'molecule-keep': 'true' }));
    const noOwner = await launch(ours());
    settle();
    const { scanner: s, metrics } = await graced();
    const result = await s.scan();
    expect(result.deleted).toEqual([]);
    expect(Object.fromEntries(result.skipped.map((x) => [x.externalId, x.why]))).toEqual({
      [kept]: 'KeepTag',
      [noOwner]: 'NoOwnerTag',
    });
    expect(await gauge(metrics, 'ec2_instance')).toBe(2);
    expect(await instanceState(kept)).toBe('running');
    expect(await instanceState(noOwner)).toBe('running');
    expect(ops('ec2', 'TerminateInstances')).toEqual([]);
  });

  it('neither counts nor deletes on a lagging ListSecrets: a bundle it shows live is confirmed first', async () => {
    // ListSecrets "might not reflect changes from the last five minutes": it still shows the
    // purged org's bundle as live after it was scheduled for deletion.
    sim.setFaults({ listSecretsLagMs: 60_000 });
    try {
      const gone = randomUUID();
      const name = bootstrapSecretName(ENV, gone);
      const arn = await createSecret(name, ours({ OrgID: gone, Role: 'tenant' }));
      sim.advance(61_000);
      await ports.secrets.deleteSecret(name, 7);
      expect((await ports.secrets.listSecrets(name))[0]?.deletedDate).toBeUndefined();
      sim.resetCalls();
      const { scanner: s, metrics } = await graced();
      const result = await s.scan();
      expect(result.deleted).toEqual([]);
      expect(result.ghosts).toBeGreaterThanOrEqual(1);
      expect(await gauge(metrics, 'secret')).toBe(0);
      expect((await ledger()).map((o) => o.externalId)).not.toContain(arn);
      expect(ops('secretsmanager', 'DeleteSecret')).toEqual([]);
      expect((await ports.secrets.describeSecret(name)).deletedDate).toBeInstanceOf(Date);
    } finally {
      sim.setFaults({ listSecretsLagMs: 0 });
    }
  });

  it('deletes in dependency order: the instance before its group, the DNS record before its tunnel', async () => {
    const gone = randomUUID();
    const tags = ours({ OrgID: gone, Role: 'tenant' });
    const sg = await createGroup(tags);
    const instance = await launch(tags, [sg]);
    const tunnelId = await createTunnel(gone);
    await createRecord('gone-org', tunnelId, gone);
    await createSecret(bootstrapSecretName(ENV, gone), tags);
    settle();
    const { scanner: s, metrics } = await graced();
    const first = await s.scan();
    expect(first.deleted.map((d) => d.externalId).slice(0, 1)).toEqual([instance]);
    expect(first.deleted.map((d) => d.kind)).toContain('cf_dns_record');
    // The group may still be held by the shutting-down instance: then the next scan removes it.
    if (!first.deleted.some((d) => d.kind === 'security_group')) {
      expect(first.skipped).toContainEqual({
        kind: 'security_group',
        externalId: sg,
        why: 'DependencyViolation',
      });
      settle();
      const second = await s.scan();
      expect(second.deleted.map((d) => d.externalId)).toEqual([sg]);
    }
    const [terminated] = ops('ec2', 'TerminateInstances');
    const [groupDeleted] = ops('ec2', 'DeleteSecurityGroup');
    expect(terminated).toBeLessThanOrEqual(groupDeleted!);
    const log = sim.callLog().filter((c) => c.service === 'cloudflare' && c.operation.startsWith('DELETE'));
    expect(log.map((c) => c.operation.split(' ')[1]!.split('/')[0])).toEqual(['dns_records', 'cfd_tunnel']);
    settle();
    await s.scan();
    expect(await gauges(metrics)).toEqual(zero);
    expect(await metricValue(metrics.registry, 'molecule_orphan_deleted_total', { kind: 'secret' })).toBe(1);
    expect((await ports.secrets.describeSecret(bootstrapSecretName(ENV, gone))).deletedDate).toBeInstanceOf(
      Date,
    );
  });
});

describe('orphan scan: ledger and exposition', () => {
  it('resolves an orphan that disappears, and the gauge drops', async () => {
    const sg = await createGroup(ours({ OrgID: randomUUID() }));
    const { scanner: s, metrics } = scanner();
    await s.scan();
    expect(await gauge(metrics, 'security_group')).toBe(1);
    await ports.ec2.deleteSecurityGroup(sg);
    const result = await s.scan();
    expect(result.resolved).toBe(1);
    expect(await gauge(metrics, 'security_group')).toBe(0);
    expect(await ledger()).toMatchObject([{ externalId: sg, resolved: true }]);
    expect(await audit()).toMatchObject([
      { action: 'orphan_detected', externalId: sg },
      { action: 'orphan_resolved', externalId: sg },
    ]);
    expect(await new OrphanLedger(tdb.database.db).listAll()).toEqual([]);
  });

  it('keeps first_seen and moves last_seen while an orphan stays', async () => {
    await createGroup(ours({ OrgID: randomUUID() }));
    const clock = new ManualClock();
    const { scanner: s, metrics } = scanner({}, { clock });
    await s.scan();
    clock.advance(10 * 60_000);
    await s.scan();
    const [row] = await tdb.database.db.select().from(orphans);
    expect(row!.lastSeen.getTime() - row!.firstSeen.getTime()).toBe(10 * 60_000);
    expect(
      await metricValue(metrics.registry, 'molecule_orphan_oldest_age_seconds', { kind: 'security_group' }),
    ).toBe(600);
    expect(await audit()).toHaveLength(1);
  });

  it('exposes valid Prometheus text with a series for every kind', async () => {
    await launch(ours({ OrgID: 'nobody' }));
    settle();
    const { scanner: s, metrics } = scanner();
    await s.scan();
    const text = await metrics.registry.metrics();
    const name = '[a-zA-Z_:][a-zA-Z0-9_:]*';
    const label = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
    const value = '(?:[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|[-+]?Inf|NaN)';
    const sample = new RegExp(`^${name}(?:\\{${label}(?:,${label})*\\})? ${value}(?: -?\\d+)?$`);
    const help = new RegExp(`^# HELP ${name} .*$`);
    const type = new RegExp(`^# TYPE ${name} (?:counter|gauge|histogram|summary|untyped)$`);
    const lines = text.split('\n').filter((l) => l !== '');
    for (const line of lines)
      expect(line, line).toMatch(line.startsWith('# HELP') ? help : line.startsWith('#') ? type : sample);
    for (const kind of RESOURCE_KINDS) {
      expect(text).toContain(
        `molecule_orphan_resources{kind="${kind}",env="${ENV}",target="primary"} ${kind === 'ec2_instance' ? 1 : 0}`,
      );
      expect(text).toContain(`molecule_managed_resources{kind="${kind}",target="primary"}`);
      expect(text).toContain(`molecule_orphan_oldest_age_seconds{kind="${kind}",target="primary"}`);
    }
    expect(text).toMatch(/^molecule_orphan_scan_success\{target="primary"\} 1$/m);
    expect(text).toMatch(/^molecule_orphan_scan_timestamp_seconds\{target="primary"\} \d+$/m);
  });

  it('runs one report-only scan from the CLI and prints the ledger', async () => {
    const id = await launch(ours({ OrgID: randomUUID() }));
    settle();
    let out = '';
    const ctx = {
      env: { ...simEnv(), ORPHAN_POLICY: 'delete', ORPHAN_GRACE: '10m' },
      stdout: (t: string) => {
        out += t;
      },
      stderr: () => {},
    };
    expect(
      await runOrphansCommand(['--scan', '--json'], ctx, {
        database: tdb.database,
        cloud: { awsCredentials: CREDENTIALS, maxAttempts: 1 },
      }),
    ).toBe(0);
    const body = JSON.parse(out) as {
      scan: { ok: boolean; counts: Record<string, number> };
      orphans: { externalId: string }[];
    };
    expect(body.scan.ok).toBe(true);
    expect(body.scan.counts.ec2_instance).toBe(1);
    expect(body.orphans.map((o) => o.externalId)).toEqual([id]);
    expect(ops('ec2', 'TerminateInstances')).toEqual([]);

    out = '';
    expect(await runOrphansCommand([], ctx, { database: tdb.database })).toBe(0);
    expect(out).toMatch(/^KIND\s+EXTERNAL ID\s+REASON\s+OWNER\s+FIRST SEEN\s+AGE\n/);
    expect(out).toContain(id);
  });

  it('writes nothing for a scan that sees no orphans', async () => {
    const org = await insertOrg(tdb.database.db);
    await launch(ours({ OrgID: org.id, Role: 'tenant' }));
    settle();
    const { scanner: s } = scanner();
    await s.scan();
    const [{ n }] = (await tdb.database.db.select({ n: sql<number>`count(*)::int` }).from(orphans)) as [
      { n: number },
    ];
    expect(n).toBe(0);
  });
});
