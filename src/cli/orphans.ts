import { dirname, resolve } from 'node:path';
import type { DestinationStream } from 'pino';
import { RESOURCE_KINDS } from '../../controllers/index.js';
import type { ScanResult } from '../../controllers/orphan.js';
import type { OrphanRow } from '../../schema/index.js';
import { presentOrphan } from '../api/present.js';
import type { CloudOptions } from '../cloud/index.js';
import { loadConfig } from '../config.js';
import type { Database } from '../db/client.js';
import { OrphanLedger } from '../db/orphans.js';
import { createLogger } from '../observability/logger.js';
import { createOperator, operatorMetrics } from '../operator.js';
import type { Clock } from '../runtime/clock.js';
import { OUTPUT_OPTIONS, parseFlags, wantsJson } from './args.js';
import { openForCommand } from './database.js';
import { askDemo, liveDemo } from './lock.js';
import { formatTable } from './table.js';
import type { CliContext } from './types.js';

/** Test seams: a ready database, how to build the cloud clients (simulator credentials) and a clock. */
export interface OrphansCommandOverrides {
  database?: Database;
  cloud?: CloudOptions;
  clock?: Clock;
}

export function run(argv: string[], ctx: CliContext): Promise<number> {
  return runOrphansCommand(argv, ctx);
}

/** `molecule-operator orphans`: the orphan ledger as a table or JSON, optionally after a scan. */
export async function runOrphansCommand(
  argv: string[],
  ctx: CliContext,
  overrides: OrphansCommandOverrides = {},
): Promise<number> {
  const flags = parseFlags(argv, {
    ...OUTPUT_OPTIONS,
    scan: { type: 'boolean' },
    all: { type: 'boolean' },
  });
  const json = wantsJson(flags);
  const config = loadConfig(ctx.env);
  // A live demo owns its embedded database: it runs the command and sends back what it printed.
  const demo =
    !config.DATABASE_URL && !overrides.database ? liveDemo(dirname(resolve(config.PGLITE_DIR))) : undefined;
  if (demo) {
    ctx.stderr(`molecule-operator orphans: asking the demo (pid ${demo.pid}) that owns ${demo.dataDir}\n`);
    const answer = await askDemo<{ code: number; stdout: string; stderr: string }>(
      demo,
      `/orphans?args=${encodeURIComponent(JSON.stringify(argv))}`,
    );
    ctx.stdout(answer.stdout);
    ctx.stderr(answer.stderr);
    return answer.code;
  }
  const database = overrides.database ?? (await openForCommand(config));
  const now = () => overrides.clock?.now() ?? Date.now();
  try {
    let scan: ScanResult | undefined;
    if (flags.scan) {
      // Scan progress is for the operator's logs; here only warnings and errors, on stderr.
      const level = config.LOG_LEVEL === 'debug' || config.LOG_LEVEL === 'trace' ? config.LOG_LEVEL : 'warn';
      const stderr: DestinationStream = { write: (line: string) => ctx.stderr(line) };
      const operator = createOperator({
        config,
        database,
        logger: createLogger({ level }, stderr),
        metrics: operatorMetrics(false),
        ...(overrides.cloud ? { cloud: overrides.cloud } : {}),
        ...(overrides.clock ? { clock: overrides.clock } : {}),
        // The CLI holds no lease: it counts and records, it never deletes.
        orphanPolicy: 'report',
      });
      scan = await operator.scanner.scan();
    }
    const rows = await new OrphanLedger(database.db).listAll({ open: !flags.all });
    if (json) {
      ctx.stdout(
        `${JSON.stringify({ ...(scan ? { scan } : {}), orphans: rows.map(presentOrphan) }, null, 2)}\n`,
      );
    } else {
      if (scan) ctx.stdout(formatScan(scan));
      ctx.stdout(formatOrphans(rows, now(), !!flags.all));
    }
    return scan && !scan.ok ? 1 : 0;
  } finally {
    if (!overrides.database) await database.close();
  }
}

export function formatScan(scan: ScanResult): string {
  if (!scan.ok) return `scan failed (counts unchanged): ${scan.errors.join('; ')}\n\n`;
  const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
  const byKind = RESOURCE_KINDS.filter((k) => scan.counts[k] > 0)
    .map((k) => `${k} ${scan.counts[k]}`)
    .join(', ');
  return (
    `scan ok in ${scan.durationMs} ms: ${total(scan.counts)} orphan(s)${byKind ? ` (${byKind})` : ''}, ` +
    `${total(scan.managed)} managed, ${scan.ghosts} ghost(s) ignored, ` +
    `${scan.detected} new, ${scan.resolved} resolved\n\n`
  );
}

export function formatOrphans(rows: readonly OrphanRow[], now: number, all: boolean): string {
  if (rows.length === 0) return all ? 'no orphans recorded\n' : 'no open orphans\n';
  const headers = ['KIND', 'EXTERNAL ID', 'REASON', 'OWNER', 'FIRST SEEN', 'AGE', ...(all ? ['STATE'] : [])];
  const table = rows.map((r) => [
    r.kind,
    r.externalId,
    r.reason,
    r.ownerId ? `${r.ownerKind ?? '?'}/${r.ownerId}` : '-',
    r.firstSeen.toISOString(),
    formatAge(now - r.firstSeen.getTime()),
    ...(all ? [r.deletedAt ? 'deleted' : r.resolvedAt ? 'resolved' : 'open'] : []),
  ]);
  return formatTable(headers, table);
}

/** `45s`, `12m`, `3h05m`, `2d04h`. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}
