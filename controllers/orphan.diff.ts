import {
  type DnsRecord,
  type Instance,
  OTHER_KIND,
  type ResourceKind,
  type SecretSummary,
  type SecurityGroup,
  type TaggedResource,
  type Tags,
  type Tunnel,
} from '../src/cloud/ports.js';
import type { TargetName } from '../src/cloud/targets.js';
import type { Config } from '../src/config.js';
import type { OwnerRow, Owners, StatusRef } from '../src/db/orphans.js';
import {
  dnsCommentKept,
  MANAGED_BY,
  orgIdFromDnsComment,
  orgIdFromSecretName,
  orgIdFromTunnelName,
  tunnelCnameTarget,
  workspaceBootstrapSecretName,
} from '../src/provisioning/names.js';
import { TAG } from '../src/provisioning/tags.js';
import { RESOURCE_KINDS, registry } from './index.js';

/**
 * Pure halves of the orphan scan (DESIGN §5): which listed resources are really there
 * ({@link confirmLive}), which of those have no live owner ({@link classify}), and which orphans
 * one scan may delete ({@link selectDeletions}), whether one is still an orphan on fresh rows
 * ({@link stillOrphaned}), and the scan's result. No I/O: orphan.listing.ts and controllers/orphan.ts
 * feed them.
 */

export type OrphanReason = 'OwnerGone' | 'Duplicate' | 'ForeignTunnel' | 'NoOwnerTag' | 'OtherTarget';

/** What one scan listed: the Tagging API plus the targeted reads that confirm it. */
export interface CloudListing {
  /** GetResources for ManagedBy + MOLECULE_ENV, every resource type; may hold ghosts. */
  tagged: TaggedResource[];
  /** DescribeInstances filtered by the ownership tags (terminated ones included). */
  instances: Instance[];
  /** DescribeSecurityGroups filtered by the ownership tags. */
  securityGroups: SecurityGroup[];
  /** Secrets by the env's name prefix, plus tagged ones described by ARN; purged secrets are absent. */
  secrets: SecretSummary[];
  /** Live tunnels named `molecule-<env>-*`; undefined when Cloudflare is not configured. */
  tunnels: Tunnel[] | undefined;
  /** DNS records whose comment carries our env marker; undefined when Cloudflare is not configured. */
  dnsRecords: DnsRecord[] | undefined;
}

/** A resource confirmed to exist, marked ours for this env, with the owner it names. */
export interface LiveResource {
  kind: ResourceKind;
  /** Instance / group / record / tunnel id, secret ARN, or the ARN of any other type. */
  externalId: string;
  /** Secret, group, tunnel or DNS name, when it has one. */
  name: string | undefined;
  orgId: string | undefined;
  workspaceId: string | undefined;
  /** Tagged `molecule-keep=true`: never deleted by the scan. */
  keep: boolean;
  /**
   * What it lives and dies with — an instance for its root volume, `env` for the env-wide
   * workspace bootstrap secret: counted as managed, never as its own orphan.
   */
  attachedTo: string | undefined;
  /** What a DNS record points at. */
  cnameTarget: string | undefined;
  /** The target (account and region) it was found in; undefined for Cloudflare objects. */
  target?: TargetName;
  details: Record<string, unknown>;
}

export interface ConfirmResult {
  resources: LiveResource[];
  /** Kinds this scan could see; ledger rows of other kinds are left alone. */
  scanned: ResourceKind[];
  /** Listed by the Tagging API but gone (or going) in their own service. */
  ghosts: number;
}

const GONE_STATES = new Set(['shutting-down', 'terminated']);

const isOurs = (tags: Tags, env: string) => tags[TAG.managedBy] === MANAGED_BY && tags[TAG.env] === env;

/** Kinds that live in Cloudflare, one account for every target: found by the primary's scan, in no target. */
export const CLOUDFLARE_KINDS: readonly ResourceKind[] = ['cf_tunnel', 'cf_dns_record'];

export function kindOfType(resourceType: string): ResourceKind {
  switch (resourceType) {
    case 'ec2:instance':
      return 'ec2_instance';
    case 'ec2:security-group':
      return 'security_group';
    case 'secretsmanager:secret':
      return 'secret';
    default:
      return 'other';
  }
}

/** Owner key from tags: what links a root volume to its instance. */
const ownerKey = (tags: Tags) =>
  `${tags[TAG.orgId] ?? ''}|${tags[TAG.workspaceId] ?? ''}|${tags[TAG.role] ?? ''}`;

