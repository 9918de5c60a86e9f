import { createHash } from 'node:crypto';
import type { OwnerRef } from '../db/desired.js';
import {
  dnsCommentMarker,
  orgIdFromDnsComment,
  orgIdFromSecretName,
  orgIdFromTunnelName,
  secretNamePrefix,
  tunnelNamePrefix,
} from '../provisioning/names.js';
import { ownershipTags, TAG } from '../provisioning/tags.js';
import { isNotFound } from '../runtime/errors.js';
import { sameJson } from '../runtime/json.js';
import {
  type CloudflarePorts,
  type CloudPorts,
  type DnsRecord,
  EC2_MAX_FILTER_VALUES,
  type Instance,
  type InstanceFilter,
  type RawListing,
  type ResourceKind,
  type SecretSummary,
  type SecurityGroup,
  type Tunnel,
} from './ports.js';

/**
 * Read access to an owner's resources. Two implementations: {@link LiveView} asks the cloud
 * with targeted, tag- or name-filtered calls (event-driven reconciles); {@link Inventory} answers
 * from one paginated listing of everything ours (periodic resync), so a steady-state resync
 * costs pages, not objects.
 */
export interface CloudView {
  readonly source: 'live' | 'inventory';
  /** Our instances of this owner in any state (recently terminated ones included). */
  instances(owner: OwnerRef, orgId: string): Promise<Instance[]>;
  /** Security groups with this deterministic name (names are unique per VPC). */
  securityGroups(name: string): Promise<SecurityGroup[]>;
  /** The org's bootstrap secret(s) by name, including one scheduled for deletion. */
  secrets(name: string): Promise<SecretSummary[]>;
  /** Live tunnels with this exact name. */
  tunnels(name: string): Promise<Tunnel[]>;
  /** DNS records with this exact name. */
  dnsRecords(name: string): Promise<DnsRecord[]>;
}

function ownerTagFilter(owner: OwnerRef, orgId: string): Record<string, string> {
  return owner.kind === 'org'
    ? { [TAG.orgId]: orgId, [TAG.role]: 'tenant' }
    : { [TAG.orgId]: orgId, [TAG.workspaceId]: owner.id };
}

/** Targeted reads, one small filtered call per question. */
export class LiveView implements CloudView {
  readonly source = 'live' as const;
  constructor(
    private readonly ports: CloudPorts,
    private readonly env: string,
    private readonly vpcId: string | undefined,
  ) {}

  instances(owner: OwnerRef, orgId: string) {
    return this.ports.ec2.describeInstances({
      tags: { ...ownershipTags(this.env), ...ownerTagFilter(owner, orgId) },
    });
  }

  async securityGroups(name: string) {
    // By name within the VPC: it finds the group even if its tags were stripped out of band.
    return this.ports.ec2.describeSecurityGroups({
      names: [name],
      ...(this.vpcId ? { vpcId: this.vpcId } : {}),
    });
  }

