import { and, asc, inArray, isNull } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { orgs, reconcileStatus, type StatusRow, workspaces } from '../../schema/index.js';
import type { Database } from '../../src/db/client.js';
import { jsonRow } from '../../src/db/rows.js';
import { DesiredSnapshot } from '../../src/db/snapshot.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;

// Fixed ids so that rows sort predictably by id.
const ORG = {
  plain: '00000000-0000-4000-8000-000000000001',
  deleting: '00000000-0000-4000-8000-000000000002',
  purged: '00000000-0000-4000-8000-000000000003',
  bare: '00000000-0000-4000-8000-000000000004',
  outside: '00000000-0000-4000-8000-000000000005',
};
const WS = {
  first: '00000000-0000-4000-8000-0000000000a1',
  tiedLow: '00000000-0000-4000-8000-0000000000a2',
  tiedHigh: '00000000-0000-4000-8000-0000000000a3',
  purged: '00000000-0000-4000-8000-0000000000a4',
  deleting: '00000000-0000-4000-8000-0000000000b1',
  outside: '00000000-0000-4000-8000-0000000000c1',
};
const BATCH = [ORG.plain, ORG.deleting, ORG.purged, ORG.bare];

async function seed(database: Database) {
  await database.query(
    `INSERT INTO orgs (id, slug, name, is_canary, power_state, finalizers, deletion_requested_at, purged_at, created_at, updated_at) VALUES
       ($1, 'plain', 'Plain', false, 'running', '{}', NULL, NULL, '2024-02-29 23:59:59.999999+00', '2024-03-01 00:00:00.000001+00'),
       ($2, 'deleting', 'Deleting ''quoted'' ünï', true, 'stopped',
        ARRAY['molecule.dev/securitygroup', 'a,b', 'quote"back\\slash', 'NULL', '', ' {braces} '],
        '2024-05-01 10:00:00.5+00', NULL, '2024-01-01 00:00:00+00', '2024-05-01 10:00:00.5+00'),
       ($3, 'purged', 'Purged', false, 'running', '{}', '2024-04-01 00:00:00+00', '2024-04-02 00:00:00.123456+00', now(), now()),
       ($4, 'bare', 'Bare', false, 'running', '{}', NULL, NULL, now(), now()),
       ($5, 'outside', 'Outside', false, 'running', '{}', NULL, NULL, now(), now())`,
    [ORG.plain, ORG.deleting, ORG.purged, ORG.bare, ORG.outside],
  );
  // The trigger bumps generation on a spec change: a value other than the default.
  await database.query(`UPDATE orgs SET name = 'Plain v2' WHERE id = $1`, [ORG.plain]);
  await database.query(
    `INSERT INTO workspaces (id, org_id, name, runtime, tier, power_state, finalizers, deletion_requested_at, purged_at, created_at) VALUES
       ($1, $7, 'first', 'langgraph', 2, 'running', '{}', NULL, NULL, '2024-03-01 00:00:00.000001+00'),
       -- Same creation time: creation order falls back to the id.
       ($3, $7, 'tied-high', 'crewai', 4, 'stopped', '{}', NULL, NULL, '2024-03-01 00:00:00.000002+00'),
       ($2, $7, 'tied-low', 'crewai', 4, 'running', '{molecule.dev/ec2}', NULL, NULL, '2024-03-01 00:00:00.000002+00'),
       ($4, $7, 'purged', 'langgraph', 1, 'running', '{}', '2024-03-02 00:00:00+00', '2024-03-03 00:00:00+00', '2024-01-01 00:00:00+00'),
       ($5, $8, 'deleting', 'langgraph', 8, 'running', '{molecule.dev/ec2,molecule.dev/secret}', '2024-05-01 10:00:00.5+00', NULL, now()),
       ($6, $9, 'outside', 'langgraph', 4, 'running', '{}', NULL, NULL, now())`,
    [
      WS.first,
      WS.tiedLow,
      WS.tiedHigh,
      WS.purged,
      WS.deleting,
      WS.outside,
      ORG.plain,
      ORG.deleting,
      ORG.outside,
    ],
  );
  const status = (
    controller: string,
    ownerId: string,
    ownerKind: 'org' | 'workspace',
    orgId: string,
    extra: string,
  ) => `('${controller}', '${ownerId}', '${ownerKind}', '${orgId}', ${extra})`;
  const defaults = `false, 'Pending', '', 0, '{}', '{}', NULL, 0, NULL, NULL, NULL`;
  await database.query(
    `INSERT INTO reconcile_status (controller, owner_id, owner_kind, org_id, ready, reason, message, observed_generation,
                                   external_ids, state, pending, attempts, last_error, next_attempt_at, last_reconciled_at) VALUES
       ${[
         status(
           'securitygroup',
           ORG.plain,
           'org',
           ORG.plain,
           `true, 'Ready', 'all good', 2, '{"groupId":"sg-1","nested":{"a":[1,2.5,null]}}', '{"ports":[443],"note":"ünï \\"q\\""}', NULL, 0, NULL, NULL, '2024-03-01 00:00:00.000001+00'`,
         ),
         status(
           'secret',
           ORG.plain,
           'org',
           ORG.plain,
           `false, 'CreatePending', '', 1, '{}', '{}', '{"token":"t-1","startedAt":"2024-03-01T00:00:00.000Z"}', 3, 'boom: "quoted"', '2024-03-01 00:05:00.999999+00', NULL`,
         ),
         // A JSON null and a JSON string in jsonb (drizzle parses a string value once more).
         status(
           'tunnel',
           ORG.plain,
           'org',
           ORG.plain,
           `false, 'Pending', '', 0, 'null', '"{\\"a\\":1}"', '"123"', 0, NULL, NULL, NULL`,
         ),
         status('securitygroup', WS.first, 'workspace', ORG.plain, defaults),
         status(
           'ec2',
           WS.first,
           'workspace',
           ORG.plain,
           `true, 'Ready', '', 5, '{"instanceId":"i-1"}', '{"big":12345678901234567890,"f":0.1}', NULL, 0, NULL, NULL, now()`,
         ),
         status('ec2', WS.tiedLow, 'workspace', ORG.plain, defaults),
         status('ec2', WS.purged, 'workspace', ORG.plain, defaults),
         status('securitygroup', ORG.deleting, 'org', ORG.deleting, defaults),
         status(
           'ec2',
           WS.deleting,
           'workspace',
           ORG.deleting,
           `false, 'Deleting', 'waiting', 1, '{}', '{}', NULL, 7, 'throttled', '2024-05-01 10:00:30+00', NULL`,
         ),
         status('securitygroup', ORG.purged, 'org', ORG.purged, defaults),
         // A year where node-postgres' own timestamp parser and drizzle's disagree.
         status(
           'securitygroup',
           ORG.outside,
           'org',
           ORG.outside,
           `true, 'Ready', '', 1, '{}', '{}', NULL, 0, NULL, NULL, '0050-06-15 12:00:00+00'`,
         ),
         status('ec2', WS.outside, 'workspace', ORG.outside, defaults),
       ].join(',\n')}`,
  );
}