/** A live resource marked ours by `tags` (owner and keep mark from them). */
const live = (
  kind: ResourceKind,
  externalId: string,
  name: string | undefined,
  tags: Tags,
  details: Record<string, unknown>,
  extra: Partial<LiveResource> = {},
): LiveResource => ({
  kind,
  externalId,
  name,
  orgId: tags[TAG.orgId] || undefined,
  workspaceId: tags[TAG.workspaceId] || undefined,
  keep: tags[TAG.keep] === 'true',
  attachedTo: undefined,
  cnameTarget: undefined,
  details,
  ...extra,
});

/**
 * Keeps what the Tagging API listed and the owning service confirms, plus our Cloudflare
 * objects. The Tagging API keeps listing terminated instances and deleted groups / secrets for
 * up to hours: a resource absent from its own service, shutting down, terminated or scheduled
 * for deletion is a ghost and counts nowhere. Anything not marked ours for `env` (another env,
 * tags stripped, a name of another shape) is dropped here and never counted or touched.
 */
export function confirmLive(listing: CloudListing, env: string): ConfirmResult {
  const instances = new Map(listing.instances.map((i) => [i.id, i]));
  const groups = new Map(listing.securityGroups.map((g) => [g.id, g]));
  const secrets = new Map(listing.secrets.map((s) => [s.arn, s]));
  const resources: LiveResource[] = [];
  let ghosts = 0;

  // Instances first: root volumes follow their instance's fate.
  const liveInstanceByOwner = new Map<string, string>();
  const listedInstanceOwners = new Set<string>();
  for (const r of listing.tagged) {
    if (r.resourceType !== 'ec2:instance') continue;
    const i = instances.get(r.resourceId);
    if (i && isOurs(i.tags, env)) listedInstanceOwners.add(ownerKey(i.tags));
    else if (isOurs(r.tags, env)) listedInstanceOwners.add(ownerKey(r.tags));
    if (!i || GONE_STATES.has(i.state) || !isOurs(i.tags, env)) continue;
    liveInstanceByOwner.set(ownerKey(i.tags), i.id);
  }

  for (const r of listing.tagged) {
    const kind = kindOfType(r.resourceType);
    if (kind === 'ec2_instance') {
      const i = instances.get(r.resourceId);
      if (!i || GONE_STATES.has(i.state)) {
        ghosts++;
        continue;
      }
      if (!isOurs(i.tags, env)) continue;
      resources.push(
        live(kind, i.id, i.tags[TAG.name], i.tags, {
          state: i.state,
          instanceType: i.instanceType,
          tags: i.tags,
        }),
      );
    } else if (kind === 'security_group') {
      const g = groups.get(r.resourceId);
      if (!g) {
        ghosts++;
        continue;
      }
      if (!isOurs(g.tags, env)) continue;
      resources.push(live(kind, g.id, g.name, g.tags, { vpcId: g.vpcId, tags: g.tags }));
    } else if (kind === 'secret') {
      const s = secrets.get(r.arn);
      if (!s || s.deletedDate) {
        ghosts++;
        continue;
      }
      const tags = Object.keys(s.tags).length > 0 ? s.tags : r.tags;
      if (!isOurs(tags, env)) continue;
      if (s.name === workspaceBootstrapSecretName(env)) {
        resources.push(live(kind, s.arn, s.name, tags, { tags }, { attachedTo: 'env' }));
        continue;
      }
      const orgId = tags[TAG.orgId] || orgIdFromSecretName(env, s.name);
      resources.push(live(kind, s.arn, s.name, tags, { tags }, { orgId }));
    } else {
      if (!isOurs(r.tags, env)) continue;
      let attachedTo: string | undefined;
      if (r.resourceType === 'ec2:volume') {
        // NOTE: we launch with DeleteOnTermination, and there is no port to describe volumes.
        // A volume whose owner has an instance listed is that instance's root volume: it is
        // live while the instance is, and a ghost once the instance is (the Tagging API keeps
        // a terminated instance longer than the volume it took down).
        const key = ownerKey(r.tags);
        attachedTo = liveInstanceByOwner.get(key);
        if (!attachedTo && listedInstanceOwners.has(key)) {
          ghosts++;
          continue;
        }
      }
      resources.push(
        live(
          kind,
          r.arn,
          r.tags[TAG.name],
          r.tags,
          { resourceType: r.resourceType, tags: r.tags },
          { attachedTo },
        ),
      );
    }
  }

  const scanned: ResourceKind[] = ['ec2_instance', 'security_group', 'secret', 'other'];
  if (listing.tunnels) {
    scanned.push('cf_tunnel');
    for (const t of listing.tunnels) {
      const orgId = orgIdFromTunnelName(env, t.name);
      // A prefix match alone could be another env (`molecule-prod-eu-…` under `molecule-prod-`).
      if (!orgId || t.deletedAt) continue;
      resources.push(live('cf_tunnel', t.id, t.name, {}, { status: t.status }, { orgId }));
    }
  }
  if (listing.dnsRecords) {
    scanned.push('cf_dns_record');
    const keptTargets = new Set<string>();
    for (const d of listing.dnsRecords) {
      const orgId = orgIdFromDnsComment(env, d.comment);
      if (!orgId) continue;
      const cnameTarget = d.type === 'CNAME' ? d.content : undefined;
      const keep = dnsCommentKept(d.comment);
      if (keep && cnameTarget) keptTargets.add(cnameTarget);
      resources.push(
        live(
          'cf_dns_record',
          d.id,
          d.name,
          {},
          { type: d.type, content: d.content },
          { orgId, cnameTarget, keep },
        ),
      );
    }
    // A tunnel is kept by a kept record that points at it.
    for (const r of resources)
      if (r.kind === 'cf_tunnel' && keptTargets.has(tunnelCnameTarget(r.externalId))) r.keep = true;
  }
  return { resources, scanned, ghosts };
}