  async secrets(name: string) {
    // DescribeSecret, not ListSecrets: the list "might not reflect changes from the last five
    // minutes", and a secret it does not show yet must not be created a second time.
    try {
      const found = await this.ports.secrets.describeSecret(name);
      return found.name === name ? [found] : [];
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
  }

  tunnels(name: string) {
    if (!this.ports.tunnels) return Promise.resolve([]);
    return this.ports.tunnels.listTunnels({ name });
  }

  dnsRecords(name: string) {
    if (!this.ports.dns) return Promise.resolve([]);
    return this.ports.dns.listRecords({ name });
  }
}

export interface InventoryCounts {
  instances: number;
  securityGroups: number;
  secrets: number;
  tunnels: number;
  dnsRecords: number;
}

/** The resources a resync lists for the whole env at once: one or two per org, and not filterable by org. */
export interface FleetResources extends CloudflareResources {
  secrets: SecretSummary[];
}

/** Our Cloudflare objects: one account for every target, so listed once per resync. */
export interface CloudflareResources {
  tunnels: Tunnel[];
  dnsRecords: DnsRecord[];
}

/** What a listing should cover: the kinds the enabled controllers keep (all when absent). */
export interface ListingScope {
  kinds?: ReadonlySet<ResourceKind>;
}

const wanted = (scope: ListingScope, kind: ResourceKind) => !scope.kinds || scope.kinds.has(kind);

/** Lists the env's tunnels and DNS records, paginated and filtered to ours. */
export async function listCloudflare(
  cf: CloudflarePorts | undefined,
  env: string,
  scope: ListingScope = {},
): Promise<CloudflareResources> {
  const [tunnels, dnsRecords] = await Promise.all([
    cf && wanted(scope, 'cf_tunnel') ? cf.tunnels.listTunnels({ namePrefix: tunnelNamePrefix(env) }) : [],
    cf && wanted(scope, 'cf_dns_record')
      ? cf.dns.listRecords({ commentContains: dnsCommentMarker(env) })
      : [],
  ]);
  return {
    tunnels: tunnels.filter((t) => orgIdFromTunnelName(env, t.name)),
    dnsRecords: dnsRecords.filter((r) => orgIdFromDnsComment(env, r.comment)),
  };
}

/** The EC2 resources listed for a set of orgs (or for the whole env). */
export interface Ec2Resources {
  instances: Instance[];
  securityGroups: SecurityGroup[];
}

/**
 * The env's secrets, tunnels and DNS records, listed once at the start of a resync and indexed
 * by name. Instances and security groups, four or more per org and most of a fleet's memory,
 * are listed per batch of orgs instead ({@link FleetInventory.forOrgs}): a resync holds one or
 * two batches of them at a time, not the whole fleet.
 */
export class FleetInventory {
  readonly all: FleetResources;
  readonly secretsByName = new Map<string, SecretSummary[]>();
  readonly tunnelsByName = new Map<string, Tunnel[]>();
  readonly recordsByName = new Map<string, DnsRecord[]>();

  private constructor(
    private readonly ports: CloudPorts,
    private readonly env: string,
    private readonly scope: ListingScope,
    all: FleetResources,
  ) {
    this.all = all;
    for (const s of all.secrets) push(this.secretsByName, s.name, s);
    for (const t of all.tunnels) push(this.tunnelsByName, t.name, t);
    for (const r of all.dnsRecords) push(this.recordsByName, r.name, r);
  }

  /**
   * Lists one target's secrets, paginated and filtered to ours, with our Cloudflare objects
   * (listed here unless `cloudflare` was listed once already for every target).
   */
  static async list(
    ports: CloudPorts,
    env: string,
    options: ListingScope & { cloudflare?: CloudflareResources; previous?: FleetInventory } = {},
  ): Promise<FleetInventory> {
    const [secrets, cloudflare] = await Promise.all([
      wanted(options, 'secret') ? ports.secrets.listSecrets(secretNamePrefix(env)) : [],
      options.cloudflare ?? listCloudflare(cloudflareOf(ports), env, options),
    ]);
    const all: FleetResources = {
      secrets: secrets.filter((s) => orgIdFromSecretName(env, s.name)),
      ...cloudflare,
    };
    const previous = options.previous?.env === env ? options.previous : undefined;
    // Most resyncs list exactly what the last one did: then the last listing, its indexes and
    // digests stand, and what was just decoded dies young.
    if (
      previous &&
      sameEntries(previous.all.secrets, all.secrets) &&
      sameEntries(previous.all.tunnels, all.tunnels) &&
      sameEntries(previous.all.dnsRecords, all.dnsRecords)
    )
      return previous;
    // The scope alone: `options` also holds the previous listing, which must not be kept.
    const fleet = new FleetInventory(ports, env, { kinds: options.kinds }, all);
    fleet.previous = previous;
    return fleet;
  }

  /**
   * The inventory of these orgs: their instances and security groups, listed now with the
   * OrgID tag filter (at most {@link MAX_ORGS_PER_LISTING} orgs: EC2 takes 200 filter values per
   * call), answering the rest from this fleet-wide listing. A page of EC2 holds 1,000 objects, so
   * listing by batch costs about as many calls as listing everything at once.
   */
  async forOrgs(orgIds: string[]): Promise<Inventory> {
    return (await this.listOrgs(orgIds)).inventory();
  }

