import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { migrationsFolder, openDatabase } from '../src/db/client.js';

/**
 * With DATABASE_URL set (always in CI), build one migrated template database per migration
 * set; each test file then clones it (test/helpers/db.ts). Without it, tests use PGlite.
 */
export default async function setup({ provide }: { provide: (key: string, value: unknown) => void }) {
  const url = process.env.DATABASE_URL || undefined;
  if (!url) {
    if (process.env.CI) throw new Error('CI must run the suite against PostgreSQL: set DATABASE_URL');
    provide('templateDatabase', null);
    return;
  }
  const folder = migrationsFolder();
  const hash = createHash('sha256');
  for (const f of readdirSync(folder).sort())
    if (f.endsWith('.sql')) hash.update(readFileSync(join(folder, f)));
  const name = `molecule_tpl_${hash.digest('hex').slice(0, 12)}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount === 0) {
      const building = `${name}_build_${process.pid}`;
      await admin.query(`DROP DATABASE IF EXISTS ${building}`);
      await admin.query(`CREATE DATABASE ${building}`);
      const db = await openDatabase({ DATABASE_URL: withDatabase(url, building), PGLITE_DIR: '' });
      await db.migrate();
      await db.close();
      try {
        await admin.query(`ALTER DATABASE ${building} RENAME TO ${name}`);
      } catch {
        await admin.query(`DROP DATABASE IF EXISTS ${building}`); // another run won the race
      }
    }
  } finally {
    await admin.end();
  }
  provide('templateDatabase', name);
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