export type { OwnerRow, Owners, StatusRef };

export interface Orphan {
  kind: ResourceKind;
  externalId: string;
  reason: OrphanReason;
  ownerKind: 'org' | 'workspace' | undefined;
  ownerId: string | undefined;
  orgId: string | undefined;
  name: string | undefined;
  keep: boolean;
  details: Record<string, unknown>;
  /** Where it was found (see {@link LiveResource.target}). */
  target?: TargetName;
}

export interface Classification {
  orphans: Orphan[];
  /** Every confirmed live resource that is ours, orphans included, by kind (all kinds present). */
  managed: Record<ResourceKind, number>;
}

/** Which status row records the id of each kind, and under which key (from the registry). */
export const STATUS_IDS: Partial<Record<ResourceKind, { controller: string; key: string }>> =
  Object.fromEntries(
    registry.kinds.map((kind) => {
      const keeper = registry.keeperOf(kind)!;
      return [kind, { controller: keeper.controller.name, key: keeper.owned.statusKey }];
    }),
  );

export const zeroByKind = (): Record<ResourceKind, number> =>
  Object.fromEntries(RESOURCE_KINDS.map((k) => [k, 0])) as Record<ResourceKind, number>;

type OwnerState = 'live' | 'deleting' | 'gone';

function ownerState(
  owners: { orgs: Map<string, OwnerRow>; workspaces: Map<string, OwnerRow> },
  r: LiveResource,
) {
  const org = (id: string): OwnerState => {
    const row = owners.orgs.get(id);
    if (!row || row.purgedAt) return 'gone';
    return row.deletionRequestedAt ? 'deleting' : 'live';
  };
  if (r.workspaceId) {
    const ws = owners.workspaces.get(r.workspaceId);
    let state: OwnerState = !ws || ws.purgedAt ? 'gone' : ws.deletionRequestedAt ? 'deleting' : 'live';
    if (state !== 'gone' && ws?.orgId) {
      const o = org(ws.orgId);
      if (o !== 'live') state = o;
    }
    const orgId = ws?.orgId ?? r.orgId;
    const target = orgId ? owners.orgs.get(orgId)?.target : undefined;
    return { kind: 'workspace' as const, id: r.workspaceId, orgId, state, target };
  }
  if (r.orgId) {
    const target = owners.orgs.get(r.orgId)?.target;
    return { kind: 'org' as const, id: r.orgId, orgId: r.orgId, state: org(r.orgId), target };
  }
  return undefined;
}

/**
 * Decides which live resources are orphans:
 * - `NoOwnerTag`: ours by tags but naming no owner (counted, never deleted);
 * - `OwnerGone`: the org / workspace row is missing or purged;
 * - `Duplicate`: the owner is live and its status row (no create pending) records another
 *   resource of this kind that is itself live, so the owner uses that one, not this;
 * - `ForeignTunnel`: a CNAME with the owner's comment pointing at a tunnel other than the owner's
 *   recorded one, and not the record the owner's status tracks (drift there is the tunnel
 *   controller's to fix);
 * - `OtherTarget`: an AWS resource of a live owner found in a target (account) other than the
 *   one its org is placed in: the owner never uses it.
 * An owner being deleted is never an orphan source: its cascade is removing the resources.
 */
