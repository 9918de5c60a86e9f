import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DesiredStateRepository } from '../../src/db/desired.js';
import { type Fence, fenceValid, lockFence } from '../../src/db/fence.js';
import { FinalizerRepository } from '../../src/db/finalizers.js';
import { LeaseRepository } from '../../src/db/leases.js';
import { OrphanLedger } from '../../src/db/orphans.js';
import { StatusRepository } from '../../src/db/status.js';
import { NotLeaderError } from '../../src/runtime/errors.js';
import { insertOrg } from '../fixtures/owners.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { snapshotTables } from '../helpers/tables.js';

/**
 * Fencing (DESIGN §12): every write of a leader commits only while its lease is still held at
 * the epoch the write belongs to. A leader that paused past its lease and resumes, still
 * believing it leads, writes nothing.
 */

let tdb: TestDatabase;
let leases: LeaseRepository;

beforeAll(async () => {
  tdb = await createTestDatabase();
  leases = new LeaseRepository(tdb.database);
});
afterAll(async () => {
  await tdb?.drop();
});

/** A fresh lease held by `a` (its fence), then, on demand, taken over by `b` once it expired. */
async function term(): Promise<{ stale: Fence; takeOver(): Promise<Fence> }> {
  const lease = `fence-test-${randomUUID()}`;
  const epoch = await leases.acquireOrRenew(lease, 'a', 60_000);
  const stale = { lease, holder: 'a', epoch: epoch! };
  return {
    stale,
    async takeOver() {
      await tdb.database.query(`UPDATE leases SET expires_at = now() - interval '1 second' WHERE name = $1`, [
        lease,
      ]);
      const next = await leases.acquireOrRenew(lease, 'b', 60_000);
      return { lease, holder: 'b', epoch: next! };
    },
  };
}

let status: StatusRepository;
beforeEach(() => {
  status = new StatusRepository(tdb.database.db);
});

const key = (orgId: string, controller = 'tunnel') => ({
  controller,
  ownerId: orgId,
  ownerKind: 'org' as const,
  orgId,
});

