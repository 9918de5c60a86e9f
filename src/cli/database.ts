import type { Config } from '../config.js';
import { type Database, openDatabase } from '../db/client.js';

export function openConfiguredDatabase(config: Config): Promise<Database> {
  return openDatabase({ DATABASE_URL: config.DATABASE_URL, PGLITE_DIR: config.PGLITE_DIR });
}

/** Where the desired state lives, for people: no user name or password. */
export function describeDatabase(config: Config): string {
  if (!config.DATABASE_URL) return `PGlite ${config.PGLITE_DIR}`;
  try {
    const u = new URL(config.DATABASE_URL);
    return `PostgreSQL ${u.host}${u.pathname}`;
  } catch {
    return 'PostgreSQL';
  }
}

/** True when an error (or its cause) is PostgreSQL's "relation does not exist": migrations have not run. */
export function isMissingTable(error: unknown): boolean {
  for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (code === '42P01' || code === '3F000') return true;
  }
  return false;
}
