import type { CloudPorts, Tags } from '../src/cloud/ports.js';
import type { CloudTargets, TargetName } from '../src/cloud/targets.js';
import type { Config } from '../src/config.js';
import type { Database } from '../src/db/client.js';
import type { Fence } from '../src/db/fence.js';
import { OrphanLedger, type Sighted } from '../src/db/orphans.js';
import type { Logger } from '../src/observability/logger.js';
import type { Metrics } from '../src/observability/metrics.js';
import { dnsCommentKept, orgIdFromDnsComment } from '../src/provisioning/names.js';
import { ownershipTags, TAG } from '../src/provisioning/tags.js';
import { type Clock, systemClock } from '../src/runtime/clock.js';
import {
  describeError,
  errorCodeOf,
  FencedOutError,
  isNotFound,
  NOT_YET_CONSISTENT,
} from '../src/runtime/errors.js';
import type { LeaderJob } from '../src/runtime/manager.js';
import { registry } from './index.js';
import {
  CLOUDFLARE_KINDS,
  classify,
  type DecisionWhy,
  emptyScanResult,
  type LiveResource,
  type OpenOrphan,
  type Orphan,
  orphanGauges,
  rereadVerdict,
  type ScanResult,
  STATUS_CONTROLLERS,
  selectDeletions,
} from './orphan.diff.js';
import { confirmSecrets, type LiveListing, listLive, stillOrphan } from './orphan.reads.js';

/**
 * The orphan scan (DESIGN §5, issue 6): a leader-only job that lists everything marked ours for
 * this env, counts what has no live owner, keeps the ledger, and — under ORPHAN_POLICY=delete
 * and only when safe — removes old orphans. Decisions are the pure functions of orphan.diff.ts;
 * reads go through the target's ports (orphan.reads.ts) and the ledger's repository
 * (src/db/orphans.ts). This file orders the steps, re-reads before a deletion and reports.
 */

export const ORPHAN_CONTROLLER = 'orphan';

export interface OrphanScannerDeps {
  config: Config;
  database: Database;
  /** Every target is scanned; Cloudflare once. */
  targets: CloudTargets;
  metrics: Metrics;
  logger: Logger;
  clock?: Clock;
  /** Throws when this replica may not touch the target's cloud; called right before every deletion. */
  assertLeader?: (target: TargetName) => void;
  /**
   * The lease term the ledger writes of a target's scan are fenced by (db/fence.ts); undefined
   * for a scan by a process that holds no lease by design (a one-off report).
   */
  fence?: (target: TargetName) => Fence | undefined;
  /** Told when the database refused a ledger write of an earlier term of `lease`. */
  onFencedOut?: (lease: string) => void;
  /** Overrides ORPHAN_POLICY (the CLI scans in report mode: it holds no lease). */
  policy?: Config['ORPHAN_POLICY'];
}

export type { DecisionWhy, ScanResult } from './orphan.diff.js';

export interface OrphanScanner {
  /** One full scan of a target (default the primary). Never throws; concurrent calls share one run. */
  scan(target?: TargetName): Promise<ScanResult>;
  /** A scan of every configured target, one after the other (the CLI, the demo). */
  scanAll(): Promise<ScanResult[]>;
  /** The cron jobs for the manager: one per target, run by that target's leader. */
  jobs(): LeaderJob[];
  /** The last finished scan of each target (for /readyz and stats: a tripped fraction guard shows here). */
  last(): ScanResult[];
}

/** An orphan seen in this scan, with its ledger row. */
type LedgerOrphan = Sighted<OpenOrphan>;

export function createOrphanScanner(deps: OrphanScannerDeps): OrphanScanner {
  const running = new Map<TargetName, Promise<ScanResult>>();
  const last = new Map<TargetName, ScanResult>();
  const scan = (name: TargetName = 'primary'): Promise<ScanResult> => {
    let run = running.get(name);
    if (run) return run;
    run = runScan(deps, name)
      .catch((e): ScanResult => {
        // A bug must not escape into the cron tick: report it as a failed scan.
        deps.metrics.orphanScanSuccess.labels(name).set(0);
        deps.logger.error(
          { controller: ORPHAN_CONTROLLER, target: name, err: describeError(e) },
          'orphan scan crashed',
        );
        return { ...emptyResult(deps, name, (deps.clock ?? systemClock).now()), errors: [describeError(e)] };
      })
      .then((r) => {
        last.set(name, r);
        return r;
      })
      .finally(() => running.delete(name));
    running.set(name, run);
    return run;
  };
  return {
    scan,
    scanAll: async () => {
      const results: ScanResult[] = [];
      for (const t of deps.targets.all) results.push(await scan(t.name));
      return results;
    },
    last: () => [...last.values()],
    jobs: () =>
      deps.targets.all.map((t) => ({
        name: `orphan-scan:${t.name}`,
        cron: deps.config.ORPHAN_SCAN_CRON,
        target: t.name,
        run: async () => {
          await scan(t.name);
        },
      })),
  };
}

