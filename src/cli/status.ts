import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadOrgViews, type OrgView } from '../api/present.js';
import { loadConfig } from '../config.js';
import { DesiredStateRepository, type OrgPageCursor } from '../db/desired.js';
import { parseFlags } from './args.js';
import { openForCommand } from './database.js';
import { askDemo, liveDemo } from './lock.js';
import { waitForShutdownSignal } from './signals.js';
import { formatTable } from './table.js';
import type { CliContext } from './types.js';

const WATCH_INTERVAL_MS = 2_000;
const PAGE = 500;

export async function run(argv: string[], ctx: CliContext): Promise<number> {
  const flags = parseFlags(argv, { json: { type: 'boolean' }, watch: { type: 'boolean' } });
  const config = loadConfig(ctx.env);
  // A live demo owns its embedded database: ask it rather than open the folder a second time.
  const demo = config.DATABASE_URL ? undefined : liveDemo(dirname(resolve(config.PGLITE_DIR)));
  if (demo) ctx.stderr(`status: asking the demo (pid ${demo.pid}) that owns ${demo.dataDir}\n`);
  const database = demo ? undefined : await openForCommand(config);
  const desired = database ? new DesiredStateRepository(database.db) : undefined;
  const render = async () => {
    const views = desired ? await loadAllOrgs(desired) : await askDemo<OrgView[]>(demo!, '/status');
    return flags.json ? `${JSON.stringify(views, null, 2)}\n` : formatStatus(views);
  };
  try {
    if (!flags.watch) {
      ctx.stdout(await render());
      return 0;
    }
    const shutdown = waitForShutdownSignal();
    while (!shutdown.abort.aborted) {
      // Clear the screen and home the cursor, then redraw.
      ctx.stdout(`\x1b[2J\x1b[H${new Date().toISOString()}\n\n${await render()}`);
      await sleep(WATCH_INTERVAL_MS, undefined, { signal: shutdown.abort }).catch(() => {});
    }
    return 0;
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
      yesNo(org.status.ready),
      org.status.reason,
    ]);
    for (const ws of org.workspaces) {
      workspaces++;
      rows.push([
        `└ ${ws.name}`,
        'workspace',
        ws.id,
        ws.runtime,
        String(ws.tier),
        ws.powerState,
        String(ws.generation),
        yesNo(ws.status.ready),
        ws.status.reason,
      ]);
    }
  }
  const readyOrgs = orgs.filter((o) => o.status.ready).length;
  const readyWorkspaces = orgs.flatMap((o) => o.workspaces).filter((w) => w.status.ready).length;
  return (
    formatTable(['NAME', 'KIND', 'ID', 'RUNTIME', 'TIER', 'POWER', 'GEN', 'READY', 'REASON'], rows) +
    `\n${orgs.length} org${orgs.length === 1 ? '' : 's'} (${readyOrgs} ready), ` +
    `${workspaces} workspace${workspaces === 1 ? '' : 's'} (${readyWorkspaces} ready)\n`
  );
}

const yesNo = (b: boolean) => (b ? 'yes' : 'no');