export function classify(resources: LiveResource[], owners: Owners, statuses: StatusRef[]): Classification {
  const index = {
    orgs: new Map(owners.orgs.map((o) => [o.id, o])),
    workspaces: new Map(owners.workspaces.map((w) => [w.id, w])),
  };
  const status = new Map(statuses.map((s) => [`${s.controller}:${s.ownerId}`, s]));
  const liveIds = new Map<ResourceKind, Set<string>>();
  for (const r of resources) {
    const set = liveIds.get(r.kind) ?? new Set<string>();
    set.add(r.externalId);
    liveIds.set(r.kind, set);
  }

  const managed = zeroByKind();
  const orphans: Orphan[] = [];
  for (const r of resources) {
    managed[r.kind]++;
    if (r.attachedTo) continue;
    const owner = ownerState(index, r);
    const orphan = (reason: OrphanReason, details: Record<string, unknown> = {}) =>
      orphans.push({
        kind: r.kind,
        externalId: r.externalId,
        reason,
        ownerKind: owner?.kind,
        ownerId: owner?.id,
        orgId: owner?.orgId,
        name: r.name,
        keep: r.keep,
        details: { ...r.details, ...details },
        ...(r.target ? { target: r.target } : {}),
      });
    if (!owner) {
      orphan('NoOwnerTag');
      continue;
    }
    if (owner.state === 'gone') {
      orphan('OwnerGone');
      continue;
    }
    if (owner.state === 'deleting') continue;
    if (r.target && owner.target && r.target !== owner.target) {
      orphan('OtherTarget', { ownerTarget: owner.target });
      continue;
    }

    const ids = STATUS_IDS[r.kind];
    const row = ids ? status.get(`${ids.controller}:${owner.id}`) : undefined;
    if (!ids || !row || row.pending) continue;
    const recorded = row.externalIds[ids.key];
    if (r.kind === 'cf_dns_record') {
      const tunnelId = row.externalIds.tunnelId;
      if (
        tunnelId &&
        r.cnameTarget !== undefined &&
        r.cnameTarget !== tunnelCnameTarget(tunnelId) &&
        recorded !== r.externalId
      ) {
        orphan('ForeignTunnel', { ownerTunnelId: tunnelId });
        continue;
      }
    }
    if (recorded && recorded !== r.externalId && liveIds.get(r.kind)?.has(recorded)) {
      orphan('Duplicate', { ownerUses: recorded });
    }
  }
  return { orphans, managed };
}

/** An orphan with its ledger history. */
export interface OpenOrphan extends Orphan {
  /** Start of the current continuous sighting (a resolved orphan that reappears starts over). */
  firstSeen: Date;
}

export type SkipWhy = 'NoOwnerTag' | 'KeepTag' | 'NoDeleter' | 'FractionGuard' | 'InGrace' | 'PerScanCap';

export interface DeletionPolicy {
  now: number;
  policy: 'report' | 'delete';
  graceMs: number;
  maxDeletions: number;
  maxFraction: number;
  /** Every live resource that is ours, orphans included. */
  managedTotal: number;
}

export interface DeletionPlan<O extends OpenOrphan = OpenOrphan> {
  /** In dependency order. */
  delete: O[];
  skipped: { orphan: O; why: SkipWhy }[];
  /** Orphans exceed maxFraction of managed resources: nothing is deleted. */
  blocked: boolean;
}

/**
 * Deletion order: what holds a reference goes first (instances before their security groups,
 * DNS records before the tunnels they point at): the reverse of the registry's order.
 */
export const DELETE_ORDER = Object.fromEntries(
  [...registry.deletionOrder(), OTHER_KIND].map((kind, i) => [kind, i]),
) as Record<ResourceKind, number>;

/** Kinds the scan knows how to delete; anything else is reported only. */
const DELETABLE = new Set<ResourceKind>(registry.kinds.filter((k) => registry.keeperOf(k)?.owned.remove));

/**
 * Picks this scan's deletions under ORPHAN_POLICY=delete: orphans seen continuously for the
 * grace period, oldest first within dependency order, at most `maxDeletions`. Nothing at all
 * when open orphans exceed `maxFraction` of managed resources: a database restored from an old
 * backup would otherwise read the fleet as orphaned and wipe it. Report policy decides nothing.
 */
