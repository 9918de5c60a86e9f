import { getTableColumns, type SQL, sql } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import { FencedOutError } from '../runtime/errors.js';
import type { Db } from './client.js';

/**
 * Fencing (DESIGN §12): a leader's writes carry the lease term they were decided in. Each one
 * commits only if, in the same statement, the lease row is found still held by this holder at
 * that epoch (and not expired, in database time), locked FOR SHARE so the lease cannot change
 * hands until the write commits. A replica that paused past its lease and resumes — still
 * believing it leads — finds a newer epoch or another holder, writes nothing and gets a
 * {@link FencedOutError}. Writes that are a transaction of several statements lock the row
 * first ({@link lockFence}); the lock holds until they commit.
 */
export interface Fence {
  lease: string;
  holder: string;
  epoch: number;
}

/** Says which term a write belongs to; throws {@link NotLeaderError} when this replica does not lead. */
export type FenceProvider = () => Fence;

/** `fence AS (…)`: one row while the lease is held at the fence's epoch, none otherwise. */
export function fenceCte(f: Fence): SQL {
  return sql`fence AS (SELECT 1 FROM leases WHERE name = ${f.lease} AND holder = ${f.holder} AND epoch = ${f.epoch} AND expires_at > now() FOR SHARE)`;
}

/** True while the fence holds, as a condition (use inside a statement that has {@link fenceCte}). */
export const fenceHolds = sql`EXISTS (SELECT 1 FROM fence)`;

/** Inside a transaction: locks the lease row if still held at the epoch, else throws FencedOutError. */
export async function lockFence(tx: Pick<Db, 'execute'>, f: Fence): Promise<void> {
  const rows = rowsOf(
    await tx.execute(
      sql`SELECT 1 FROM leases WHERE name = ${f.lease} AND holder = ${f.holder} AND epoch = ${f.epoch} AND expires_at > now() FOR SHARE`,
    ),
  );
  if (rows.length === 0) throw new FencedOutError(f.lease);
}

/**
 * Still held with at least `marginMs` to spare (database time): checked right before a cloud
 * mutation leaves, which is then sent within milliseconds.
 */
export async function fenceValid(db: Pick<Db, 'execute'>, f: Fence, marginMs: number): Promise<boolean> {
  const rows = rowsOf(
    await db.execute(
      sql`SELECT 1 FROM leases WHERE name = ${f.lease} AND holder = ${f.holder} AND epoch = ${f.epoch} AND expires_at > now() + make_interval(secs => ${marginMs / 1000}::double precision)`,
    ),
  );
  return rows.length > 0;
}

type Row = Record<string, unknown>;

/** A value cast to its column's type (INSERT … SELECT gives parameters no type of their own). */
function typed(column: PgColumn, value: unknown): SQL {
  if (value === null || value === undefined) return sql`NULL::${sql.raw(column.getSQLType())}`;
  return sql`${sql.param(value, column)}::${sql.raw(column.getSQLType())}`;
}

/**
 * `INSERT INTO table (…) SELECT … FROM fence` for one or more rows (same keys in each), with an
 * optional `ON CONFLICT (target) DO UPDATE` of `update` columns (plus extra assignments). Throws
 * FencedOutError when the fence does not hold; returns the rows written otherwise.
 */
export async function fencedInsert(
  db: Pick<Db, 'execute'>,
  f: Fence,
  table: PgTable,
  rows: Row[],
  upsert?: { target: PgColumn[]; update: string[]; also?: SQL },
): Promise<number> {
  if (rows.length === 0) return 0;
  // One statement per shape: VALUES rows must name the same columns.
  const shapes = new Map<string, Row[]>();
  for (const r of rows) {
    const shape = Object.keys(r)
      .filter((k) => r[k] !== undefined)
      .sort()
      .join(',');
    shapes.set(shape, [...(shapes.get(shape) ?? []), r]);
  }
  if (shapes.size > 1) {
    let n = 0;
    for (const group of shapes.values()) n += await fencedInsert(db, f, table, group, upsert);
    return n;
  }
  const columns = getTableColumns(table) as Record<string, PgColumn>;
  const keys = Object.keys(rows[0]!).filter((k) => columns[k] !== undefined && rows[0]![k] !== undefined);
  const names = sql.join(
    keys.map((k) => sql.identifier(columns[k]!.name)),
    sql`, `,
  );
  const values = sql.join(
    rows.map(
      (r) =>
        sql`(${sql.join(
          keys.map((k) => typed(columns[k]!, r[k])),
          sql`, `,
        )})`,
    ),
    sql`, `,
  );
  const aliases = sql.join(
    keys.map((k) => sql.identifier(columns[k]!.name)),
    sql`, `,
  );
  let conflict = sql``;
  if (upsert) {
    const sets = upsert.update
      .filter((k) => columns[k] !== undefined)
      .map((k) => sql`${sql.identifier(columns[k]!.name)} = EXCLUDED.${sql.identifier(columns[k]!.name)}`);
    if (upsert.also) sets.push(upsert.also);
    conflict = sql` ON CONFLICT (${sql.join(
      upsert.target.map((c) => sql.identifier(c.name)),
      sql`, `,
    )}) DO ${sets.length > 0 ? sql`UPDATE SET ${sql.join(sets, sql`, `)}` : sql`NOTHING`}`;
  }
  const result = await db.execute(
    sql`WITH ${fenceCte(f)} INSERT INTO ${table} (${names}) SELECT v.* FROM (VALUES ${values}) AS v (${aliases}), fence${conflict} RETURNING 1`,
  );
  const written = rowsOf(result).length;
  if (written === 0) throw new FencedOutError(f.lease);
  return written;
}

/**
 * Runs an UPDATE / DELETE that embeds {@link fenceHolds} in its WHERE, with the fence CTE in
 * front: `write` gets the condition to embed and returns the statement (with RETURNING).
 * Throws FencedOutError when the fence does not hold; returns the statement's rows otherwise.
 */
export async function fencedWrite<T = Row>(
  db: Pick<Db, 'execute'>,
  f: Fence,
  write: (holds: SQL) => SQL,
): Promise<T[]> {
  const result = await db.execute(
    sql`WITH ${fenceCte(f)}, w AS (${write(fenceHolds)}) SELECT (SELECT count(*) FROM fence)::int AS "__held", w.* FROM (SELECT 1) AS one LEFT JOIN w ON true`,
  );
  const rows = rowsOf(result) as (T & { __held: number })[];
  if (!rows[0] || Number(rows[0].__held) === 0) throw new FencedOutError(f.lease);
  // The LEFT JOIN yields one all-null row when the write touched nothing.
  return rows
    .filter((r) => Object.entries(r).some(([k, v]) => k !== '__held' && v !== null))
    .map(({ __held: _, ...rest }) => rest as T);
}

export const rowsOf = (result: unknown): Row[] => (result as { rows?: Row[] }).rows ?? (result as Row[]);
