import type { CloudOptions } from '../cloud/index.js';
import { loadConfig } from '../config.js';
import type { Database } from '../db/client.js';
import { createLogger } from '../observability/logger.js';
import { createOperator, operatorMetrics } from '../operator.js';
import { parseFlags } from './args.js';
import { openForCommand } from './database.js';
import { formatTable } from './table.js';
import type { CliContext } from './types.js';

/** Exit code when changes are pending, as `terraform plan -detailed-exitcode` does. */
export const PLAN_CHANGES_PENDING = 2;

/** Test seams: a ready database and how to build the cloud clients (simulator credentials). */
export interface PlanOverrides {
  database?: Database;
  cloud?: CloudOptions;
}

export function run(argv: string[], ctx: CliContext): Promise<number> {
  return runPlan(argv, ctx);
}

export async function runPlan(
  argv: string[],
  ctx: CliContext,
  overrides: PlanOverrides = {},
): Promise<number> {
  const flags = parseFlags(argv, { json: { type: 'boolean' } });
  const config = loadConfig(ctx.env);
  const logger = createLogger({ level: 'silent' });
  const database = overrides.database ?? (await openForCommand(config));
  try {
    const operator = createOperator({
      config,
      database,
      logger,
      metrics: operatorMetrics(false),
      ...(overrides.cloud ? { cloud: overrides.cloud } : {}),
    });
    const entries = await operator.plan();
    const pending = entries.filter((e) => e.action !== 'none');
    if (flags.json) {
      ctx.stdout(
        `${JSON.stringify(
          {
            converged: pending.length === 0,
            changes: pending.length,
            actions: entries.map((e) => ({
              ownerKind: e.owner.kind,
              ownerId: e.owner.id,
              org: e.slug,
              controller: e.controller,
              action: e.action,
              detail: e.detail,
              diff: e.diff,
            })),
          },
          null,
          2,
        )}\n`,
      );
    } else if (pending.length === 0) {
      ctx.stdout(`No changes: ${entries.length} resource(s) across all owners are up to date.\n`);
    } else {
      ctx.stdout(
        formatTable(
          ['ORG', 'OWNER', 'CONTROLLER', 'ACTION', 'DETAIL'],
          pending.map((e) => [
            e.slug,
            `${e.owner.kind}/${e.owner.id.slice(0, 8)}`,
            e.controller,
            e.action,
            e.detail,
          ]),
        ),
      );
      ctx.stdout(`\n${pending.length} change(s) pending; nothing was executed.\n`);
    }
    return pending.length === 0 ? 0 : PLAN_CHANGES_PENDING;
  } finally {
    if (!overrides.database) await database.close();
  }
}
