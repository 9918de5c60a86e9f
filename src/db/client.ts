import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';
import * as schema from '../../schema/index.js';

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

/** A notification listener; `close` stops it. */
export interface Subscription {
  close(): Promise<void>;
}

export interface ListenHandlers {
  onMessage(payload: string): void;
  /** Called after the listening connection was lost and re-established: anything may have been missed. */
  onReconnect?(): void;
  /** Called when the listening connection is lost (until it is back). */
  onDisconnect?(error: Error): void;
}

/** The desired-state store: a drizzle handle plus the few raw capabilities drizzle does not cover. */
export interface Database {
  readonly db: Db;
  readonly kind: 'postgres' | 'pglite';
  /** Runs raw SQL with positional parameters. */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  listen(channel: string, handlers: ListenHandlers): Promise<Subscription>;
  migrate(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  DATABASE_URL?: string | undefined;
  PGLITE_DIR: string;
  /** Pool size for PostgreSQL. */
  poolSize?: number;
  /** Delay before re-establishing a lost LISTEN connection. */
  reconnectDelayMs?: number;
}

export function migrationsFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'drizzle');
    if (existsSync(join(candidate, 'meta', '_journal.json'))) return candidate;
    dir = resolve(dir, '..');
  }
  throw new Error('cannot find the drizzle/ migrations folder');
}

/** How many migrations drizzle's migrator has recorded in `database`: 0 before the first run. */
export async function appliedMigrationCount(database: Database): Promise<number> {
  const [table] = await database.query<{ t: string | null }>(
    "SELECT to_regclass('drizzle.__drizzle_migrations')::text AS t",
  );
  if (!table?.t) return 0;
  const [row] = await database.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations',
  );
  return row?.n ?? 0;
}

// Serialises migrations across replicas that start together.
const MIGRATION_LOCK = 7_114_311_020;

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.DATABASE_URL ? openPostgres(options.DATABASE_URL, options) : openPglite(options.PGLITE_DIR);
}

async function openPostgres(url: string, options: DatabaseOptions): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // A dropped idle connection must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  // Nor one dropped while checked out (a transaction in progress): the pool only listens while a
  // connection is idle, and an 'error' event nobody listens to ends the process. The statement
  // or transaction in flight fails on its own, and the pool discards the broken connection.
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = drizzlePg({ client: pool, schema }) as unknown as Db;
  const listeners = new Set<Subscription>();

  return {
    db,
    kind: 'postgres',
    async query<T>(text: string, params: unknown[] = []) {
      const res = await pool.query(text, params);
      return res.rows as T[];
    },
    async listen(channel, handlers) {
      const sub = listenPostgres(url, channel, handlers, options.reconnectDelayMs ?? 1_000);
      await sub.ready;
      listeners.add(sub);
      return {
        close: async () => {
          listeners.delete(sub);
          await sub.close();
        },
      };
    },
    async migrate() {
      const client = await pool.connect();
      try {
        await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
        try {
          await migratePg(drizzlePg({ client, schema }), { migrationsFolder: migrationsFolder() });
        } finally {
          await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
        }
      } finally {
        client.release();
      }
    },
    async ping() {
      await pool.query('SELECT 1');
    },
    async close() {
      await Promise.all([...listeners].map((l) => l.close()));
      await pool.end();
    },
  };
}

function listenPostgres(url: string, channel: string, handlers: ListenHandlers, reconnectDelayMs: number) {
  let closed = false;
  let client: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  let connectedOnce = false;
  let resolveReady!: () => void;
  let rejectReady!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });

  const scheduleReconnect = (error: Error) => {
    if (closed || timer) return;
    handlers.onDisconnect?.(error);
    timer = setTimeout(() => {
      timer = undefined;
      void connect();
    }, reconnectDelayMs);
  };

  const connect = async () => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    client = c;
    c.on('error', (e) => {
      c.removeAllListeners('end');
      void c.end().catch(() => {});
      scheduleReconnect(e);
    });
    c.on('end', () => scheduleReconnect(new Error('listen connection ended')));
    c.on('notification', (n) => {
      if (n.channel === channel) handlers.onMessage(n.payload ?? '');
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      if (closed) {
        await c.end().catch(() => {});
        return;
      }
      if (connectedOnce) handlers.onReconnect?.();
      else resolveReady();
      connectedOnce = true;
    } catch (e) {
      c.removeAllListeners('end');
      await c.end().catch(() => {});
      if (!connectedOnce) {
        rejectReady(e as Error);
        return;
      }
      scheduleReconnect(e as Error);
    }
  };
  void connect();

  return {
    ready,
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      const c = client;
      if (c) {
        c.removeAllListeners('end');
        await c.end().catch(() => {});
      }
    },
  };
}

async function openPglite(dir: string): Promise<Database> {
  const inMemory = dir === 'memory://' || dir === ':memory:';
  if (!inMemory) mkdirSync(dir, { recursive: true });
  const client = new PGlite(inMemory ? undefined : dir);
  await client.waitReady;
  const db = drizzlePglite({ client, schema }) as unknown as Db;
  return {
    db,
    kind: 'pglite',
    async query<T>(text: string, params: unknown[] = []) {
      const res = await client.query(text, params);
      return res.rows as T[];
    },
    async listen(channel, handlers) {
      const unsubscribe = await client.listen(channel, (payload) => handlers.onMessage(payload));
      return { close: () => unsubscribe() };
    },
    async migrate() {
      await migratePglite(drizzlePglite({ client, schema }), { migrationsFolder: migrationsFolder() });
    },
    async ping() {
      await client.query('SELECT 1');
    },
    async close() {
      await client.close();
    },
  };
}
