import type { Database } from '../../src/db/client.js';

/**
 * Row count and content hash of every table in the public schema, new tables included:
 * equal snapshots mean nothing was inserted, updated or deleted.
 */
export async function snapshotTables(
  database: Database,
): Promise<Record<string, { rows: number; hash: string }>> {
  const tables = await database.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
     WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const snapshot: Record<string, { rows: number; hash: string }> = {};
  for (const { name } of tables) {
    const quoted = `"${name.replace(/"/g, '""')}"`;
    const [row] = await database.query<{ rows: number; hash: string }>(
      `SELECT count(*)::int AS rows, coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') AS hash FROM ${quoted} t`,
    );
    snapshot[name] = row!;
  }
  return snapshot;
}
