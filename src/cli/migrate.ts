import { loadConfig } from '../config.js';
import { appliedMigrationCount } from '../db/client.js';
import { parseFlags } from './args.js';
import { describeDatabase, explainDatabaseError, journalTags, openForCommand } from './database.js';
import type { CliContext } from './types.js';

export async function run(argv: string[], ctx: CliContext): Promise<number> {
  parseFlags(argv, {});
  const config = loadConfig(ctx.env);
  const database = await openForCommand(config, { anySchema: true });
  try {
    const before = await appliedMigrationCount(database);
    await database.migrate().catch((e) => {
      throw explainDatabaseError(e, config);
    });
    const after = await appliedMigrationCount(database);
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
