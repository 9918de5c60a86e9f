import pg from 'pg';
import { type Database, openDatabase } from '../../../src/db/client.js';

/** The PostgreSQL server benchmarks create their databases on. */
export const serverUrl = (): string => process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export interface BenchDatabase {
  name: string;
  url: string;
  database: Database;
  /** Another independent handle (e.g. for a child process, or a separate pool). */
  open(poolSize?: number): Promise<Database>;
  /** Transactions committed in this database so far (pg_stat_database; flushed within ~1 s). */
  commits(): Promise<number>;
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: serverUrl() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A fresh, migrated database of the bench's own on the server; `drop()` removes it. */
export async function createBenchDatabase(
  prefix: string,
  options: { poolSize?: number; keep?: boolean } = {},
): Promise<BenchDatabase> {
  const name = `bench_${prefix}_${process.pid}`;
  await admin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  });
  const url = withDatabase(serverUrl(), name);
  const handles: Database[] = [];
  const open = async (poolSize = options.poolSize ?? 20) => {
    const d = await openDatabase({ DATABASE_URL: url, PGLITE_DIR: '', poolSize });
    handles.push(d);
    return d;
  };
  const database = await open();
  await database.migrate();
  return {
    name,
    url,
    database,
    open,
    async commits() {
      const [row] = await database.query<{ n: string }>(
        'SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = $1',
        [name],
      );
      return Number(row?.n ?? 0);
    },
    async drop() {
      await Promise.all(handles.map((h) => h.close().catch(() => {})));
      if (options.keep) return;
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/** Waits until pg_stat_database has flushed the counters of finished transactions. */
export async function settleStats(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1_100));
}