/** What the snapshot read with drizzle before it read raw rows. */
async function drizzleRows(database: Database, orgIds: string[]) {
  const db = database.db;
  const [o, w] = await Promise.all([
    db.select().from(orgs).where(inArray(orgs.id, orgIds)),
    db
      .select()
      .from(workspaces)
      .where(and(inArray(workspaces.orgId, orgIds), isNull(workspaces.purgedAt)))
      .orderBy(workspaces.createdAt, workspaces.id),
  ]);
  const owners = [...orgIds, ...w.map((x) => x.id)];
  const s = await db.select().from(reconcileStatus).where(inArray(reconcileStatus.ownerId, owners));
  return { orgs: o, workspaces: w, status: s };
}

/** One JSON array per row, as the `*_ROW` expressions of rows.ts build them. */
async function rawRows<T>(text: string, params: unknown[] = []): Promise<T[]> {
  return (await tdb.database.query<{ row: T }>(text, params)).map((r) => r.row);
}

const byController = (rows: StatusRow[]) =>
  [...rows].sort((a, b) => a.controller.localeCompare(b.controller));

/** Same values, same classes, same keys in the same order. */
function expectSameRows(actual: object[], expected: object[]) {
  expect(actual).toStrictEqual(expected);
  expect(actual.map((r) => Object.keys(r))).toEqual(expected.map((r) => Object.keys(r)));
}

