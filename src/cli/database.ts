import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../config.js';
import { appliedMigrationCount, type Database, migrationsFolder, openDatabase } from '../db/client.js';
import { liveDemo, ownedMessage } from './lock.js';
import { CliError } from './types.js';

export function openConfiguredDatabase(config: Config): Promise<Database> {
  return openDatabase({ DATABASE_URL: config.DATABASE_URL, PGLITE_DIR: config.PGLITE_DIR });
}

export interface OpenOptions {
  /** Apply pending migrations first (`--migrate`, `migrate`). */
  migrate?: boolean;
  /** Skip the schema check (`migrate` reports on its own). */
  anySchema?: boolean;
  /** The demo opens the folder it has locked itself. */
  owner?: boolean;
}

/**
 * Opens the configured database for a command, or says plainly why not: a live demo owns the
 * PGlite folder, the server cannot be reached or refuses us, or the schema is behind the code.
 * Every command starts here, so none of them fails later with 500s or `relation … does not exist`.
 */
export async function openForCommand(config: Config, options: OpenOptions = {}): Promise<Database> {
  if (!config.DATABASE_URL && !options.owner) {
    const owner = liveDemo(dirname(resolve(config.PGLITE_DIR)));
    if (owner) throw new CliError(ownedMessage(owner));
  }
  let database: Database | undefined;
  try {
    database = await openConfiguredDatabase(config);
    if (options.migrate) await database.migrate();
    if (!options.anySchema) {
      const applied = await appliedMigrationCount(database);
      const known = journalTags().length;
      if (applied < known) {
        throw new CliError(
          applied === 0
            ? `${describeDatabase(config)} has no schema yet`
            : `${describeDatabase(config)} is ${known - applied} migration${known - applied === 1 ? '' : 's'} behind this version`,
          'run `molecule-operator migrate` first (run and api also take --migrate)',
        );
      }
    } else {
      await database.ping();
    }
    return database;
  } catch (e) {
    await database?.close().catch(() => {});
    throw explainDatabaseError(e, config);
  }
}

export function journalTags(): string[] {
  const journal = JSON.parse(readFileSync(join(migrationsFolder(), 'meta', '_journal.json'), 'utf8')) as {
    entries: { tag: string }[];
  };
  return journal.entries.map((e) => e.tag);
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

/** The innermost message of an error chain: the driver's words, not "Failed query: select …". */
export function rootCause(error: unknown): { message: string; code?: string } {
  let e = error as { message?: string; code?: unknown; cause?: unknown; errors?: unknown[] };
  // AggregateError (pg tries every address of a host name): the first is as good as any.
  for (let i = 0; i < 10; i++) {
    const next = e.cause ?? (Array.isArray(e.errors) ? e.errors[0] : undefined);
    if (!next || typeof next !== 'object') break;
    e = next as typeof e;
  }
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = String(e.message ?? e).split('\n')[0]!;
  return { message: message || (code ?? 'unknown error'), ...(code ? { code } : {}) };
}

/** A database failure as a {@link CliError}: its cause and what to check. */
export function explainDatabaseError(error: unknown, config: Config): unknown {
  if (error instanceof CliError) return error;
  const { message, code } = rootCause(error);
  const where = describeDatabase(config);
  const hint = hintFor(code, message, config);
  return new CliError(
    `cannot use ${where}: ${message}${code && !message.includes(code) ? ` (${code})` : ''}`,
    hint,
  );
}

function hintFor(code: string | undefined, message: string, config: Config): string | undefined {
  const url = (() => {
    try {
      return config.DATABASE_URL ? new URL(config.DATABASE_URL) : undefined;
    } catch {
      return undefined;
    }
  })();
  const name = url?.pathname.replace(/^\//, '') || 'postgres';
  switch (code) {
    case '3D000':
      return `the database "${name}" does not exist on ${url?.host}: create it (createdb ${name}, or CREATE DATABASE ${name}) or fix DATABASE_URL`;
    case '28P01':
    case '28000':
      return 'the server refused the user or password: check the credentials in DATABASE_URL (or DATABASE_URL_FILE)';
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
      return `nothing answers at ${url?.host}: is PostgreSQL running there, and is the host and port in DATABASE_URL right?`;
  }
  if (/timeout|terminated unexpectedly/i.test(message) && url)
    return `no answer from ${url.host}: is PostgreSQL running there, and is the host and port in DATABASE_URL right?`;
  if (!config.DATABASE_URL && /abort/i.test(message))
    return `PGlite could not open ${config.PGLITE_DIR}: is another process using it? (set DATABASE_URL to use PostgreSQL instead)`;
  return undefined;
}
