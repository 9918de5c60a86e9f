import { dirname, resolve } from 'node:path';
import type { CloudOptions } from '../cloud/index.js';
import { loadConfig } from '../config.js';
import type { Database } from '../db/client.js';
import { createLogger } from '../observability/logger.js';
import { createOperator, type Operator, operatorMetrics, type PlanEntry } from '../operator.js';
import { OUTPUT_OPTIONS, parseFlags, wantsJson } from './args.js';
import { describeDatabase, openForCommand } from './database.js';
import { askDemo, type DemoLock, liveDemo } from './lock.js';
import { formatTable } from './table.js';
import { type CliContext, CliError } from './types.js';

/** Exit code when changes are pending, as `terraform plan -detailed-exitcode` does. */
export const PLAN_CHANGES_PENDING = 2;

/** Test seams: a ready database and how to build the cloud clients (simulator credentials). */
export interface PlanOverrides {
  database?: Database;
  cloud?: CloudOptions;
}

/** What was planned against what: the environment, the targets, the controllers that are off. */
export interface PlanReport {
  env: string;
  database: string;
  targets: { name: string; region: string; roleArn?: string }[];
  /** Controllers that do not run, and why: their resources are not planned. */
  off: { controller: string; why: string }[];
  entries: PlanEntry[];
}

export function run(argv: string[], ctx: CliContext): Promise<number> {
  return runPlan(argv, ctx);
}

export async function planReport(operator: Operator, database: string, org?: string): Promise<PlanReport> {
  const all = await operator.plan();
  const entries = org ? all.filter((e) => e.slug === org) : all;
  // Every live org has entries (one per org controller): none means no such org.
  if (org && entries.length === 0)
    throw new CliError(
      `no live org has the slug ${JSON.stringify(org)}`,
      'molecule-operator status lists them all',
    );
  return {
    env: operator.config.MOLECULE_ENV,
    database,
    targets: operator.targets.all.map((t) => ({
      name: t.name,
      region: t.region,
      ...(t.roleArn ? { roleArn: t.roleArn } : {}),
    })),
    off: [...operator.disabled].map(([controller, why]) => ({ controller, why })),
    entries,
  };
}

export async function runPlan(
  argv: string[],
  ctx: CliContext,
  overrides: PlanOverrides = {},
): Promise<number> {
  const flags = parseFlags(argv, { ...OUTPUT_OPTIONS, org: { type: 'string' } });
  const json = wantsJson(flags);
  const config = loadConfig(ctx.env);
  // A live demo owns its embedded database: ask it to plan instead of opening the folder again.
  const demo =
    !config.DATABASE_URL && !overrides.database ? liveDemo(dirname(resolve(config.PGLITE_DIR))) : undefined;
  if (demo)
    return render(
      await planFromDemo(demo, ctx, flags.org ? `?org=${encodeURIComponent(flags.org)}` : ''),
      json,
      ctx,
    );
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
    return render(await planReport(operator, describeDatabase(config), flags.org), json, ctx);
  } finally {
    if (!overrides.database) await database.close();
  }
}

async function planFromDemo(demo: DemoLock, ctx: CliContext, query: string): Promise<PlanReport> {
  ctx.stderr(`molecule-operator plan: asking the demo (pid ${demo.pid}) that owns ${demo.dataDir}\n`);
  return askDemo<PlanReport>(demo, `/plan${query}`);
}

function render(report: PlanReport, json: boolean, ctx: CliContext): number {
  const { entries } = report;
  const pending = entries.filter((e) => e.action !== 'none');
  if (json) {
    ctx.stdout(
      `${JSON.stringify(
        {
          converged: pending.length === 0,
          changes: pending.length,
          env: report.env,
          database: report.database,
          targets: report.targets,
          off: report.off,
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
    return pending.length === 0 ? 0 : PLAN_CHANGES_PENDING;
  }
  ctx.stdout(formatHeader(report));
  if (pending.length === 0) {
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
}

/** Which environment and accounts the plan is for: a plan against the wrong MOLECULE_ENV plans creates for everything. */
export function formatHeader(report: PlanReport): string {
  const targets = report.targets
    .map((t) => `${t.name} (${t.region}${t.roleArn ? `, role ${t.roleArn}` : ''})`)
    .join(', ');
  const off = report.off.length ? report.off.map((o) => `${o.controller} (${o.why})`).join(', ') : 'none';
  return `Env:              MOLECULE_ENV=${report.env}, ${report.database}\nTargets:          ${targets}\nControllers off:  ${off}\n\n`;
}