async function expectSnapshotMatchesDrizzle(database: Database, orgIds: string[]) {
  const snap = await DesiredSnapshot.load(database, orgIds);
  const expected = await drizzleRows(database, orgIds);
  for (const id of orgIds) {
    const org = expected.orgs.find((o) => o.id === id);
    expect(snap.covers(id)).toBe(org !== undefined);
    expectSameRows(org ? [snap.org(id)!] : [], org ? [org] : []);
    expectSameRows(
      snap.workspacesOf(id),
      expected.workspaces.filter((w) => w.orgId === id),
    );
  }
  for (const w of expected.workspaces) expect(snap.workspace(w.id)).toStrictEqual(w);
  for (const owner of [...orgIds, ...expected.workspaces.map((w) => w.id)]) {
    expectSameRows(
      byController(snap.statusOf(owner)),
      byController(expected.status.filter((s) => s.ownerId === owner)),
    );
  }
  return snap;
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  await seed(tdb.database);
});
afterAll(async () => {
  await tdb.drop();
});

const ORG_ROW = jsonRow(orgs);
const WORKSPACE_ROW = jsonRow(workspaces);
const STATUS_ROW = jsonRow(reconcileStatus);

describe('raw row mapping', () => {
  it('maps every org exactly as drizzle does', async () => {
    const raw = await rawRows<unknown[]>(`SELECT ${ORG_ROW.sql} AS row FROM orgs ORDER BY id`);
    const expected = await tdb.database.db.select().from(orgs).orderBy(asc(orgs.id));
    expect(expected).toHaveLength(5);
    expectSameRows(raw.map(ORG_ROW.decode), expected);
  });

  it('maps every workspace exactly as drizzle does', async () => {
    const raw = await rawRows<unknown[]>(`SELECT ${WORKSPACE_ROW.sql} AS row FROM workspaces ORDER BY id`);
    const expected = await tdb.database.db.select().from(workspaces).orderBy(asc(workspaces.id));
    expect(expected).toHaveLength(6);
    expectSameRows(raw.map(WORKSPACE_ROW.decode), expected);
  });

  it('maps every status row exactly as drizzle does', async () => {
    const raw = await rawRows<unknown[]>(
      `SELECT ${STATUS_ROW.sql} AS row FROM reconcile_status ORDER BY owner_id, controller`,
    );
    const expected = await tdb.database.db
      .select()
      .from(reconcileStatus)
      .orderBy(asc(reconcileStatus.ownerId), asc(reconcileStatus.controller));
    expect(expected).toHaveLength(12);
    expectSameRows(raw.map(STATUS_ROW.decode), expected);
  });

  it('keeps the values drizzle gives for the tricky columns', async () => {
    const [deleting] = await rawRows<unknown[]>(`SELECT ${ORG_ROW.sql} AS row FROM orgs WHERE id = $1`, [
      ORG.deleting,
    ]);
    const org = ORG_ROW.decode(deleting!);
    expect(org.finalizers).toEqual([
      'molecule.dev/securitygroup',
      'a,b',
      'quote"back\\slash',
      'NULL',
      '',
      ' {braces} ',
    ]);
    expect(org.deletionRequestedAt).toEqual(new Date('2024-05-01T10:00:00.500Z'));
    expect(org.purgedAt).toBeNull();
    const rows = await rawRows<unknown[]>(
      `SELECT ${STATUS_ROW.sql} AS row FROM reconcile_status WHERE owner_id = $1`,
      [ORG.plain],
    );
    const status = Object.fromEntries(rows.map(STATUS_ROW.decode).map((s) => [s.controller, s]));
    expect(status.securitygroup!.pending).toBeNull();
    expect(status.securitygroup!.lastError).toBeNull();
    expect(status.securitygroup!.externalIds).toEqual({ groupId: 'sg-1', nested: { a: [1, 2.5, null] } });
    expect(status.secret!.pending).toEqual({ token: 't-1', startedAt: '2024-03-01T00:00:00.000Z' });
    expect(status.secret!.attempts).toBe(3);
    expect(status.tunnel!.externalIds).toBeNull();
    expect(status.tunnel!.state).toEqual({ a: 1 });
    expect(status.tunnel!.pending).toBe(123);
  });
});

