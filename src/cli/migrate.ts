import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../config.js';
import { appliedMigrationCount as appliedCount, migrationsFolder } from '../db/client.js';
import { parseFlags } from './args.js';
import { describeDatabase, openConfiguredDatabase } from './database.js';
import type { CliContext } from './types.js';

export async function run(argv: string[], ctx: CliContext): Promise<number> {
  parseFlags(argv, {});
  const config = loadConfig(ctx.env);
  const database = await openConfiguredDatabase(config);
  try {
    const before = await appliedCount(database);
    await database.migrate();
    const after = await appliedCount(database);
    const tags = journalTags();
    ctx.stdout(`database: ${describeDatabase(config)}\n`);
    if (after === before) {
      ctx.stdout(`up to date: ${after} migration${after === 1 ? '' : 's'} applied, nothing to do\n`);
    } else {
      const applied = tags.slice(before, after);
      ctx.stdout(
        `applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}\n`,
      );
    }
    return 0;
  } finally {
    await database.close();
  }
}

function journalTags(): string[] {
  const journal = JSON.parse(readFileSync(join(migrationsFolder(), 'meta', '_journal.json'), 'utf8')) as {
    entries: { tag: string }[];
  };
  return journal.entries.map((e) => e.tag);
}