const emptyResult = (deps: OrphanScannerDeps, target: TargetName, started: number) =>
  emptyScanResult(target, started, deps.policy ?? deps.config.ORPHAN_POLICY);

async function runScan(deps: OrphanScannerDeps, name: TargetName): Promise<ScanResult> {
  const { config, metrics } = deps;
  const unfenced = new OrphanLedger(deps.database.db, ORPHAN_CONTROLLER);
  const ledger = deps.fence ? unfenced.fenced(() => deps.fence!(name)) : unfenced;
  const clock = deps.clock ?? systemClock;
  const log = deps.logger.child({ controller: ORPHAN_CONTROLLER, target: name });
  const env = config.MOLECULE_ENV;
  const started = clock.now();
  const result = emptyResult(deps, name, started);
  const target = deps.targets.get(name);
  const fail = (stage: string, e: unknown) => {
    if (e instanceof FencedOutError) deps.onFencedOut?.(e.lease);
    // A failed or partial read is never taken as "absent": the last good gauges stay.
    metrics.orphanScanSuccess.labels(name).set(0);
    result.errors.push(describeError(e));
    result.durationMs = clock.now() - started;
    log.warn({ stage, err: describeError(e) }, 'orphan scan failed; keeping the last counts');
    return result;
  };

  // 1: List the cloud first, then the database: a resource is created after its owner row, so
  //    an owner written during the listing is still seen.
  let live: LiveListing;
  let owners: Awaited<ReturnType<OrphanLedger['owners']>>;
  let statuses: Awaited<ReturnType<OrphanLedger['statusRefs']>>;
  try {
    if (!target) throw new Error(`target ${name} is not configured`);
    live = await listLive(deps.targets, target, env);
    [owners, statuses] = await Promise.all([ledger.owners(), ledger.statusRefs(STATUS_CONTROLLERS)]);
  } catch (e) {
    return fail('list', e);
  }

  // 2: Classify (pure).
  const { orphans: listed, managed } = classify(live.resources, owners, statuses);
  result.ghosts = live.ghosts;
  // ListSecrets lags recent changes by minutes: a bundle it still shows live may have been
  // deleted since. A secret counts only once DescribeSecret confirms it (rarely any call).
  let found: Orphan[];
  try {
    found = await confirmSecrets(portsOf(deps.targets, name), listed);
  } catch (e) {
    return fail('confirm', e);
  }
  result.ghosts += listed.length - found.length;

  // 3: Ledger: upsert what is open, resolve what is no longer seen, in one transaction.
  const now = clock.now();
  let open: LedgerOrphan[];
  try {
    const synced = await ledger.sync(env, found, live.scanned, new Date(now), name, CLOUDFLARE_KINDS);
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
  metrics.orphanDeletionBlocked.labels(name).set(plan.blocked ? 1 : 0);
  if (plan.blocked) {
    log.error(
      { open: open.length, managed: managedTotal, maxFraction: config.ORPHAN_MAX_FRACTION },
      'orphan deletion blocked: orphans exceed ORPHAN_MAX_FRACTION of managed resources',
    );
  }
  const decisions: { orphan: LedgerOrphan; why: DecisionWhy }[] = [...plan.skipped];
  const deleted = new Set<LedgerOrphan>();
  for (const o of plan.delete) {
    const why = await deleteOrphan(deps, ledger, o, live.resources, log);
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
    metrics.orphanDeleted.labels(o.kind, name).inc();
    result.deleted.push({ kind: o.kind, externalId: o.externalId, reason: o.reason });
    try {
      await ledger.markDeleted(o, new Date(clock.now()));
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
    await ledger.recordDecisions(decisions);
  } catch (e) {
    result.errors.push(describeError(e));
    log.error({ err: describeError(e) }, 'orphan decisions not audited');
  }

  // 5: Gauges, for every kind (0 when none).
  const remaining = open.filter((o) => !deleted.has(o));
  const gauges = orphanGauges(remaining, clock.now());
  for (const o of deleted) managed[o.kind] = Math.max(0, managed[o.kind] - 1);
  for (const kind of live.scannedKinds) {
    metrics.orphanResources.labels(kind, env, name).set(gauges.counts[kind]);
    metrics.orphanOldestAge.labels(kind, name).set(gauges.oldestSeconds[kind]);
    metrics.managedResources.labels(kind, name).set(managed[kind]);
  }
  metrics.orphanScanSuccess.labels(name).set(1);
  metrics.orphanScanTimestamp.labels(name).set(Math.floor(now / 1000));
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

/** Deletes one orphan after re-checking it; returns why not when it was not deleted. */
async function deleteOrphan(
  deps: OrphanScannerDeps,
  ledger: OrphanLedger,
  o: LedgerOrphan,
  resources: LiveResource[],
  log: Logger,
): Promise<DecisionWhy | 'NotLeader' | undefined> {
  const fields = { kind: o.kind, externalId: o.externalId, reason: o.reason };
  try {
    // An owner row or status written since the listing wins over the scan's view.
    if (!(await stillOrphan(ledger, o, resources))) {
      log.info(fields, 'orphan no longer orphaned; not deleted');
      return 'NoLongerOrphan';
    }
  } catch (e) {
    log.warn({ ...fields, err: describeError(e) }, 'orphan re-check failed; not deleted');
    return 'DeleteFailed';
  }
  try {
    // The resource itself, read again right before the delete: tags stripped, a keep mark added
    // or another owner named since the listing all win over the scan's view.
    const why = await recheck(deps, o);
    if (why) {
      log.info({ ...fields, why }, 'orphan changed since the listing; not deleted');
      return why;
    }
  } catch (e) {
    log.warn({ ...fields, err: describeError(e) }, 'orphan re-read failed; not deleted');
    return 'DeleteFailed';
  }
  try {
    deps.assertLeader?.(o.target ?? 'primary');
  } catch {
    return 'NotLeader';
  }
  try {
    const remove = registry.keeperOf(o.kind)?.owned.remove;
    if (!remove) throw new Error(`no deleter for kind ${o.kind}`);
    await remove(portsOf(deps.targets, o.target), o, deps.config);
  } catch (e) {
    if (errorCodeOf(e) === 'DependencyViolation') {
      // An instance we just terminated still holds the group: the next scan retries.
      log.info(fields, 'orphan still referenced; retrying next scan');
      return 'DependencyViolation';
    }
    if (errorCodeOf(e) === NOT_YET_CONSISTENT) {
      // A write's NotFound right after a change is not "gone": the next scan describes it again.
      log.info(fields, 'orphan not yet visible to the delete call; retrying next scan');
      return 'DeleteFailed';
    }
    log.warn({ ...fields, err: describeError(e) }, 'orphan deletion failed');
    return 'DeleteFailed';
  }
  log.info(fields, 'orphan deleted');
  return undefined;
}

/**
 * Reads one orphan again from its own service: undefined when it is still there, still ours for
 * this env, unmarked and naming the same owner; otherwise why it must not be deleted.
 */
async function recheck(deps: OrphanScannerDeps, o: LedgerOrphan): Promise<DecisionWhy | undefined> {
  const env = deps.config.MOLECULE_ENV;
  const ports = portsOf(deps.targets, o.target);
  const verdict = (found: { tags: Tags } | undefined) => rereadVerdict(o, env, found);
  switch (o.kind) {
    case 'ec2_instance': {
      const tags = { ...ownershipTags(env), ...(o.orgId ? { [TAG.orgId]: o.orgId } : {}) };
      const found = (await ports.ec2.describeInstances({ tags })).find((i) => i.id === o.externalId);
      return found && ['shutting-down', 'terminated'].includes(found.state)
        ? 'NoLongerOrphan'
        : verdict(found);
    }
    case 'security_group': {
      const groups = await ports.ec2.describeSecurityGroups(
        o.name ? { names: [o.name] } : { tags: ownershipTags(env) },
      );
      return verdict(groups.find((g) => g.id === o.externalId));
    }
    case 'secret': {
      const found = await ports.secrets.describeSecret(o.name ?? o.externalId).catch((e) => {
        if (isNotFound(e)) return undefined;
        throw e;
      });
      if (found?.deletedDate || (found && found.arn !== o.externalId)) return 'NoLongerOrphan';
      return verdict(found);
    }
    case 'cf_dns_record': {
      const records = ports.dns && o.name ? await ports.dns.listRecords({ name: o.name }) : [];
      const found = records.find((r) => r.id === o.externalId);
      if (!found || orgIdFromDnsComment(env, found.comment) !== o.orgId) return 'NoLongerOrphan';
      return dnsCommentKept(found.comment) ? 'KeepTag' : undefined;
    }
    case 'cf_tunnel': {
      const tunnels = ports.tunnels && o.name ? await ports.tunnels.listTunnels({ name: o.name }) : [];
      return tunnels.some((t) => t.id === o.externalId && !t.deletedAt) ? undefined : 'NoLongerOrphan';
    }
    default:
      return undefined;
  }
}

/** The ports of the target a resource was found in (Cloudflare objects: any target's carry them). */
function portsOf(targets: CloudTargets, target: TargetName | undefined): CloudPorts {
  const t = target ? targets.get(target) : targets.primary;
  if (!t) throw new Error(`target ${target} is not configured`);
  return targets.portsFor(t);
}