  /**
   * {@link forOrgs} in two steps: the listing's pages are fetched now, with a digest of what
   * they list; they are decoded into an inventory only when asked. `digest` is undefined when
   * the EC2 port cannot keep pages (then nothing may be concluded from it). `keep: false` is for
   * a caller that expects the digest unchanged: the pages are let go, and an inventory asked for
   * all the same lists again.
   */
  async listOrgs(orgIds: string[], options: { keep?: boolean } = {}): Promise<OrgsListing> {
    if (orgIds.length > MAX_ORGS_PER_LISTING)
      throw new RangeError(`${orgIds.length} orgs in one listing; at most ${MAX_ORGS_PER_LISTING}`);
    const none: RawListing<never> = { digest: '', items: async () => [] };
    if (orgIds.length === 0)
      return {
        digest: 'none',
        inventory: async () => new Inventory(this, { instances: [], securityGroups: [] }),
      };
    const filter = { tags: ownershipTags(this.env), tagIn: { key: TAG.orgId, values: orgIds } };
    const ec2 = this.ports.ec2;
    if (!ec2.describeInstancePages || !ec2.describeSecurityGroupPages) {
      const inventory = this.forEc2(filter);
      return { digest: undefined, inventory: () => inventory };
    }
    const [instances, securityGroups] = await Promise.all([
      wanted(this.scope, 'ec2_instance') ? ec2.describeInstancePages(filter, options) : none,
      wanted(this.scope, 'security_group') ? ec2.describeSecurityGroupPages(filter, options) : none,
    ]);
    return {
      get digest() {
        const [i, g] = [instances.digest, securityGroups.digest];
        return i === undefined || g === undefined ? undefined : `${i}/${g}`;
      },
      inventory: async () => {
        const [i, g] = await Promise.all([instances.items(), securityGroups.items()]);
        return new Inventory(this, { instances: i, securityGroups: g });
      },
    };
  }

  private async forEc2(filter: InstanceFilter): Promise<Inventory> {
    const [instances, securityGroups] = await Promise.all([
      wanted(this.scope, 'ec2_instance') ? this.ports.ec2.describeInstances(filter) : [],
      wanted(this.scope, 'security_group') ? this.ports.ec2.describeSecurityGroups(filter) : [],
    ]);
    return new Inventory(this, { instances, securityGroups });
  }

  /**
   * A digest of these orgs' secrets, tunnels and DNS records as listed: it changes when any of
   * them does (a resync compares it with the one of its last reconciles).
   */
  entriesDigest(orgIds: readonly string[]): string {
    if (!this.entries) this.digestEntries();
    const entries = this.entries!;
    // One update of the batch's text: an update per org cost more than the hashing.
    let text = '';
    for (const id of orgIds) text += `${id}:${entries.get(id) ?? ''};`;
    return createHash('sha256').update(text).digest('base64');
  }

  /** Each org's entries, in listing order: a kind letter, then the object. */
  private groups: Map<string, unknown[]> | undefined;
  /** A digest of each org's entries, of their JSON (every field: whatever a controller reads is in it). */
  private entries: Map<string, string> | undefined;
  /** The last resync's listing, whose digests are reused for orgs whose entries are unchanged. */
  private previous: FleetInventory | undefined;

  private digestEntries(): void {
    const before = this.previous;
    this.previous = undefined; // one resync back, no further
    const groups = new Map<string, unknown[]>();
    const add = (orgId: string | undefined, kind: string, o: unknown) => {
      if (!orgId) return;
      push(groups, orgId, kind);
      groups.get(orgId)!.push(o);
    };
    for (const x of this.all.secrets) add(orgIdFromSecretName(this.env, x.name), 's', x);
    for (const x of this.all.tunnels) add(orgIdFromTunnelName(this.env, x.name), 't', x);
    for (const x of this.all.dnsRecords) add(orgIdFromDnsComment(this.env, x.comment), 'd', x);
    const digests = new Map<string, string>();
    for (const [orgId, list] of groups) {
      const was = before?.groups?.get(orgId);
      const known = was && sameEntries(was, list) ? before!.entries!.get(orgId) : undefined;
      if (known !== undefined) {
        digests.set(orgId, known);
        continue;
      }
      // Each JSON is hashed as soon as it is made: the strings die young.
      const hash = createHash('sha256');
      for (const e of list) hash.update(typeof e === 'string' ? e : JSON.stringify(e));
      digests.set(orgId, hash.digest('base64'));
    }
    this.groups = groups;
    this.entries = digests;
  }

