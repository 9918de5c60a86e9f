import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, migrationsFolder, openDatabase } from '../../src/db/client.js';
import { DesiredStateRepository } from '../../src/db/desired.js';
import { withDatabase } from '../global-setup.js';
import { createTestDatabase, type TestDatabase, usingServer } from '../helpers/db.js';
import { snapshotTables } from '../helpers/tables.js';

const TABLES = [
  'ami_pins',
  'leases',
  'orgs',
  'orphans',
  'pin_changes',
  'reconcile_status',
  'rollout_resumes',
  'runtime_image_pins',
  'tenant_resources',
  'workspaces',
];
const journal = JSON.parse(readFileSync(join(migrationsFolder(), 'meta', '_journal.json'), 'utf8')) as {
  entries: { tag: string }[];
};

const tablesOf = async (database: Database) =>
  (
    await database.query<{ name: string }>(
      `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
    )
  ).map((r) => r.name);
const appliedCount = async (database: Database) =>
  (await database.query<{ n: number }>('SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations'))[0]!.n;

/** Applies migrations to an empty database twice: the second run must change nothing. */
async function expectCleanAndIdempotent(database: Database) {
  expect(await tablesOf(database)).toEqual([]);
  await database.migrate();
  expect(await tablesOf(database)).toEqual(TABLES);
  expect(await appliedCount(database)).toBe(journal.entries.length);
  // Some data, so "no-op" also means "keeps rows".
  await new DesiredStateRepository(database.db).createOrg({
    slug: 'survivor',
    name: 'survivor',
    isCanary: false,
  });
  const before = await snapshotTables(database);
  await database.migrate();
  expect(await appliedCount(database)).toBe(journal.entries.length);
  expect(await snapshotTables(database)).toEqual(before);
}

describe('migrations apply cleanly and idempotently', () => {
  it('on PGlite (memory://)', async () => {
    const database = await openDatabase({ PGLITE_DIR: 'memory://' });
    try {
      await expectCleanAndIdempotent(database);
    } finally {
      await database.close();
    }
  });

  // CI always sets DATABASE_URL (test/global-setup.ts refuses to run without it there).
  it.skipIf(!usingServer())('on an empty PostgreSQL database', async () => {
    await withEmptyPostgres(1, ([database]) => expectCleanAndIdempotent(database!));
  });

  it.skipIf(!usingServer())('on PostgreSQL from two replicas starting together', async () => {
    await withEmptyPostgres(2, async ([a, b]) => {
      // The advisory lock serialises them; both succeed and each migration runs once.
      await Promise.all([a!.migrate(), b!.migrate()]);
      expect(await tablesOf(a!)).toEqual(TABLES);
      expect(await appliedCount(a!)).toBe(journal.entries.length);
    });
  });
});

/** A brand-new database on the test server (not the migrated template), with `n` handles on it. */
async function withEmptyPostgres(n: number, fn: (handles: Database[]) => Promise<void>) {
  const serverUrl = process.env.DATABASE_URL!;
  const name = `molecule_mig_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  const handles: Database[] = [];
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    for (let i = 0; i < n; i++) {
      handles.push(await openDatabase({ DATABASE_URL: withDatabase(serverUrl, name), PGLITE_DIR: '' }));
    }
    await fn(handles);
  } finally {
    await Promise.all(handles.map((h) => h.close()));
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

describe('triggers', () => {
  let tdb: TestDatabase;
  let repo: DesiredStateRepository;
  beforeAll(async () => {
    tdb = await createTestDatabase();
    repo = new DesiredStateRepository(tdb.database.db);
  });
  afterAll(async () => {
    await tdb?.drop();
  });

  const generationOf = async (table: 'orgs' | 'workspaces', id: string) =>
    (
      await tdb.database.query<{ generation: number }>(`SELECT generation FROM ${table} WHERE id = $1`, [id])
    )[0]!.generation;

  it('bump generation on spec changes only, never on purge', async () => {
    const org = await repo.createOrg({ slug: 'gen', name: 'gen', isCanary: false });
    const ws = await repo.createWorkspace({ orgId: org.id, name: 'w', runtime: 'hermes', tier: 3 });
    expect([org.generation, ws.generation]).toEqual([1, 1]);

    await repo.setOrgPowerState(org.id, 'stopped');
    expect(await generationOf('orgs', org.id)).toBe(2);
    await repo.setOrgPowerState(org.id, 'stopped'); // same value: not a change
    expect(await generationOf('orgs', org.id)).toBe(2);
    await tdb.database.query(`UPDATE orgs SET name = 'renamed' WHERE id = $1`, [org.id]);
    expect(await generationOf('orgs', org.id)).toBe(3);
    await tdb.database.query(`UPDATE orgs SET finalizers = '{tunnel}' WHERE id = $1`, [org.id]);
    expect(await generationOf('orgs', org.id)).toBe(3);

    await repo.setWorkspaceTier(ws.id, 4);
    expect(await generationOf('workspaces', ws.id)).toBe(2);

    await repo.requestOrgDeletion(org.id);
    expect([await generationOf('orgs', org.id), await generationOf('workspaces', ws.id)]).toEqual([4, 3]);
    await repo.purge({ kind: 'org', id: org.id });
    expect([await generationOf('orgs', org.id), await generationOf('workspaces', ws.id)]).toEqual([4, 3]);
    const [row] = await tdb.database.query<{ purged_at: Date | null }>(
      'SELECT purged_at FROM orgs WHERE id = $1',
      [org.id],
    );
    expect(row!.purged_at).not.toBeNull();
  });

  it('stamp updated_at on every change', async () => {
    const org = await repo.createOrg({ slug: 'stamp', name: 'stamp', isCanary: false });
    await tdb.database.query(`UPDATE orgs SET updated_at = '2000-01-01' WHERE id = $1`, [org.id]);
    await tdb.database.query(`UPDATE orgs SET finalizers = '{x}' WHERE id = $1`, [org.id]);
    const [row] = await tdb.database.query<{ updated_at: Date }>(
      'SELECT updated_at FROM orgs WHERE id = $1',
      [org.id],
    );
    expect(row!.updated_at.getTime()).toBeGreaterThan(Date.parse('2001-01-01'));
  });

  it('NOTIFY molecule_desired on inserts and updates of orgs and workspaces', async () => {
    const messages: Record<string, string>[] = [];
    const sub = await tdb.database.listen('molecule_desired', {
      onMessage: (payload) => messages.push(JSON.parse(payload)),
    });
    try {
      const org = await repo.createOrg({ slug: 'notify', name: 'notify', isCanary: false });
      const ws = await repo.createWorkspace({ orgId: org.id, name: 'w', runtime: 'hermes', tier: 3 });
      await repo.setWorkspacePowerState(ws.id, 'stopped');
      const want = [
        { kind: 'org', id: org.id, orgId: org.id, op: 'INSERT' },
        { kind: 'workspace', id: ws.id, orgId: org.id, op: 'INSERT' },
        { kind: 'workspace', id: ws.id, orgId: org.id, op: 'UPDATE' },
      ];
      const deadline = Date.now() + 5_000;
      const mine = () => messages.filter((m) => m.orgId === org.id);
      while (mine().length < want.length && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      expect(mine()).toEqual(want);
    } finally {
      await sub.close();
    }
  });
});