export function selectDeletions<O extends OpenOrphan>(open: O[], p: DeletionPolicy): DeletionPlan<O> {
  if (p.policy !== 'delete' || open.length === 0) return { delete: [], skipped: [], blocked: false };
  const blocked = open.length > p.maxFraction * p.managedTotal;
  const skipped: { orphan: O; why: SkipWhy }[] = [];
  const candidates: O[] = [];
  for (const o of open) {
    const why: SkipWhy | undefined =
      o.reason === 'NoOwnerTag'
        ? 'NoOwnerTag'
        : o.keep
          ? 'KeepTag'
          : !DELETABLE.has(o.kind)
            ? 'NoDeleter'
            : blocked
              ? 'FractionGuard'
              : o.firstSeen.getTime() > p.now - p.graceMs
                ? 'InGrace'
                : undefined;
    if (why) skipped.push({ orphan: o, why });
    else candidates.push(o);
  }
  candidates.sort(
    (a, b) =>
      DELETE_ORDER[a.kind] - DELETE_ORDER[b.kind] ||
      a.firstSeen.getTime() - b.firstSeen.getTime() ||
      a.externalId.localeCompare(b.externalId),
  );
  const cap = Math.max(0, p.maxDeletions);
  for (const o of candidates.slice(cap)) skipped.push({ orphan: o, why: 'PerScanCap' });
  return { delete: candidates.slice(0, cap), skipped, blocked };
}

/** Open orphans and the age of the oldest, per kind (every kind present). */
export function orphanGauges(open: OpenOrphan[], now: number) {
  const counts = zeroByKind();
  const oldestSeconds = zeroByKind();
  for (const o of open) {
    counts[o.kind]++;
    oldestSeconds[o.kind] = Math.max(
      oldestSeconds[o.kind],
      Math.max(0, (now - o.firstSeen.getTime()) / 1000),
    );
  }
  return { counts, oldestSeconds };
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

/** The result of a scan of `target` begun at `started` that has found nothing yet (and is not ok). */
export function emptyScanResult(
  target: TargetName,
  started: number,
  policy: Config['ORPHAN_POLICY'],
): ScanResult {
  return {
    target,
    ok: false,
    at: new Date(started).toISOString(),
    durationMs: 0,
    policy,
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

/** The controllers whose status rows record the ids of the kinds the scan classifies. */
export const STATUS_CONTROLLERS = [...new Set(Object.values(STATUS_IDS).map((s) => s.controller))];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * What to read again before deleting orphan `o`: the live resources of its kind, and the owner
 * ids (org, workspace) those that are `o` itself name — only UUIDs can be rows.
 */
export function recheckScope(o: Orphan, resources: LiveResource[]) {
  const sameKind = resources.filter((r) => r.kind === o.kind);
  const self = sameKind.filter((r) => r.externalId === o.externalId);
  const ownerIds = [...new Set(self.flatMap((r) => [r.orgId, r.workspaceId]))].filter(
    (v): v is string => v !== undefined && UUID.test(v),
  );
  return { sameKind, ownerIds };
}

/** Is `o` still an orphan, for the same reason, against freshly read owner and status rows? */
export function stillOrphaned(
  o: Orphan,
  sameKind: LiveResource[],
  owners: Owners,
  statuses: StatusRef[],
): boolean {
  const again = classify(sameKind, owners, statuses);
  return again.orphans.some((x) => x.externalId === o.externalId && x.reason === o.reason);
}

/**
 * What re-reading an AWS orphan (instance, group, secret) from its own service says: undefined
 * when it is still marked ours for `env`, names the same owner and carries no keep mark (delete
 * it); otherwise why not. `found` is undefined when the service no longer has it.
 */
export function rereadVerdict(
  o: Orphan,
  env: string,
  found: { tags: Tags } | undefined,
): DecisionWhy | undefined {
  const tags = found?.tags;
  const sameOwner =
    tags !== undefined &&
    isOurs(tags, env) &&
    (tags[TAG.orgId] || undefined) === (o.orgId ?? undefined) &&
    (o.ownerKind !== 'workspace' || tags[TAG.workspaceId] === o.ownerId);
  if (!sameOwner) return 'NoLongerOrphan';
  return tags[TAG.keep] === 'true' ? 'KeepTag' : undefined;
}