  /**
   * An inventory of the fleet-wide listing alone, for owners whose instances and groups were
   * not listed: those are read live from `ec2` if anything asks.
   */
  unlisted(ec2: CloudView): Inventory {
    return new Inventory(this, { instances: [], securityGroups: [] }, ec2);
  }
}

/** One batch's EC2 listing, fetched but not yet decoded (see {@link FleetInventory.listOrgs}). */
export interface OrgsListing {
  /** Of the pages (ports.ts RawListing): read it again after {@link inventory}, which may clear it. */
  readonly digest: string | undefined;
  inventory(): Promise<Inventory>;
}

/** Orgs whose EC2 resources one listing call can ask for: EC2's 200 filter values, less the ownership tags. */
export const MAX_ORGS_PER_LISTING = EC2_MAX_FILTER_VALUES - Object.keys(ownershipTags('')).length;

/**
 * Everything ours in this env that a resync reconciles a batch of owners against, indexed by
 * owner and name: the fleet-wide listing plus the instances and groups listed for the batch's
 * orgs (or for the whole env: {@link Inventory.build}). An owner outside the orgs it was listed
 * for reads as having no instance or group; that, like anything else read here, is never acted
 * on: a reconcile that would act re-reads live first (runtime/reconciler.ts).
 */
export class Inventory implements CloudView {
  readonly source = 'inventory' as const;
  private readonly instancesByOwner = new Map<string, Instance[]>();
  private readonly groupsByName = new Map<string, SecurityGroup[]>();
  readonly counts: InventoryCounts;

  /**
   * @param unlisted where instances and groups are read instead, when they were not listed
   */
  constructor(
    private readonly fleet: FleetInventory,
    ec2: Ec2Resources,
    private readonly unlisted?: CloudView,
  ) {
    for (const i of ec2.instances) {
      const key = i.tags[TAG.workspaceId]
        ? `workspace:${i.tags[TAG.workspaceId]}`
        : i.tags[TAG.role] === 'tenant' && i.tags[TAG.orgId]
          ? `org:${i.tags[TAG.orgId]}`
          : undefined;
      if (key) push(this.instancesByOwner, key, i);
    }
    for (const g of ec2.securityGroups) push(this.groupsByName, g.name.toLowerCase(), g);
    this.counts = {
      instances: ec2.instances.length,
      securityGroups: ec2.securityGroups.length,
      secrets: fleet.all.secrets.length,
      tunnels: fleet.all.tunnels.length,
      dnsRecords: fleet.all.dnsRecords.length,
    };
  }

  /** Everything ours in the env, each resource type listed once (`plan`, which reads it all). */
  static async build(ports: CloudPorts, env: string): Promise<Inventory> {
    const tags = ownershipTags(env);
    const [fleet, instances, securityGroups] = await Promise.all([
      FleetInventory.list(ports, env),
      ports.ec2.describeInstances({ tags }),
      ports.ec2.describeSecurityGroups({ tags }),
    ]);
    return new Inventory(fleet, { instances, securityGroups });
  }

  async instances(owner: OwnerRef, orgId: string) {
    if (this.unlisted) return this.unlisted.instances(owner, orgId);
    return this.instancesByOwner.get(`${owner.kind}:${owner.id}`) ?? [];
  }

  async securityGroups(name: string) {
    if (this.unlisted) return this.unlisted.securityGroups(name);
    return this.groupsByName.get(name.toLowerCase()) ?? [];
  }

  async secrets(name: string) {
    return this.fleet.secretsByName.get(name) ?? [];
  }

  async tunnels(name: string) {
    return this.fleet.tunnelsByName.get(name) ?? [];
  }

  async dnsRecords(name: string) {
    return this.fleet.recordsByName.get(name) ?? [];
  }
}

/** Whether two lists of entries are equal as JSON (so their digests would be). */
function sameEntries(a: unknown[], b: unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
  return true;
}

const cloudflareOf = (ports: CloudPorts): CloudflarePorts | undefined =>
  ports.tunnels && ports.dns ? { tunnels: ports.tunnels, dns: ports.dns } : undefined;

function push<K, V>(map: Map<K, V[]>, key: K, value: V) {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
