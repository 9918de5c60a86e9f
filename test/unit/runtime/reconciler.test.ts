import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { orgs, reconcileStatus, tenantResources } from '../../../schema/index.js';
import type { CloudView } from '../../../src/cloud/inventory.js';
import { targetSettings } from '../../../src/cloud/targets.js';
import { DesiredStateRepository, type OwnerRef } from '../../../src/db/desired.js';
import type { Fence } from '../../../src/db/fence.js';
import { FinalizerRepository } from '../../../src/db/finalizers.js';
import { LeaseRepository } from '../../../src/db/leases.js';
import { DesiredSnapshot } from '../../../src/db/snapshot.js';
import { StatusRepository } from '../../../src/db/status.js';
import { createLogger } from '../../../src/observability/logger.js';
import { createMetrics } from '../../../src/observability/metrics.js';
import { ManualClock } from '../../../src/runtime/clock.js';
import {
  absent,
  type Controller,
  type ControllerName,
  type ControllerSpec,
} from '../../../src/runtime/controller.js';
import { TerminalError, TransientError } from '../../../src/runtime/errors.js';
import { finalizerName, Reconciler } from '../../../src/runtime/reconciler.js';
import { ControllerRegistry } from '../../../src/runtime/registry.js';
import { testConfig } from '../../fixtures/config.js';
import { insertOrg } from '../../fixtures/owners.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js';
import { metricValue } from '../../helpers/metrics.js';

/** A fake cloud holding at most one resource per owner: the "port" of this test. */
interface FakeCloud {
  resources: Map<string, { id: string; version: number }>;
  creates: { owner: string; token: string; pendingAtCall: string | undefined }[];
  updates: number;
  deletes: number;
  /** Makes the next create succeed in the cloud but lose its response. */
  loseNextCreate: boolean;
  observeError: Error | undefined;
}

let tdb: TestDatabase;
let clock: ManualClock;
let cloud: FakeCloud;
let metrics: ReturnType<typeof createMetrics>;
let woken: string[];

const config = testConfig({ CREATE_GRACE: '30s' });
const view = { source: 'live' } as CloudView;

type Fake = Controller<{ owner: string; version: number }, { id: string; version: number }>;

/** A registry entry for the fake controller (or a stand-in named otherwise). */
function fakeSpec(over: Partial<ControllerSpec> = {}): ControllerSpec {
  const name = over.name ?? 'securitygroup';
  const kind = ({ tunnel: 'cf_tunnel', instance: 'ec2_instance' } as const)[name] ?? 'security_group';
  return {
    name,
    kinds: [{ kind, statusKey: 'id' }],
    owners: ['org', 'workspace'],
    waitsFor: () => [],
    deleteAfter: () => [],
    disabledBecause: () => undefined,
    create: () => fakeController(name),
    ...over,
  };
}

function fakeController(name: ControllerName = 'securitygroup'): Fake {
  const status = () => new StatusRepository(tdb.database.db);
  const c: Fake = {
    desired: (input) => ({ owner: input.owner.id, version: input.org.name === 'v2' ? 2 : 1 }),
    async observe(d) {
      if (cloud.observeError) throw cloud.observeError;
      const r = cloud.resources.get(d.owner);
      if (!r) return absent();
      const diff = r.version === d.version ? [] : [`version ${r.version} → ${d.version}`];
      return { exists: true, upToDate: diff.length === 0, diff, externalIds: { groupId: r.id }, resource: r };
    },
    createToken: (d) => `token-${d.owner}`,
    async create(d, token) {
      const row = await status().get(name, d.owner);
      cloud.creates.push({ owner: d.owner, token, pendingAtCall: row?.pending?.token });
      const id = `sg-${cloud.creates.length}`;
      cloud.resources.set(d.owner, { id, version: d.version });
      if (cloud.loseNextCreate) {
        cloud.loseNextCreate = false;
        throw new TransientError('socket hang up');
      }
      return { externalIds: { groupId: id } };
    },
    async update(d) {
      cloud.updates++;
      cloud.resources.set(d.owner, { ...cloud.resources.get(d.owner)!, version: d.version });
      return {};
    },
    async delete(d) {
      cloud.deletes++;
      cloud.resources.delete(d.owner);
      return { gone: true };
    },
  };
  return c;
}

