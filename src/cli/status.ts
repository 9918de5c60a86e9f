import { dirname, resolve } from 'node:path';
import { loadOrgViews, type OrgView } from '../api/present.js';
import { loadConfig } from '../config.js';
import { DesiredStateRepository, type OrgPageCursor } from '../db/desired.js';
import { effectiveTier } from '../provisioning/tiers.js';
import { OUTPUT_OPTIONS, parseCommand, wantsJson } from './args.js';
import { openForCommand } from './database.js';
import { askDemo, liveDemo } from './lock.js';
import { formatTable } from './table.js';
import { type CliContext, CliError } from './types.js';
import { showOrWatch } from './watch.js';

const PAGE = 500;

export async function run(argv: string[], ctx: CliContext): Promise<number> {
  const { values: flags, positionals } = parseCommand(
    argv,
    { ...OUTPUT_OPTIONS, watch: { type: 'boolean' } },
    ['an org slug'],
  );
  const json = wantsJson(flags);
  const [slug] = positionals;
  const config = loadConfig(ctx.env);
  // A live demo owns its embedded database: ask it rather than open the folder a second time.
  const demo = config.DATABASE_URL ? undefined : liveDemo(dirname(resolve(config.PGLITE_DIR)));
  if (demo)
    ctx.stderr(`molecule-operator status: asking the demo (pid ${demo.pid}) that owns ${demo.dataDir}\n`);
  const database = demo ? undefined : await openForCommand(config);
  const desired = database ? new DesiredStateRepository(database.db) : undefined;
  const render = async () => {
    const all = desired ? await loadAllOrgs(desired) : await askDemo<OrgView[]>(demo!, '/status');
    if (!slug) return json ? `${JSON.stringify(all, null, 2)}\n` : formatStatus(all);
    const org = all.find((o) => o.slug === slug);
    if (!org)
      throw new CliError(
        `no org has the slug ${JSON.stringify(slug)}`,
        'molecule-operator status lists them all',
      );
    // As GET /cp/orgs/{slug} answers.
    if (json) return `${JSON.stringify(org, null, 2)}\n`;
    const deleting = org.deletionRequestedAt
      ? `\n${slug} is being deleted (requested ${org.deletionRequestedAt}): its resources are being removed, and the slug is free for a new org once that completes.\n`
      : '';
    return formatStatus([org]) + deleting;
  };
  try {
    return await showOrWatch(ctx, !!flags.watch, render);
  } finally {
    await database?.close();
  }
}

export async function loadAllOrgs(desired: DesiredStateRepository): Promise<OrgView[]> {
  const views: OrgView[] = [];
  let after: OrgPageCursor | undefined;
  for (;;) {
    const page = await desired.listOrgsPage(PAGE, after);
    views.push(
      ...(await loadOrgViews(
        desired,
        page.map((r) => r.org),
      )),
    );
    if (page.length < PAGE) return views;
    after = page.at(-1)!.cursor;
  }
}

/** One row per org followed by its workspaces, then a summary line. */
export function formatStatus(orgs: readonly OrgView[]): string {
  if (orgs.length === 0) return 'no orgs\n';
  const rows: string[][] = [];
  let workspaces = 0;
  for (const org of orgs) {
    rows.push([
      org.slug,
      'org',
      org.id,
      '',
      '',
      org.powerState,
      String(org.generation),
      yesNo(readyNow(org)),
      reasonNow(org),
    ]);
    for (const ws of org.workspaces) {
      workspaces++;
      rows.push([
        `└ ${ws.name}`,
        'workspace',
        ws.id,
        ws.runtime,
        tierLabel(ws.tier),
        ws.powerState,
        String(ws.generation),
        yesNo(readyNow(ws)),
        reasonNow(ws),
      ]);
    }
  }
  const readyOrgs = orgs.filter(readyNow).length;
  const readyWorkspaces = orgs.flatMap((o) => o.workspaces).filter(readyNow).length;
  return (
    formatTable(['NAME', 'KIND', 'ID', 'RUNTIME', 'TIER', 'POWER', 'GEN', 'READY', 'REASON'], rows) +
    `\n${orgs.length} org${orgs.length === 1 ? '' : 's'} (${readyOrgs} ready), ` +
    `${workspaces} workspace${workspaces === 1 ? '' : 's'} (${readyWorkspaces} ready)\n`
  );
}

const yesNo = (b: boolean) => (b ? 'yes' : 'no');

interface Owner {
  generation: number;
  status: { ready: boolean; reason: string; conditions: { observedGeneration: number }[] };
}

/** The generation every controller has caught up with; a Ready from an older generation is not ready yet. */
const observed = (o: Owner) => Math.min(...o.status.conditions.map((c) => c.observedGeneration));

/** Ready for the current spec: every controller has reconciled this generation, as kubectl's READY. */
export const readyNow = (o: Owner) => o.status.ready && observed(o) >= o.generation;

const reasonNow = (o: Owner) =>
  o.status.ready && !readyNow(o)
    ? `Reconciling (generation ${o.generation}, observed ${observed(o)})`
    : o.status.reason;

/** The tier a workspace runs at: tiers clamp to those that exist (provisioning/tiers.ts). */
export const tierLabel = (requested: number) => {
  const runs = effectiveTier(requested);
  return runs === requested ? String(requested) : `${runs} (asked ${requested})`;
};
