import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { type Database, openDatabase } from '../../src/db/client.js';
import { withDatabase } from '../global-setup.js';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string | null;
  }
}

export interface TestDatabase {
  database: Database;
  /** Connection string of this file's own database, or undefined on PGlite. */
  url: string | undefined;
  /** Opens another independent handle on the same database (a second replica). */
  open(): Promise<Database>;
  drop(): Promise<void>;
}

/** True when tests run against a PostgreSQL server (always in CI). */
export const usingServer = (): boolean => inject('templateDatabase') !== null;

/**
 * A fresh, migrated database for one test file: a clone of the migrated template on the
 * PostgreSQL server, or an in-memory PGlite when no server is configured.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const template = inject('templateDatabase');
  const serverUrl = process.env.DATABASE_URL;
  if (!template || !serverUrl) {
    const database = await openDatabase({ PGLITE_DIR: 'memory://' });
    await database.migrate();
    return {
      database,
      url: undefined,
      open: async () => database,
      drop: () => database.close(),
    };
  }
  const name = `molecule_t_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
        break;
      } catch (e) {
        // Parallel clones of one template can collide briefly.
        if (attempt >= 20) throw e;
        await new Promise((r) => setTimeout(r, 100 + attempt * 50));
      }
    }
  } finally {
    await admin.end();
  }
  const url = withDatabase(serverUrl, name);
  const handles: Database[] = [];
  const open = async () => {
    const d = await openDatabase({ DATABASE_URL: url, PGLITE_DIR: '', reconnectDelayMs: 100 });
    handles.push(d);
    return d;
  };
  const database = await open();
  return {
    database,
    url,
    open,
    async drop() {
      await Promise.all(handles.map((h) => h.close().catch(() => {})));
      const a = new pg.Client({ connectionString: serverUrl });
      await a.connect();
      try {
        await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}