/** The spec's reconciler, with `before` (what it may wait for) and `after` it in the registry. */
function reconcilerFor(
  spec: ControllerSpec = fakeSpec(),
  { before = [], after = [] }: { before?: ControllerSpec[]; after?: ControllerSpec[] } = {},
) {
  const db = tdb.database.db;
  const registry = new ControllerRegistry([...before, spec, ...after]);
  const settings = targetSettings(config)[0]!;
  return new Reconciler(registry.of(spec), new Map([['primary', spec.create({} as never)]]), {
    config,
    registry,
    targets: new Map([['primary', { settings, enabled: new Set(registry.names), liveView: view }]]),
    placement: () => 'primary',
    desired: new DesiredStateRepository(db),
    loadOwner: (owner) => DesiredSnapshot.loadOwner(tdb.database, owner),
    status: new StatusRepository(db),
    finalizers: new FinalizerRepository(db),
    pins: async () => ({ ami: () => undefined, image: () => undefined }),
    metrics,
    logger: createLogger({ level: 'silent' }),
    clock,
    assertLeader: () => {},
    fence: () => fence,
    leads: () => true,
    wake: (n, o) => woken.push(`${n}:${o.id}`),
    pollIntervalMs: 1000,
  });
}

const statusRow = async (owner: string) =>
  (await tdb.database.db.select().from(reconcileStatus).where(eq(reconcileStatus.ownerId, owner)))[0];
const auditActions = async (owner: string) =>
  (await tdb.database.db.select().from(tenantResources).where(eq(tenantResources.ownerId, owner))).map(
    (r) => r.action,
  );

const orgRow = async (id: string) => (await tdb.database.db.select().from(orgs).where(eq(orgs.id, id)))[0];

/**
 * An org whose resource was created a moment ago (per the clock) but is not visible yet, as an
 * eventually consistent cloud behaves: its create-pending marker is the only trace of it.
 */
async function createdButNotVisible() {
  const org = await insertOrg(tdb.database.db);
  const r = reconcilerFor();
  const owner: OwnerRef = { kind: 'org', id: org.id };
  expect(await r.reconcile(owner, view)).toEqual({ result: 'requeue', afterMs: 0 });
  expect((await statusRow(org.id))?.pending?.token).toBe(`token-${org.id}`);
  cloud.resources.clear();
  return { org, r, owner };
}

/** The lease these reconciles write under (every write is fenced by it). */
let fence: Fence;

beforeAll(async () => {
  tdb = await createTestDatabase();
  const epoch = await new LeaseRepository(tdb.database).acquireOrRenew('reconciler-test', 'test', 3_600_000);
  fence = { lease: 'reconciler-test', holder: 'test', epoch: epoch! };
});
afterAll(async () => {
  await tdb.drop();
});
beforeEach(() => {
  clock = new ManualClock(Date.now());
  cloud = {
    resources: new Map(),
    creates: [],
    updates: 0,
    deletes: 0,
    loseNextCreate: false,
    observeError: undefined,
  };
  metrics = createMetrics({ defaults: false });
  woken = [];
});