describe('DesiredSnapshot.load', () => {
  it('holds exactly the rows drizzle reads for the batch', async () => {
    await expectSnapshotMatchesDrizzle(tdb.database, BATCH);
  });

  it('leaves purged workspaces and orgs outside the batch out, and keeps creation order', async () => {
    const snap = await DesiredSnapshot.load(tdb.database, BATCH);
    expect(snap.workspacesOf(ORG.plain).map((w) => w.id)).toEqual([WS.first, WS.tiedLow, WS.tiedHigh]);
    expect(snap.workspace(WS.purged)).toBeUndefined();
    expect(snap.statusOf(WS.purged)).toEqual([]);
    expect(snap.covers(ORG.outside)).toBe(false);
    expect(snap.workspace(WS.outside)).toBeUndefined();
    expect(snap.statusOf(ORG.outside)).toEqual([]);
    // A purged org in the batch is held as it is (the reconciler finds it purged).
    expect(snap.org(ORG.purged)?.purgedAt).toEqual(new Date('2024-04-02T00:00:00.123Z'));
    expect(snap.workspacesOf(ORG.bare)).toEqual([]);
    expect(snap.statusOf(ORG.bare)).toEqual([]);
    expect(byController(snap.statusOf(ORG.plain)).map((s) => s.controller)).toEqual([
      'secret',
      'securitygroup',
      'tunnel',
    ]);
    expect(byController(snap.statusOf(WS.first)).map((s) => [s.controller, s.ownerKind])).toEqual([
      ['ec2', 'workspace'],
      ['securitygroup', 'workspace'],
    ]);
    expect(snap.workspace(WS.deleting)?.deletionRequestedAt).toEqual(new Date('2024-05-01T10:00:00.500Z'));
  });

  it('reads nothing for an empty batch, and ids that match no row', async () => {
    const empty = await DesiredSnapshot.load(tdb.database, []);
    expect(empty.covers(ORG.plain)).toBe(false);
    const unknown = '00000000-0000-4000-8000-0000000000ff';
    const snap = await expectSnapshotMatchesDrizzle(tdb.database, [unknown, ORG.outside]);
    expect(snap.covers(unknown)).toBe(false);
    expect(snap.workspacesOf(ORG.outside).map((w) => w.id)).toEqual([WS.outside]);
  });

  it("loadOwner holds the rows of one owner's org, as load does for that org", async () => {
    const asBatch = await DesiredSnapshot.load(tdb.database, [ORG.plain]);
    const viaOrg = await DesiredSnapshot.loadOwner(tdb.database, { kind: 'org', id: ORG.plain });
    const viaWorkspace = await DesiredSnapshot.loadOwner(tdb.database, { kind: 'workspace', id: WS.tiedLow });
    for (const snap of [viaOrg, viaWorkspace]) {
      expect(snap.org(ORG.plain)).toStrictEqual(asBatch.org(ORG.plain));
      expect(snap.workspacesOf(ORG.plain)).toStrictEqual(asBatch.workspacesOf(ORG.plain));
      for (const id of [ORG.plain, WS.first, WS.tiedLow, WS.tiedHigh])
        expect(byController(snap.statusOf(id))).toStrictEqual(byController(asBatch.statusOf(id)));
      expect(snap.covers(ORG.deleting)).toBe(false);
    }
    // A purged workspace, or an unknown owner, reads as nothing.
    const purged = await DesiredSnapshot.loadOwner(tdb.database, { kind: 'workspace', id: WS.purged });
    expect(purged.workspace(WS.purged)).toBeUndefined();
    const unknown = '00000000-0000-4000-8000-0000000000ff';
    for (const kind of ['org', 'workspace'] as const) {
      const snap = await DesiredSnapshot.loadOwner(tdb.database, { kind, id: unknown });
      expect(snap.covers(unknown)).toBe(false);
      expect(snap.workspace(unknown)).toBeUndefined();
    }
  });

  it('holds the same rows when the session time zone is not UTC', async () => {
    const zone = 'Asia/Kathmandu'; // +05:45: minutes in the offset
    let database = tdb.database;
    let name: string | undefined;
    if (tdb.url) {
      // Set for the database: every new connection of a new handle picks it up.
      [{ name }] = (await tdb.database.query<{ name: string }>('SELECT current_database() AS name')) as [
        { name: string },
      ];
      await tdb.database.query(`ALTER DATABASE ${name} SET TimeZone = '${zone}'`);
      database = await tdb.open();
    } else {
      await database.query(`SET TIME ZONE '${zone}'`);
    }
    try {
      const [{ at }] = (await database.query<{ at: string }>(`SELECT now()::text AS at`)) as [{ at: string }];
      expect(at.endsWith('+05:45')).toBe(true);
      await expectSnapshotMatchesDrizzle(database, BATCH);
    } finally {
      if (name) await tdb.database.query(`ALTER DATABASE ${name} RESET TimeZone`);
      else await database.query('RESET TIME ZONE');
    }
  });
});

