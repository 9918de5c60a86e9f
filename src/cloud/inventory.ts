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
import type { CloudPorts, DnsRecord, Instance, SecretSummary, SecurityGroup, Tunnel } from './ports.js';

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
    return (await this.ports.secrets.listSecrets(name)).filter((s) => s.name === name);
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

/**
 * Everything ours in this env, listed once and indexed by owner. Built at the start of a
 * resync; a reconcile that would act on what it read here re-reads live first.
 */
export class Inventory implements CloudView {
  readonly source = 'inventory' as const;
  readonly takenAt: number;
  private readonly instancesByOwner = new Map<string, Instance[]>();
  private readonly groupsByName = new Map<string, SecurityGroup[]>();
  private readonly secretsByName = new Map<string, SecretSummary[]>();
  private readonly tunnelsByName = new Map<string, Tunnel[]>();
  private readonly recordsByName = new Map<string, DnsRecord[]>();
  readonly counts: InventoryCounts;
  /** Everything listed, for the orphan scan and managed-resource gauges. */
  readonly all: {
    instances: Instance[];
    securityGroups: SecurityGroup[];
    secrets: SecretSummary[];
    tunnels: Tunnel[];
    dnsRecords: DnsRecord[];
  };

  private constructor(takenAt: number, all: Inventory['all']) {
    this.takenAt = takenAt;
    this.all = all;
    for (const i of all.instances) {
      const key = i.tags[TAG.workspaceId]
        ? `workspace:${i.tags[TAG.workspaceId]}`
        : i.tags[TAG.role] === 'tenant' && i.tags[TAG.orgId]
          ? `org:${i.tags[TAG.orgId]}`
          : undefined;
      if (key) push(this.instancesByOwner, key, i);
    }
    for (const g of all.securityGroups) push(this.groupsByName, g.name.toLowerCase(), g);
    for (const s of all.secrets) push(this.secretsByName, s.name, s);
    for (const t of all.tunnels) push(this.tunnelsByName, t.name, t);
    for (const r of all.dnsRecords) push(this.recordsByName, r.name, r);
    this.counts = {
      instances: all.instances.length,
      securityGroups: all.securityGroups.length,
      secrets: all.secrets.length,
      tunnels: all.tunnels.length,
      dnsRecords: all.dnsRecords.length,
    };
  }

  /** Lists each resource type once, paginated and filtered to this env's managed resources. */
  static async build(ports: CloudPorts, env: string, now: number): Promise<Inventory> {
    const tags = ownershipTags(env);
    const [instances, securityGroups, secrets, tunnels, dnsRecords] = await Promise.all([
      ports.ec2.describeInstances({ tags }),
      ports.ec2.describeSecurityGroups({ tags }),
      ports.secrets.listSecrets(secretNamePrefix(env)),
      ports.tunnels ? ports.tunnels.listTunnels({ namePrefix: tunnelNamePrefix(env) }) : Promise.resolve([]),
      ports.dns ? ports.dns.listRecords({ commentContains: dnsCommentMarker(env) }) : Promise.resolve([]),
    ]);
    return new Inventory(now, {
      instances,
      securityGroups,
      secrets: secrets.filter((s) => orgIdFromSecretName(env, s.name)),
      tunnels: tunnels.filter((t) => orgIdFromTunnelName(env, t.name)),
      dnsRecords: dnsRecords.filter((r) => orgIdFromDnsComment(env, r.comment)),
    });
  }

  async instances(owner: OwnerRef) {
    return this.instancesByOwner.get(`${owner.kind}:${owner.id}`) ?? [];
  }

  async securityGroups(name: string) {
    return this.groupsByName.get(name.toLowerCase()) ?? [];
  }

  async secrets(name: string) {
    return this.secretsByName.get(name) ?? [];
  }

  async tunnels(name: string) {
    return this.tunnelsByName.get(name) ?? [];
  }

  async dnsRecords(name: string) {
    return this.recordsByName.get(name) ?? [];
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V) {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
