import { redeploy } from '../../controllers/index.js';
import { loadConfig } from '../config.js';
import { PinsCache } from '../db/pins.js';
import { RolloutRepository } from '../db/rollouts.js';
import { loadRollouts, type RolloutsReport } from '../runtime/rollouts.js';
import { OUTPUT_OPTIONS, parseFlags, wantsJson } from './args.js';
import { openForCommand } from './database.js';
import { formatTable } from './table.js';
import { type CliContext, UsageError } from './types.js';
import { showOrWatch } from './watch.js';

/** `molecule-operator rollout status [-o json] [--watch]`: image rollouts, from the database. */
export async function run(argv: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'status') throw new UsageError(sub ? `unknown rollout command: ${sub}` : 'missing: status');
  const flags = parseFlags(rest, { ...OUTPUT_OPTIONS, watch: { type: 'boolean' } });
  const json = wantsJson(flags);
  const config = loadConfig(ctx.env);
  // A live demo's folder and a database without the schema are refused as by every command.
  const database = await openForCommand(config);
  const repo = new RolloutRepository(database.db);
  const pins = new PinsCache(database.db, 0);
  const render = async () => {
    const report = await loadRollouts(repo, pins, config, Date.now(), redeploy.name);
    return json ? `${JSON.stringify(report, null, 2)}\n` : formatRollouts(report);
  };
  try {
    return await showOrWatch(ctx, !!flags.watch, render);
  } finally {
    await database.close();
  }
}

/** One row per image, then the failed owners with their condition, then the policy. */
export function formatRollouts(report: RolloutsReport): string {
  if (report.rollouts.length === 0) return 'No rollouts: no owner has an image to run yet.\n';
  const table = formatTable(
    ['IMAGE', 'KIND', 'STAGE', 'DONE', 'PENDING', 'IN FLIGHT', 'FAILED', 'STOPPED', 'NOTE'],
    report.rollouts.map((r) => [
      r.image,
      r.imageKind,
      r.stage,
      String(r.counts.done),
      String(r.counts.pending),
      String(r.counts.in_flight),
      String(r.counts.failed),
      String(r.counts.stopped),
      r.paused
        ? `paused after ${r.failures} failures: POST /cp/admin/rollouts/resume`
        : r.soakEndsAt
          ? `soak ends ${r.soakEndsAt}`
          : '',
    ]),
  );
  const failed = report.rollouts.flatMap((r) =>
    r.failed.map((f) => `  ${f.ownerKind} ${f.ownerId} (${r.image}): ${f.reason}: ${f.message}`),
  );
  const p = report.policy;
  return [
    table,
    ...(failed.length > 0 ? ['', 'Failed redeploys:', ...failed] : []),
    '',
    `${report.inFlight} in flight; canary soak ${p.canarySoakSeconds}s, at most ${p.maxInFlight} in flight, pause after ${p.maxFailures} failures`,
    '',
  ].join('\n');
}
