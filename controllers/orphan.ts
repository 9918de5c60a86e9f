import { and, asc, eq, inArray, isNull, sql } from 'drizzle-orm';
import {
  type OrphanRow,
  orgs,
  orphans,
  reconcileStatus,
  tenantResources,
  workspaces,
} from '../schema/index.js';
import type { CloudPorts } from '../src/cloud/ports.js';
import type { Config } from '../src/config.js';
import type { Database, Db } from '../src/db/client.js';
import { OrphanLedger } from '../src/db/orphans.js';
import type { AuditEntry } from '../src/db/status.js';
import type { Logger } from '../src/observability/logger.js';
import { type Metrics, RESOURCE_KINDS, type ResourceKind } from '../src/observability/metrics.js';
import { dnsCommentMarker, tunnelNamePrefix } from '../src/provisioning/names.js';
import { ownershipTags } from '../src/provisioning/tags.js';
import { type Clock, systemClock } from '../src/runtime/clock.js';
import { describeError, errorCodeOf, isNotFound } from '../src/runtime/errors.js';
import type { LeaderJob } from '../src/runtime/manager.js';
import {
  type CloudListing,
  classify,
  confirmLive,
  type LiveResource,
  type OpenOrphan,
  type Orphan,
  type Owners,
  orphanGauges,
  type SkipWhy,
  STATUS_IDS,
  type StatusRef,
  selectDeletions,
  zeroByKind,
} from './orphan.diff.js';

/**
 * The orphan scan (DESIGN §5, issue 6): a leader-only job that lists everything marked ours for
 * this env, counts what has no live owner, keeps the ledger, and — under ORPHAN_POLICY=delete
 * and only when safe — removes old orphans. Decisions are the pure functions of orphan.diff.ts;
 * this file only reads, writes and reports.
 */

export const ORPHAN_CONTROLLER = 'orphan';

export interface OrphanScannerDeps {
  config: Config;
  database: Database;
  ports: CloudPorts;
  metrics: Metrics;
  logger: Logger;
  clock?: Clock;
  /** Throws when this replica may not touch the cloud; called right before every deletion. */
  assertLeader?: () => void;
  /** Overrides ORPHAN_POLICY (the CLI scans in report mode: it holds no lease). */
  policy?: Config['ORPHAN_POLICY'];
}

/** Why a deletion did not happen, as written to the audit trail. */
export type DecisionWhy = SkipWhy | 'DependencyViolation' | 'DeleteFailed' | 'NoLongerOrphan';

export interface ScanResult {
  /** False when a listing or the ledger write failed: gauges kept, nothing written or deleted. */
  ok: boolean;
  at: string;
  durationMs: number;
  policy: Config['ORPHAN_POLICY'];
  /** Open orphans by kind after this scan's deletions. */
  counts: Record<ResourceKind, number>;
  /** Live resources marked ours by kind, orphans included. */
  managed: Record<ResourceKind, number>;
  /** Tagging API entries that their own service no longer has. */
  ghosts: number;
  detected: number;
  resolved: number;
  deleted: { kind: ResourceKind; externalId: string; reason: string }[];
  skipped: { kind: ResourceKind; externalId: string; why: DecisionWhy }[];
  blockedByFraction: boolean;
  errors: string[];
}

export interface OrphanScanner {
  /** One full scan. Never throws; concurrent calls share one run. */
  scan(): Promise<ScanResult>;
  /** The leader-only cron job for the manager. */
  job(): LeaderJob;
  /** The last finished scan (for /readyz and stats: a tripped fraction guard shows here). */
  last(): ScanResult | undefined;
}

/** A ledger row's view of an orphan seen in this scan. */
interface LedgerOrphan extends OpenOrphan {
  ledgerId: number;
  /** The last decision audited for this row, so a repeated decision is not audited every scan. */
  decision: string | undefined;
}