describe('generic reconciler', () => {
  it('create: records the create-pending token before calling create, then becomes Ready', async () => {
    const org = await insertOrg(tdb.database.db);
    const r = reconcilerFor();
    const owner: OwnerRef = { kind: 'org', id: org.id };
    expect(await r.reconcile(owner, view)).toEqual({ result: 'requeue', afterMs: 0 });
    expect(cloud.creates).toEqual([
      { owner: org.id, token: `token-${org.id}`, pendingAtCall: `token-${org.id}` },
    ]);
    expect((await statusRow(org.id))?.reason).toBe('Creating');
    expect(await r.reconcile(owner, view)).toEqual({ result: 'success' });
    const row = await statusRow(org.id);
    expect(row).toMatchObject({
      ready: true,
      reason: 'Available',
      pending: null,
      observedGeneration: 1,
      externalIds: { groupId: 'sg-1' },
    });
    expect(await auditActions(org.id)).toEqual(['created']);
    const [o] = await tdb.database.db.select().from(orgs).where(eq(orgs.id, org.id));
    expect(o?.finalizers).toContain(finalizerName('securitygroup'));
  });

  it('adopt: a create whose response was lost is adopted, not repeated', async () => {
    const org = await insertOrg(tdb.database.db);
    const r = reconcilerFor();
    const owner: OwnerRef = { kind: 'org', id: org.id };
    cloud.loseNextCreate = true;
    expect((await r.reconcile(owner, view)).result).toBe('error');
    expect(cloud.creates).toHaveLength(1);
    expect((await statusRow(org.id))?.pending?.token).toBe(`token-${org.id}`);
    expect((await r.reconcile(owner, view)).result).toBe('success');
    expect(cloud.creates).toHaveLength(1);
    expect(await statusRow(org.id)).toMatchObject({
      ready: true,
      pending: null,
      externalIds: { groupId: 'sg-1' },
    });
    expect(await auditActions(org.id)).toEqual(['adopted']);
  });

  it('grace window: a fresh pending create that is not visible yet is waited for, not repeated', async () => {
    const org = await insertOrg(tdb.database.db);
    const r = reconcilerFor();
    const owner: OwnerRef = { kind: 'org', id: org.id };
    await r.reconcile(owner, view);
    cloud.resources.clear(); // eventually consistent: not visible yet
    const out = await r.reconcile(owner, view);
    expect(out).toEqual({ result: 'requeue', afterMs: 1000 });
    expect(cloud.creates).toHaveLength(1);
    expect((await statusRow(org.id))?.reason).toBe('Creating');
    clock.advance(31_000); // past the grace: create again with the same token (idempotent)
    await r.reconcile(owner, view);
    expect(cloud.creates.map((c) => c.token)).toEqual([`token-${org.id}`, `token-${org.id}`]);
  });

  it('grace window, near its end: waits only for what is left of the grace, still without creating', async () => {
    const { org, r, owner } = await createdButNotVisible();
    clock.advance(config.CREATE_GRACE - 400);
    expect(await r.reconcile(owner, view)).toEqual({ result: 'requeue', afterMs: 400 });
    expect(cloud.creates).toHaveLength(1);
    expect(await statusRow(org.id)).toMatchObject({
      ready: false,
      reason: 'Creating',
      message: 'created, waiting for it to become visible',
      pending: { token: `token-${org.id}` },
    });
    expect((await orgRow(org.id))?.finalizers).toEqual([finalizerName('securitygroup')]);
  });

  it('deletion within the create grace: an invisible fresh create is waited for, not taken as deleted', async () => {
    const { org, r, owner } = await createdButNotVisible();
    await new DesiredStateRepository(tdb.database.db).requestOrgDeletion(org.id);
    // Releasing now would drop the finalizer and leak the resource once it shows up.
    expect(await r.reconcile(owner, view)).toEqual({ result: 'requeue', afterMs: 1000 });
    clock.advance(config.CREATE_GRACE - 400);
    expect(await r.reconcile(owner, view)).toEqual({ result: 'requeue', afterMs: 400 });
    expect(await statusRow(org.id)).toMatchObject({
      ready: false,
      reason: 'Deleting',
      message: 'created moments ago, waiting for it to become visible to delete it',
      pending: { token: `token-${org.id}` },
    });
    const o = await orgRow(org.id);
    expect(o?.finalizers).toEqual([finalizerName('securitygroup')]);
    expect(o?.purgedAt).toBeNull();
    expect(cloud.creates).toHaveLength(1);
    expect(cloud.deletes).toBe(0);
    expect(await auditActions(org.id)).toEqual(['created']);
  });

  it('deletion past the create grace: a create still not visible is taken as gone and released', async () => {
    const { org, r, owner } = await createdButNotVisible();
    await new DesiredStateRepository(tdb.database.db).requestOrgDeletion(org.id);
    clock.advance(config.CREATE_GRACE); // the grace is over once its whole length has passed
    expect(await r.reconcile(owner, view)).toEqual({ result: 'success' });
    expect(await statusRow(org.id)).toMatchObject({ ready: false, reason: 'Deleted', pending: null });
    const o = await orgRow(org.id);
    expect(o?.finalizers).toEqual([]);
    expect(o?.purgedAt).not.toBeNull();
    expect(cloud.creates).toHaveLength(1);
    expect(cloud.deletes).toBe(0);
  });

  it('update: drift on a Ready resource is corrected and counted; a spec change is an update', async () => {
    const org = await insertOrg(tdb.database.db);
    const r = reconcilerFor();
    const owner: OwnerRef = { kind: 'org', id: org.id };
    await r.reconcile(owner, view);
    await r.reconcile(owner, view);
    cloud.resources.set(org.id, { id: 'sg-1', version: 7 }); // out-of-band change
    expect((await r.reconcile(owner, view)).result).toBe('requeue');
    expect(cloud.updates).toBe(1);
    expect(
      await metricValue(metrics.registry, 'molecule_drift_corrections_total', {
        controller: 'securitygroup',
      }),
    ).toBe(1);
    await r.reconcile(owner, view);
    await tdb.database.db.update(orgs).set({ name: 'v2' }).where(eq(orgs.id, org.id));
    await r.reconcile(owner, view);
    expect(cloud.updates).toBe(2);
    expect(
      await metricValue(metrics.registry, 'molecule_drift_corrections_total', {
        controller: 'securitygroup',
      }),
    ).toBe(1);
    await r.reconcile(owner, view);
    expect(await statusRow(org.id)).toMatchObject({ ready: true, observedGeneration: 2 });
    expect(await auditActions(org.id)).toEqual(['created', 'drift_corrected', 'updated']);
  });

  it('delete: deletes, confirms it gone, releases the finalizer and purges the owner', async () => {
    const org = await insertOrg(tdb.database.db);
    const r = reconcilerFor();
    const owner: OwnerRef = { kind: 'org', id: org.id };
    await r.reconcile(owner, view);
    await r.reconcile(owner, view);
    await new DesiredStateRepository(tdb.database.db).requestOrgDeletion(org.id);
    expect(await r.reconcile(owner, view)).toEqual({ result: 'requeue', afterMs: 0 });
    expect(cloud.deletes).toBe(1);
    expect(await r.reconcile(owner, view)).toEqual({ result: 'success' });
    const [o] = await tdb.database.db.select().from(orgs).where(eq(orgs.id, org.id));
    expect(o?.finalizers).toEqual([]);
    expect(o?.purgedAt).not.toBeNull();
    expect(await auditActions(org.id)).toEqual(['created', 'deleted']);
  });

  it('dependency: waits with a Waiting reason and no cloud call until the dependency is ready', async () => {
    const org = await insertOrg(tdb.database.db);
    const dep = fakeSpec({ name: 'tunnel' });
    const c = fakeSpec({ waitsFor: () => [{ controller: dep, scope: 'self', label: 'Tunnel' }] });
    const r = reconcilerFor(c, { before: [dep] });
    const owner: OwnerRef = { kind: 'org', id: org.id };
    expect(await r.reconcile(owner, view)).toEqual({ result: 'success' });
    expect(cloud.creates).toHaveLength(0);
    expect(await statusRow(org.id)).toMatchObject({ ready: false, reason: 'WaitingForTunnel' });
    await new StatusRepository(tdb.database.db).upsert(
      { controller: 'tunnel', ownerId: org.id, ownerKind: 'org', orgId: org.id },
      { ready: true, reason: 'Available' },
    );
    await r.reconcile(owner, view);
    expect(cloud.creates).toHaveLength(1);
  });

  it('errors: a terminal error is not retried and shows its reason; a transient one backs off', async () => {
    const org = await insertOrg(tdb.database.db);
    const r = reconcilerFor();
    const owner: OwnerRef = { kind: 'org', id: org.id };
    cloud.observeError = new TerminalError('not allowed', { reason: 'PermissionDenied' });
    expect(await r.reconcile(owner, view)).toEqual({ result: 'terminal' });
    expect(await statusRow(org.id)).toMatchObject({ ready: false, reason: 'PermissionDenied', attempts: 1 });
    cloud.observeError = new TransientError('503');
    expect(await r.reconcile(owner, view)).toEqual({ result: 'error' });
    expect(await statusRow(org.id)).toMatchObject({ reason: 'ReconcileError', attempts: 2 });
    expect(cloud.creates).toHaveLength(0);
  });

  it('unchanged status is not written again', async () => {
    const org = await insertOrg(tdb.database.db);
    const r = reconcilerFor();
    const owner: OwnerRef = { kind: 'org', id: org.id };
    await r.reconcile(owner, view);
    await r.reconcile(owner, view);
    const before = await statusRow(org.id);
    await new Promise((res) => setTimeout(res, 5));
    await r.reconcile(owner, view);
    expect((await statusRow(org.id))?.updatedAt).toEqual(before?.updatedAt);
  });

  it('resync snapshot: nothing to do costs no database read; something to do is decided again on fresh rows', async () => {
    const org = await insertOrg(tdb.database.db);
    const r = reconcilerFor();
    const owner: OwnerRef = { kind: 'org', id: org.id };
    await r.reconcile(owner, view);
    await r.reconcile(owner, view);
    const snapshot = await DesiredSnapshot.load(tdb.database, [org.id]);
    const reads = vi.spyOn(DesiredSnapshot, 'loadOwner');
    try {
      expect(await r.reconcile(owner, view, snapshot)).toEqual({ result: 'success' });
      expect(reads).not.toHaveBeenCalled();
      // After the snapshot: the spec changes and the cloud drifts. The update must follow the
      // fresh spec (version 2), not the snapshot's (version 1).
      await tdb.database.db.update(orgs).set({ name: 'v2' }).where(eq(orgs.id, org.id));
      cloud.resources.set(org.id, { id: 'sg-1', version: 7 });
      await r.reconcile(owner, view, snapshot);
      expect(reads).toHaveBeenCalled();
      expect(cloud.updates).toBe(1);
      expect(cloud.resources.get(org.id)?.version).toBe(2);
    } finally {
      reads.mockRestore();
    }
  });

  it('wakes dependents when the resource becomes ready', async () => {
    const org = await insertOrg(tdb.database.db);
    const sg = fakeSpec();
    const dependent = fakeSpec({
      name: 'instance',
      waitsFor: () => [{ controller: sg, scope: 'self', label: 'SecurityGroup' }],
    });
    const r = reconcilerFor(sg, { after: [dependent] });
    const owner: OwnerRef = { kind: 'org', id: org.id };
    await r.reconcile(owner, view);
    expect(woken).toEqual([]);
    await r.reconcile(owner, view);
    expect(woken).toEqual([`instance:${org.id}`]);
  });
});