describe('digests of a batch of orgs’ rows', () => {
  it('are those of the snapshot loaded, change with any write to the batch, and only to it', async () => {
    const db = tdb.database;
    const OTHER = [ORG.outside];
    const digests = () => DesiredSnapshot.rowsDigests(db, [BATCH, OTHER]);
    const [batch, other] = await digests();
    expect(batch).toBe((await DesiredSnapshot.load(db, BATCH)).digest);
    expect(other).toBe((await DesiredSnapshot.load(db, OTHER)).digest);
    expect(batch).not.toBe(other);
    expect(await DesiredSnapshot.rowsDigests(db, [])).toEqual([]);
    // Unchanged while nothing is written, whatever the order of the ids.
    expect(await DesiredSnapshot.rowsDigests(db, [[...BATCH].reverse(), OTHER])).toEqual([batch, other]);

    const writes = [
      [`UPDATE orgs SET name = name || '.' WHERE id = $1`, ORG.bare],
      // A purged workspace's row counts too (a reconcile never reads it, but it is the org's).
      [`UPDATE workspaces SET name = name || '.' WHERE id = $1`, WS.purged],
      [`UPDATE reconcile_status SET message = message || '.' WHERE owner_id = $1`, WS.first],
    ] as const;
    let last = batch;
    for (const [sql, id] of writes) {
      await db.query(sql, [id]);
      const [now, otherNow] = await digests();
      expect(now).not.toBe(last);
      expect(otherNow).toBe(other);
      expect(now).toBe((await DesiredSnapshot.load(db, BATCH)).digest);
      last = now!;
    }
  });
});
