import type { CloudPorts, ResourceKind, Tags } from '../src/cloud/ports.js';
import type { CloudTargets, Target, TargetName } from '../src/cloud/targets.js';
import type { Config } from '../src/config.js';
import type { Database } from '../src/db/client.js';
import type { Fence } from '../src/db/fence.js';
import { OrphanLedger, type Sighted } from '../src/db/orphans.js';
import type { Logger } from '../src/observability/logger.js';
import type { Metrics } from '../src/observability/metrics.js';
import {
  dnsCommentKept,
  dnsCommentMarker,
  MANAGED_BY,
  orgIdFromDnsComment,
  tunnelNamePrefix,
} from '../src/provisioning/names.js';
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
import { RESOURCE_KINDS, registry } from './index.js';
import {
  CLOUDFLARE_KINDS,
  type CloudListing,
  classify,
  confirmLive,
  type LiveResource,
  type OpenOrphan,
  type Orphan,
  orphanGauges,
  type SkipWhy,
  STATUS_IDS,
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

/** Why a deletion did not happen, as written to the audit trail. */
export type DecisionWhy = SkipWhy | 'DependencyViolation' | 'DeleteFailed' | 'NoLongerOrphan';

export interface ScanResult {
  /** The target scanned (the primary's scan also covers Cloudflare). */
  target: TargetName;
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

function emptyResult(deps: OrphanScannerDeps, target: TargetName, started: number): ScanResult {
  return {
    target,
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
  let live: Awaited<ReturnType<typeof listLive>>;
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

/**
 * Everything ours that is really there in one target's account, and — for the primary's scan —
 * in Cloudflare (one account for every target). Any failed listing fails the whole scan: a
 * partial listing is not "absent".
 */
async function listLive(
  targets: CloudTargets,
  target: Target,
  env: string,
): Promise<ReturnType<typeof confirmLive> & { scannedKinds: ResourceKind[] }> {
  const [aws, cloudflare] = await Promise.all([
    listAws(target.aws, env),
    target.name === 'primary' ? listCloudflare(targets, env) : undefined,
  ]);
  const confirmed = confirmLive(aws, env);
  const all = {
    ...confirmed,
    resources: confirmed.resources.map((r): LiveResource => ({ ...r, target: target.name })),
  };
  if (cloudflare) {
    const cf = confirmLive(cloudflare, env);
    all.resources.push(...cf.resources);
    for (const k of cf.scanned) if (!all.scanned.includes(k)) all.scanned.push(k);
  }
  // Kinds whose gauges this scan sets: everything it could see, and `other`.
  return { ...all, scannedKinds: RESOURCE_KINDS.filter((k) => all.scanned.includes(k)) };
}

const wrap = (what: string) => (cause: unknown) => {
  throw new Error(what, { cause });
};

const NOTHING: Pick<CloudListing, 'tagged' | 'instances' | 'securityGroups' | 'secrets'> = {
  tagged: [],
  instances: [],
  securityGroups: [],
  secrets: [],
};

/** Our Cloudflare objects; none when Cloudflare is not configured. */
async function listCloudflare(targets: CloudTargets, env: string): Promise<CloudListing> {
  const cf = targets.cloudflare;
  if (!cf) return { ...NOTHING, tunnels: undefined, dnsRecords: undefined };
  const [tunnels, dnsRecords] = await Promise.all([
    cf.tunnels.listTunnels({ namePrefix: tunnelNamePrefix(env) }).catch(wrap('list tunnels')),
    cf.dns.listRecords({ commentContains: dnsCommentMarker(env) }).catch(wrap('list dns records')),
  ]);
  return { ...NOTHING, tunnels, dnsRecords };
}

/** One target's AWS resources: the Tagging API, and the describes that confirm what it lists. */
async function listAws(aws: CloudTargets['primary']['aws'], env: string): Promise<CloudListing> {
  const tags = ownershipTags(env);
  const secretPrefix = `molecule/${env}/`;
  const [tagged, instances, securityGroups, secrets] = await Promise.all([
    aws.tagging.getResources(tags).catch(wrap('list tagged resources')),
    aws.ec2.describeInstances({ tags }).catch(wrap('describe instances')),
    aws.ec2.describeSecurityGroups({ tags }).catch(wrap('describe security groups')),
    aws.secrets.listSecrets(secretPrefix).catch(wrap('list secrets')),
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
      secrets.push(await aws.secrets.describeSecret(r.arn));
    } catch (e) {
      if (!isNotFound(e)) throw new Error('describe tagged secret', { cause: e });
    }
  }
  return { tagged, instances, securityGroups, secrets, tunnels: undefined, dnsRecords: undefined };
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
  const sameOwner = (tags: Tags) =>
    tags[TAG.managedBy] === MANAGED_BY &&
    tags[TAG.env] === env &&
    (tags[TAG.orgId] || undefined) === (o.orgId ?? undefined) &&
    (o.ownerKind !== 'workspace' || tags[TAG.workspaceId] === o.ownerId);
  const verdict = (found: { tags: Tags } | undefined): DecisionWhy | undefined => {
    if (!found || !sameOwner(found.tags)) return 'NoLongerOrphan';
    return found.tags[TAG.keep] === 'true' ? 'KeepTag' : undefined;
  };
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

/** The orphans, less secrets that DescribeSecret finds gone or scheduled for deletion. */
async function confirmSecrets(ports: CloudPorts, orphans: Orphan[]): Promise<Orphan[]> {
  const out: Orphan[] = [];
  for (const o of orphans) {
    if (o.kind === 'secret') {
      const found = await ports.secrets.describeSecret(o.name ?? o.externalId).catch((e) => {
        if (isNotFound(e)) return undefined;
        throw e;
      });
      if (!found || found.deletedDate || found.arn !== o.externalId) continue;
    }
    out.push(o);
  }
  return out;
}

/** The ports of the target a resource was found in (Cloudflare objects: any target's carry them). */
function portsOf(targets: CloudTargets, target: TargetName | undefined): CloudPorts {
  const t = target ? targets.get(target) : targets.primary;
  if (!t) throw new Error(`target ${target} is not configured`);
  return targets.portsFor(t);
}

const STATUS_CONTROLLERS = [...new Set(Object.values(STATUS_IDS).map((s) => s.controller))];

/** Classifies one orphan again against freshly read owner and status rows. */
async function stillOrphan(
  ledger: OrphanLedger,
  o: LedgerOrphan,
  resources: LiveResource[],
): Promise<boolean> {
  const sameKind = resources.filter((r) => r.kind === o.kind);
  const self = sameKind.filter((r) => r.externalId === o.externalId);
  const ids = [...new Set(self.flatMap((r) => [r.orgId, r.workspaceId]))].filter(
    (v): v is string => v !== undefined && UUID.test(v),
  );
  const [owners, statuses] = await Promise.all([
    ledger.owners(ids),
    ledger.statusRefs(STATUS_CONTROLLERS, ids),
  ]);
  const again = classify(sameKind, owners, statuses);
  return again.orphans.some((x) => x.externalId === o.externalId && x.reason === o.reason);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