describe('fenced writes', () => {
  it('status rows and audit entries commit under the current term, and nothing under a past one', async () => {
    const org = await insertOrg(tdb.database.db);
    const { stale, takeOver } = await term();
    const mine = status.fenced(() => stale);
    await mine.upsert(key(org.id), { ready: false, reason: 'Progressing', message: 'creating' });
    await mine.upsert(key(org.id), { reason: 'Creating', state: { token: 't-1' } });
    await mine.audit([
      {
        orgId: org.id,
        ownerKind: 'org',
        ownerId: org.id,
        controller: 'tunnel',
        kind: 'cf_tunnel',
        externalId: 'x',
        action: 'created',
      },
    ]);
    expect(await status.get('tunnel', org.id)).toMatchObject({ reason: 'Creating', state: { token: 't-1' } });

    const current = await takeOver();
    const before = await snapshotTables(tdb.database);
    await expect(mine.upsert(key(org.id), { ready: true, reason: 'Available' })).rejects.toBeInstanceOf(
      NotLeaderError,
    );
    await expect(mine.upsert(key(org.id, 'secrets'), { ready: true })).rejects.toBeInstanceOf(NotLeaderError);
    await expect(
      mine.audit([
        {
          orgId: org.id,
          ownerKind: 'org',
          ownerId: org.id,
          controller: 'tunnel',
          kind: 'cf_tunnel',
          externalId: 'y',
          action: 'deleted',
        },
      ]),
    ).rejects.toBeInstanceOf(NotLeaderError);
    expect(await snapshotTables(tdb.database)).toEqual(before);
    // The new holder writes as usual.
    await status.fenced(() => current).upsert(key(org.id), { ready: true, reason: 'Available' });
    expect(await status.get('tunnel', org.id)).toMatchObject({ ready: true, reason: 'Available' });
  });

  it('finalizers and purges commit only under the current term', async () => {
    const org = await insertOrg(tdb.database.db);
    const { stale, takeOver } = await term();
    const finalizers = new FinalizerRepository(tdb.database.db).fenced(() => stale);
    expect(await finalizers.add({ kind: 'org', id: org.id }, 'tunnel')).toBe(true);
    // Already there: nothing to write, and still no error under the current term.
    expect(await finalizers.add({ kind: 'org', id: org.id }, 'tunnel')).toBe(true);
    await takeOver();
    const before = await snapshotTables(tdb.database);
    await expect(finalizers.add({ kind: 'org', id: org.id }, 'secrets')).rejects.toBeInstanceOf(
      NotLeaderError,
    );
    await expect(finalizers.remove({ kind: 'org', id: org.id }, 'tunnel')).rejects.toBeInstanceOf(
      NotLeaderError,
    );
    const desired = new DesiredStateRepository(tdb.database.db).fenced(() => stale);
    await expect(desired.purgeIfReleased({ kind: 'org', id: org.id })).rejects.toBeInstanceOf(NotLeaderError);
    expect(await snapshotTables(tdb.database)).toEqual(before);
  });

  it('the orphan ledger commits only under the current term', async () => {
    const { stale, takeOver } = await term();
    const ledger = new OrphanLedger(tdb.database.db).fenced(() => stale);
    const found = [
      {
        kind: 'ec2_instance' as const,
        externalId: `i-${randomUUID().slice(0, 8)}`,
        reason: 'OwnerGone' as const,
        ownerKind: 'org' as const,
        ownerId: randomUUID(),
        orgId: undefined,
        name: undefined,
        keep: false,
        details: {},
        target: 'primary' as const,
      },
    ];
    const first = await ledger.sync('fence', found, ['ec2_instance'], new Date(), 'primary', []);
    expect(first.detected).toHaveLength(1);
    await takeOver();
    const before = await snapshotTables(tdb.database);
    await expect(
      ledger.sync('fence', [], ['ec2_instance'], new Date(), 'primary', []),
    ).rejects.toBeInstanceOf(NotLeaderError);
    await expect(ledger.markDeleted(first.open[0]!, new Date())).rejects.toBeInstanceOf(NotLeaderError);
    await expect(ledger.recordDecisions([{ orphan: first.open[0]!, why: 'InGrace' }])).rejects.toBeInstanceOf(
      NotLeaderError,
    );
    expect(await snapshotTables(tdb.database)).toEqual(before);
  });

  it('says whether a cloud mutation may still leave: held, with the margin to spare', async () => {
    const { stale, takeOver } = await term();
    expect(await fenceValid(tdb.database.db, stale, 1_000)).toBe(true);
    // A lease about to run out has no margin left for the request.
    await tdb.database.query(
      `UPDATE leases SET expires_at = now() + interval '500 milliseconds' WHERE name = $1`,
      [stale.lease],
    );
    expect(await fenceValid(tdb.database.db, stale, 1_000)).toBe(false);
    const current = await takeOver();
    expect(await fenceValid(tdb.database.db, stale, 0)).toBe(false);
    expect(await fenceValid(tdb.database.db, current, 1_000)).toBe(true);
  });

  it('holds the lease while a fenced transaction is open: the takeover waits for it to commit', async () => {
    const org = await insertOrg(tdb.database.db);
    const { stale, takeOver } = await term();
    await tdb.database.query(
      `UPDATE leases SET expires_at = now() + interval '300 milliseconds' WHERE name = $1`,
      [stale.lease],
    );
    let committedAt = 0;
    const writing = tdb.database.db.transaction(async (tx) => {
      await lockFence(tx, stale);
      await new Promise((r) => setTimeout(r, 800));
      await tx.execute(`UPDATE orgs SET name = 'written in time' WHERE id = '${org.id}'`);
      committedAt = performance.now();
    });
    await new Promise((r) => setTimeout(r, 400));
    // The lease has expired, but its row is locked by the open transaction: the takeover waits.
    await takeOver();
    const tookOverAt = performance.now();
    await writing;
    expect(tookOverAt).toBeGreaterThanOrEqual(committedAt);
  });
});