export function createOrphanScanner(deps: OrphanScannerDeps): OrphanScanner {
  let running: Promise<ScanResult> | undefined;
  let last: ScanResult | undefined;
  const scan = (): Promise<ScanResult> => {
    running ??= runScan(deps)
      .catch((e): ScanResult => {
        // A bug must not escape into the cron tick: report it as a failed scan.
        deps.metrics.orphanScanSuccess.set(0);
        deps.logger.error({ controller: ORPHAN_CONTROLLER, err: describeError(e) }, 'orphan scan crashed');
        return { ...emptyResult(deps, (deps.clock ?? systemClock).now()), errors: [describeError(e)] };
      })
      .then((r) => {
        last = r;
        return r;
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  return {
    scan,
    last: () => last,
    job: () => ({
      name: 'orphan-scan',
      cron: deps.config.ORPHAN_SCAN_CRON,
      run: async () => {
        await scan();
      },
    }),
  };
}

/** The orphan ledger for the CLI and the API, oldest first; open rows only unless `open: false`. */
export function listOrphans(database: Database, options: { open?: boolean } = {}): Promise<OrphanRow[]> {
  return new OrphanLedger(database.db).listAll(options);
}

function emptyResult(deps: OrphanScannerDeps, started: number): ScanResult {
  return {
    ok: false,
    at: new Date(started).toISOString(),
    durationMs: 0,
    policy: deps.policy ?? deps.config.ORPHAN_POLICY,
    counts: zeroByKind(),
    managed: zeroByKind(),
    ghosts: 0,
    detected: 0,
    resolved: 0,
    deleted: [],
    skipped: [],
    blockedByFraction: false,
    errors: [],
  };
}

async function runScan(deps: OrphanScannerDeps): Promise<ScanResult> {
  const { config, database, metrics } = deps;
  const clock = deps.clock ?? systemClock;
  const log = deps.logger.child({ controller: ORPHAN_CONTROLLER });
  const env = config.MOLECULE_ENV;
  const started = clock.now();
  const result = emptyResult(deps, started);
  const fail = (stage: string, e: unknown) => {
    // A failed or partial read is never taken as "absent": the last good gauges stay.
    metrics.orphanScanSuccess.set(0);
    result.errors.push(describeError(e));
    result.durationMs = clock.now() - started;
    log.warn({ stage, err: describeError(e) }, 'orphan scan failed; keeping the last counts');
    return result;
  };

  // 1: List the cloud first, then the database: a resource is created after its owner row, so
  //    an owner written during the listing is still seen.
  let listing: CloudListing;
  let owners: Owners;
  let statuses: StatusRef[];
  try {
    listing = await listCloud(deps.ports, env);
    [owners, statuses] = await Promise.all([loadOwners(database.db), loadStatuses(database.db)]);
  } catch (e) {
    return fail('list', e);
  }

  // 2: Classify (pure).
  const live = confirmLive(listing, env);
  const { orphans: found, managed } = classify(live.resources, owners, statuses);
  result.ghosts = live.ghosts;

  // 3: Ledger: upsert what is open, resolve what is no longer seen, in one transaction.
  const now = clock.now();
  let open: LedgerOrphan[];
  try {
    const synced = await syncLedger(database.db, env, found, live.scanned, now);
    open = synced.open;
    result.detected = synced.detected.length;
    result.resolved = synced.resolved.length;
    for (const o of synced.detected) {
      log.info(
        { kind: o.kind, externalId: o.externalId, reason: o.reason, owner: o.ownerId },
        'orphan detected',
      );
    }
    for (const r of synced.resolved) log.info({ kind: r.kind, externalId: r.externalId }, 'orphan resolved');
  } catch (e) {
    return fail('ledger', e);
  }

  // 4: Deletions (policy, grace, fraction guard, cap, keep tag), in dependency order.
  const managedTotal = Object.values(managed).reduce((a, b) => a + b, 0);
  const plan = selectDeletions(open, {
    now,
    policy: result.policy,
    graceMs: config.ORPHAN_GRACE,
    maxDeletions: config.ORPHAN_MAX_DELETIONS,
    maxFraction: config.ORPHAN_MAX_FRACTION,
    managedTotal,
  });
  result.blockedByFraction = plan.blocked;
  metrics.orphanDeletionBlocked.set(plan.blocked ? 1 : 0);
  if (plan.blocked) {
    log.error(
      { open: open.length, managed: managedTotal, maxFraction: config.ORPHAN_MAX_FRACTION },
      'orphan deletion blocked: orphans exceed ORPHAN_MAX_FRACTION of managed resources',
    );
  }
  const decisions: { orphan: LedgerOrphan; why: DecisionWhy }[] = [...plan.skipped];
  const deleted = new Set<LedgerOrphan>();
  for (const o of plan.delete) {
    const why = await deleteOrphan(deps, o, live.resources, log);
    if (why === 'NotLeader') {
      // Lost the lease mid-scan: the new leader decides (and audits) from here.
      result.errors.push('not the leader: orphan deletions stopped');
      log.warn({ kind: o.kind, externalId: o.externalId }, 'orphan deletions stopped: not the leader');
      break;
    }
    if (why) {
      decisions.push({ orphan: o, why });
      if (why === 'DeleteFailed') result.errors.push(`delete ${o.kind} ${o.externalId} failed`);
      continue;
    }
    deleted.add(o);
    metrics.orphanDeleted.labels(o.kind).inc();
    result.deleted.push({ kind: o.kind, externalId: o.externalId, reason: o.reason });
    try {
      await markDeleted(database.db, o, clock.now());
    } catch (e) {
      // The resource is gone; the next scan no longer sees it and resolves the row instead.
      result.errors.push(describeError(e));
      log.error(
        { kind: o.kind, externalId: o.externalId, err: describeError(e) },
        'orphan deleted but ledger not updated',
      );
    }
  }
  result.skipped = decisions.map((d) => ({
    kind: d.orphan.kind,
    externalId: d.orphan.externalId,
    why: d.why,
  }));
  try {
    await recordDecisions(database.db, decisions);
  } catch (e) {
    result.errors.push(describeError(e));
    log.error({ err: describeError(e) }, 'orphan decisions not audited');
  }

  // 5: Gauges, for every kind (0 when none).
  const remaining = open.filter((o) => !deleted.has(o));
  const gauges = orphanGauges(remaining, clock.now());
  for (const o of deleted) managed[o.kind] = Math.max(0, managed[o.kind] - 1);
  for (const kind of RESOURCE_KINDS) {
    metrics.orphanResources.labels(kind, env).set(gauges.counts[kind]);
    metrics.orphanOldestAge.labels(kind).set(gauges.oldestSeconds[kind]);
    metrics.managedResources.labels(kind).set(managed[kind]);
  }
  metrics.orphanScanSuccess.set(1);
  metrics.orphanScanTimestamp.set(Math.floor(now / 1000));
  result.ok = true;
  result.counts = gauges.counts;
  result.managed = managed;
  result.durationMs = clock.now() - started;
  log.info(
    {
      orphans: remaining.length,
      managed: managedTotal,
      ghosts: live.ghosts,
      detected: result.detected,
      resolved: result.resolved,
      deleted: result.deleted.length,
      durationMs: result.durationMs,
    },
    'orphan scan complete',
  );
  return result;
}

// --- cloud ---------------------------------------------------------------------------------

const wrap = (what: string) => (cause: unknown) => {
  throw new Error(what, { cause });
};

/** One listing per source; any failure fails the whole scan (a partial listing is not "absent"). */
async function listCloud(ports: CloudPorts, env: string): Promise<CloudListing> {
  const tags = ownershipTags(env);
  const secretPrefix = `molecule/${env}/`;
  const [tagged, instances, securityGroups, secrets, tunnels, dnsRecords] = await Promise.all([
    ports.tagging.getResources(tags).catch(wrap('list tagged resources')),
    ports.ec2.describeInstances({ tags }).catch(wrap('describe instances')),
    ports.ec2.describeSecurityGroups({ tags }).catch(wrap('describe security groups')),
    ports.secrets.listSecrets(secretPrefix).catch(wrap('list secrets')),
    ports.tunnels?.listTunnels({ namePrefix: tunnelNamePrefix(env) }).catch(wrap('list tunnels')),
    ports.dns?.listRecords({ commentContains: dnsCommentMarker(env) }).catch(wrap('list dns records')),
  ]);
  // A secret tagged ours under another name is confirmed one by one (rare). One under the
  // prefix that listSecrets did not return is purged: a ghost, no call needed.
  const known = new Set(secrets.map((s) => s.arn));
  for (const r of tagged) {
    if (
      r.resourceType !== 'secretsmanager:secret' ||
      known.has(r.arn) ||
      r.resourceId.startsWith(secretPrefix)
    )
      continue;
    try {
      secrets.push(await ports.secrets.describeSecret(r.arn));
    } catch (e) {
      if (!isNotFound(e)) throw new Error('describe tagged secret', { cause: e });
    }
  }
  return { tagged, instances, securityGroups, secrets, tunnels, dnsRecords };
}

/** Deletes one orphan after re-checking it; returns why not when it was not deleted. */
async function deleteOrphan(
  deps: OrphanScannerDeps,
  o: LedgerOrphan,
  resources: LiveResource[],
  log: Logger,
): Promise<DecisionWhy | 'NotLeader' | undefined> {
  const fields = { kind: o.kind, externalId: o.externalId, reason: o.reason };
  try {
    // An owner row or status written since the listing wins over the scan's view.
    if (!(await stillOrphan(deps.database.db, o, resources))) {
      log.info(fields, 'orphan no longer orphaned; not deleted');
      return 'NoLongerOrphan';
    }
  } catch (e) {
    log.warn({ ...fields, err: describeError(e) }, 'orphan re-check failed; not deleted');
    return 'DeleteFailed';
  }
  const { ports, config } = deps;
  try {
    deps.assertLeader?.();
  } catch {
    return 'NotLeader';
  }
  try {
    switch (o.kind) {
      case 'ec2_instance':
        await ports.ec2.terminateInstance(o.externalId);
        break;
      case 'security_group':
        await ports.ec2.deleteSecurityGroup(o.externalId);
        break;
      case 'secret':
        await ports.secrets.deleteSecret(o.name ?? o.externalId, config.SECRET_RECOVERY_DAYS);
        break;
      case 'cf_dns_record':
        if (!ports.dns) throw new Error('cloudflare is not configured');
        await ports.dns.deleteRecord(o.externalId);
        break;
      case 'cf_tunnel':
        if (!ports.tunnels) throw new Error('cloudflare is not configured');
        await ports.tunnels.deleteTunnel(o.externalId);
        break;
      default:
        throw new Error(`no deleter for kind ${o.kind}`);
    }
  } catch (e) {
    if (errorCodeOf(e) === 'DependencyViolation') {
      // An instance we just terminated still holds the group: the next scan retries.
      log.info(fields, 'orphan still referenced; retrying next scan');
      return 'DependencyViolation';
    }
    log.warn({ ...fields, err: describeError(e) }, 'orphan deletion failed');
    return 'DeleteFailed';
  }
  log.info(fields, 'orphan deleted');
  return undefined;
}

// --- database ------------------------------------------------------------------------------

async function loadOwners(db: Db): Promise<Owners> {
  const [o, w] = await Promise.all([
    db
      .select({ id: orgs.id, deletionRequestedAt: orgs.deletionRequestedAt, purgedAt: orgs.purgedAt })
      .from(orgs),
    db
      .select({
        id: workspaces.id,
        orgId: workspaces.orgId,
        deletionRequestedAt: workspaces.deletionRequestedAt,
        purgedAt: workspaces.purgedAt,
      })
      .from(workspaces),
  ]);
  return { orgs: o, workspaces: w };
}

const STATUS_CONTROLLERS = [...new Set(Object.values(STATUS_IDS).map((s) => s.controller))];

async function loadStatuses(db: Db, ownerIds?: string[]): Promise<StatusRef[]> {
  return db
    .select({
      controller: reconcileStatus.controller,
      ownerId: reconcileStatus.ownerId,
      externalIds: reconcileStatus.externalIds,
      pending: reconcileStatus.pending,
    })
    .from(reconcileStatus)
    .where(
      and(
        inArray(reconcileStatus.controller, STATUS_CONTROLLERS),
        ownerIds ? inArray(reconcileStatus.ownerId, ownerIds) : undefined,
      ),
    );
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const uuidOrNull = (v: string | undefined) => (v && UUID.test(v) ? v : null);

/** Classifies one orphan again against freshly read owner and status rows. */
async function stillOrphan(db: Db, o: LedgerOrphan, resources: LiveResource[]): Promise<boolean> {
  const sameKind = resources.filter((r) => r.kind === o.kind);
  const self = sameKind.filter((r) => r.externalId === o.externalId);
  const ids = [...new Set(self.flatMap((r) => [r.orgId, r.workspaceId]).map(uuidOrNull))].filter(
    (v): v is string => v !== null,
  );
  const ws = ids.length
    ? await db
        .select({
          id: workspaces.id,
          orgId: workspaces.orgId,
          deletionRequestedAt: workspaces.deletionRequestedAt,
          purgedAt: workspaces.purgedAt,
        })
        .from(workspaces)
        .where(inArray(workspaces.id, ids))
    : [];
  const orgIds = [...new Set([...ids, ...ws.map((w) => w.orgId)])];
  const og = orgIds.length
    ? await db
        .select({ id: orgs.id, deletionRequestedAt: orgs.deletionRequestedAt, purgedAt: orgs.purgedAt })
        .from(orgs)
        .where(inArray(orgs.id, orgIds))
    : [];
  const statuses = ids.length ? await loadStatuses(db, ids) : [];
  const again = classify(sameKind, { orgs: og, workspaces: ws }, statuses);
  return again.orphans.some((x) => x.externalId === o.externalId && x.reason === o.reason);
}

const keyOf = (kind: string, externalId: string) => `${kind}\u0000${externalId}`;
const CHUNK = 5_000;

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/** JSON with sorted keys: jsonb does not keep key order, so plain stringify cannot compare. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object' && !(v instanceof Date)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

interface AuditSubject {
  kind: string;
  externalId: string;
  ownerKind: string | undefined;
  ownerId: string | undefined;
  orgId: string | undefined;
  reason: string;
}

function auditEntry(
  o: AuditSubject,
  action: AuditEntry['action'],
  details: Record<string, unknown> = {},
): AuditEntry {
  return {
    ownerKind: o.ownerKind ?? 'unknown',
    // Owner ids come from tags and may be anything: only a UUID fits the column.
    ownerId: uuidOrNull(o.ownerId),
    orgId: uuidOrNull(o.orgId),
    kind: o.kind,
    externalId: o.externalId,
    controller: ORPHAN_CONTROLLER,
    action,
    details: {
      reason: o.reason,
      ...(o.ownerId && !uuidOrNull(o.ownerId) ? { ownerTag: o.ownerId } : {}),
      ...details,
    },
  };
}

/**
 * Brings the ledger in line with this scan: open rows for what was found (first_seen kept,
 * last_seen now), new rows for new orphans, and rows of scanned kinds no longer seen resolved.
 */
async function syncLedger(db: Db, env: string, found: Orphan[], scanned: ResourceKind[], now: number) {
  const at = new Date(now);
  return db.transaction(async (tx) => {
    const rows = await tx
      .select()
      .from(orphans)
      .where(and(eq(orphans.env, env), isNull(orphans.resolvedAt), isNull(orphans.deletedAt)));
    const existing = new Map(rows.map((r) => [keyOf(r.kind, r.externalId), r]));
    const seen = new Set<string>();
    const open: LedgerOrphan[] = [];
    const touched: number[] = [];
    const fresh: Orphan[] = [];
    for (const o of found) {
      const key = keyOf(o.kind, o.externalId);
      if (seen.has(key)) continue;
      seen.add(key);
      const row = existing.get(key);
      if (!row) {
        fresh.push(o);
        continue;
      }
      const decision = typeof row.details.decision === 'string' ? row.details.decision : undefined;
      const details = decision ? { ...o.details, decision } : o.details;
      if (
        row.reason !== o.reason ||
        row.ownerKind !== (o.ownerKind ?? null) ||
        row.ownerId !== (o.ownerId ?? null) ||
        stableJson(row.details) !== stableJson(details)
      ) {
        await tx
          .update(orphans)
          .set({
            reason: o.reason,
            ownerKind: o.ownerKind ?? null,
            ownerId: o.ownerId ?? null,
            details,
            lastSeen: at,
          })
          .where(eq(orphans.id, row.id));
      } else touched.push(row.id);
      open.push({ ...o, firstSeen: row.firstSeen, ledgerId: row.id, decision });
    }
    for (const ids of chunks(touched))
      await tx.update(orphans).set({ lastSeen: at }).where(inArray(orphans.id, ids));
    for (const batch of chunks(fresh)) {
      const inserted = await tx
        .insert(orphans)
        .values(
          batch.map((o) => ({
            kind: o.kind,
            externalId: o.externalId,
            env,
            ownerKind: o.ownerKind ?? null,
            ownerId: o.ownerId ?? null,
            reason: o.reason,
            details: o.details,
            firstSeen: at,
            lastSeen: at,
          })),
        )
        .returning({ id: orphans.id, kind: orphans.kind, externalId: orphans.externalId });
      const ids = new Map(inserted.map((r) => [keyOf(r.kind, r.externalId), r.id]));
      for (const o of batch) {
        open.push({
          ...o,
          firstSeen: at,
          ledgerId: ids.get(keyOf(o.kind, o.externalId))!,
          decision: undefined,
        });
      }
    }
    const scannedKinds = new Set<string>(scanned);
    const resolved = rows.filter((r) => scannedKinds.has(r.kind) && !seen.has(keyOf(r.kind, r.externalId)));
    for (const batch of chunks(resolved)) {
      await tx
        .update(orphans)
        .set({ resolvedAt: at })
        .where(
          inArray(
            orphans.id,
            batch.map((r) => r.id),
          ),
        );
    }
    const audit: AuditEntry[] = [
      ...fresh.map((o) => auditEntry(o, 'orphan_detected', { name: o.name, details: o.details })),
      ...resolved.map((r) =>
        auditEntry(
          {
            kind: r.kind,
            externalId: r.externalId,
            ownerKind: r.ownerKind ?? undefined,
            ownerId: r.ownerId ?? undefined,
            orgId: undefined,
            reason: r.reason,
          },
          'orphan_resolved',
          { firstSeen: r.firstSeen.toISOString() },
        ),
      ),
    ];
    for (const batch of chunks(audit)) {
      await tx.insert(tenantResources).values(batch.map((e) => ({ ...e, details: e.details ?? {} })));
    }
    return { open, detected: fresh, resolved };
  });
}

async function markDeleted(db: Db, o: LedgerOrphan, now: number): Promise<void> {
  await db.transaction(async (tx) => {
    await tx
      .update(orphans)
      .set({ deletedAt: new Date(now), details: sql`${orphans.details} || '{"decision":"Deleted"}'::jsonb` })
      .where(eq(orphans.id, o.ledgerId));
    await tx.insert(tenantResources).values(
      auditEntry(o, 'orphan_deleted', {
        name: o.name,
        firstSeen: o.firstSeen.toISOString(),
      }) as typeof tenantResources.$inferInsert,
    );
  });
}

/** Audits each skip whose reason changed since the last scan, and remembers it on the row. */
async function recordDecisions(
  db: Db,
  decisions: { orphan: LedgerOrphan; why: DecisionWhy }[],
): Promise<void> {
  const changed = decisions.filter((d) => d.orphan.decision !== d.why);
  if (changed.length === 0) return;
  await db.transaction(async (tx) => {
    const byWhy = new Map<string, number[]>();
    for (const d of changed) {
      const ids = byWhy.get(d.why) ?? [];
      ids.push(d.orphan.ledgerId);
      byWhy.set(d.why, ids);
    }
    for (const [why, all] of byWhy) {
      for (const ids of chunks(all)) {
        await tx
          .update(orphans)
          .set({ details: sql`${orphans.details} || jsonb_build_object('decision', ${why}::text)` })
          .where(inArray(orphans.id, ids));
      }
    }
    for (const batch of chunks(changed)) {
      await tx.insert(tenantResources).values(
        batch.map((d) => {
          const e = auditEntry(d.orphan, 'orphan_delete_skipped', {
            why: d.why,
            firstSeen: d.orphan.firstSeen.toISOString(),
          });
          return { ...e, details: e.details ?? {} };
        }),
      );
    }
  });
  for (const d of changed) d.orphan.decision = d.why;
}
