import { createHash } from 'node:crypto';
import { DURATIONS } from './limits.js';
import {
  SEED,
  SEED_DEFAULT_GROUP_ID,
  SEED_DHCP_OPTIONS_ID,
  SEED_EIC_ENI_ID,
  SEED_EIC_GROUP_NAME,
  SEED_SUBNET_CIDR,
} from './seed.js';
import { OrderedStore } from './store.js';

/**
 * The simulated cloud: plain data, the indexes that keep lookups O(1), and the JSON form
 * used for the admin dump and the state file. Service handlers own the behaviour.
 */

export type Tags = Map<string, string>;

export interface Taggable {
  tags: Tags;
  /** Tagging API: a resource that ever had a tag keeps being listed (with `Tags: []`). */
  everTagged: boolean;
}

export type InstanceStateName =
  | 'pending'
  | 'running'
  | 'shutting-down'
  | 'terminated'
  | 'stopping'
  | 'stopped';

export const STATE_CODES: Readonly<Record<InstanceStateName, number>> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

export interface Volume extends Taggable {
  id: string;
  deviceName: string;
  size: number;
  volumeType: string;
  deleteOnTermination: boolean;
  encrypted: boolean;
  createdAt: number;
  deletedAt?: number;
}

export interface Instance extends Taggable {
  seq: number;
  id: string;
  /** The account it lives in (absent in state saved before accounts: the default one). */
  ownerId?: string;
  reservationId: string;
  region: string;
  availabilityZone: string;
  imageId: string;
  instanceType: string;
  keyName?: string;
  subnetId: string;
  vpcId: string;
  privateIp: string;
  securityGroupIds: string[];
  clientToken: string;
  /** Base64 exactly as sent. */
  userData?: string;
  iamInstanceProfile?: { arn: string; id: string };
  metadataOptions: { httpTokens: string; httpEndpoint: string; httpPutResponseHopLimit: number };
  volumes: Volume[];
  amiLaunchIndex: number;
  createdAt: number;
  launchTime: number;
  state: InstanceStateName;
  /** The pending timed transition (pending→running, stopping→stopped, shutting-down→terminated). */
  transition?: { to: InstanceStateName; at: number };
  /** StateTransitionReason. */
  reason: string;
  stateReason?: { code: string; message: string };
  terminatedAt?: number;
  /** When TerminateInstances was first accepted for it (write-consistency window). */
  terminateCalledAt?: number;
  /** When it last stopped being `running` (its tunnel connector went away then). */
  stoppedRunningAt?: number;
}

export interface Rule {
  id: string;
  egress: boolean;
  /** Normalised: `tcp`, `udp`, `icmp`, `-1` or a protocol number. */
  protocol: string;
  fromPort?: number;
  toPort?: number;
  cidrIpv4?: string;
  groupId?: string;
  userId?: string;
  description?: string;
  tags: Tags;
}

export interface SecurityGroup extends Taggable {
  seq: number;
  id: string;
  name: string;
  description: string;
  vpcId: string;
  region: string;
  ownerId: string;
  rules: Rule[];
  createdAt: number;
  deletedAt?: number;
  /** An ENI that holds the group (the seeded EIC endpoint): never deletable. */
  eniId?: string;
}

export interface SecretVersion {
  id: string;
  secretString?: string;
  /** Base64, as on the wire. */
  secretBinary?: string;
  createdAt: number;
  stages: string[];
}

export interface Secret extends Taggable {
  seq: number;
  /** The ARN is the identity: a recreated name gets a new ARN suffix. */
  id: string;
  name: string;
  region: string;
  description?: string;
  kmsKeyId?: string;
  versions: SecretVersion[];
  createdAt: number;
  lastChangedAt: number;
  lastAccessedAt?: number;
  /** When DeleteSecret was called (DescribeSecret `DeletedDate`). */
  deletedAt?: number;
  /** When the secret is (or was) permanently removed. */
  deletionDate?: number;
  /** PutResourcePolicy's document, as sent. */
  resourcePolicy?: string;
}

export interface TunnelConfig {
  version: number;
  config: Record<string, unknown> | null;
  createdAt: number;
}

export interface Tunnel {
  seq: number;
  id: string;
  accountId: string;
  name: string;
  configSrc: 'cloudflare' | 'local';
  secret: string;
  createdAt: number;
  deletedAt?: number;
  config: TunnelConfig;
  /** When its connections were last cleaned up (connections DELETE or `?cascade=true`). */
  connectionsClearedAt?: number;
  /** Per connector (instance id): when `DELETE …/connections?client_id=` cleaned it up. */
  connectorsClearedAt?: Record<string, number>;
}

/** An SSM Run Command (AWS-RunShellScript) and the instances it was sent to. */
export interface SsmCommand {
  seq: number;
  id: string;
  documentName: string;
  comment: string;
  parameters: Record<string, string[]>;
  instanceIds: string[];
  /** Instances whose invocation ends Failed (the `ssmFailedInstances` fault when it was sent). */
  failedInstanceIds: string[];
  timeoutSeconds?: number;
  requestedAt: number;
  /** The profile's durations when it was sent (so a saved state replays the same timeline). */
  visibleAt: number;
  startsAt: number;
  endsAt: number;
}

export interface DnsRecord {
  seq: number;
  id: string;
  zoneId: string;
  name: string;
  type: string;
  content: string;
  proxied: boolean;
  ttl: number;
  comment: string | null;
  tags: string[];
  createdAt: number;
  modifiedAt: number;
  commentModifiedAt?: number;
  tagsModifiedAt?: number;
}

export interface ClientTokenRecord {
  token: string;
  fingerprint: string;
  reservationId: string;
  instances: Instance[];
  at: number;
}

export interface Vpc {
  id: string;
  ownerId?: string;
  cidr: string;
  dhcpOptionsId: string;
  isDefault: boolean;
  tags: Tags;
}

export interface Subnet {
  id: string;
  ownerId?: string;
  vpcId: string;
  cidr: string;
  tags: Tags;
}

/** Applies a due timed transition. Cheap: callers settle every instance they read. */
export function settle(i: Instance, now: number): void {
  const t = i.transition;
  if (t === undefined || t.at > now) return;
  i.state = t.to;
  i.transition = undefined;
  if (t.to === 'running') i.stateReason = undefined;
  if (t.to === 'terminated') {
    i.terminatedAt = t.at;
    i.privateIp = '';
    for (const v of i.volumes) if (v.deleteOnTermination) v.deletedAt = t.at;
  }
}

export function describeVisible(i: Instance, now: number): boolean {
  settle(i, now);
  return i.terminatedAt === undefined || now < i.terminatedAt + DURATIONS.terminatedVisibleMs;
}

export function secretPurged(s: Secret, now: number): boolean {
  return s.deletionDate !== undefined && now >= s.deletionDate;
}

/** Where a SimState's AWS objects live. The default partition holds the seeded network. */
export interface Partition {
  account: string;
  region: string;
}

/**
 * A default VPC as a new AWS account has in every region (172.31.0.0/16, a subnet per zone),
 * with ids derived from the account and region so they stay the same across runs.
 */
export function defaultNetwork(part: Partition): { vpcId: string; vpcCidr: string; subnetIds: string[] } {
  const hex = (salt: string) =>
    createHash('sha256').update(`${part.account}/${part.region}/${salt}`).digest('hex').slice(0, 17);
  return {
    vpcId: `vpc-${hex('vpc')}`,
    vpcCidr: '172.31.0.0/16',
    subnetIds: ['a', 'b', 'c'].map((az) => `subnet-${hex(az)}`),
  };
}

export class SimState {
  private seqCounter = 0;
  /** The account and region whose AWS objects this holds (Cloudflare lives in the default one). */
  readonly account: string;
  readonly region: string;
  /** Used when a call names no VPC or subnet. */
  readonly defaultVpcId: string;
  readonly defaultSubnetId: string;
  /** The first address handed out in the default subnet: 10.42.x.y, or 172.31.x.y in a default VPC. */
  private readonly ipPrefix: string;
  private ipCounter = 4;
  readonly instances = new OrderedStore<Instance>();
  readonly securityGroups = new OrderedStore<SecurityGroup>();
  readonly secrets = new OrderedStore<Secret>();
  readonly tunnels = new OrderedStore<Tunnel>();
  readonly dnsRecords = new OrderedStore<DnsRecord>();
  readonly vpcs: Vpc[] = [];
  readonly subnets: Subnet[] = [];
  readonly commands = new OrderedStore<SsmCommand>();

  /** `<vpcId>\0<lower-case name>` → live group. */
  readonly sgByName = new Map<string, SecurityGroup>();
  /** group id → instances that list it (any state; callers check the state). */
  readonly sgInstances = new Map<string, Set<Instance>>();
  /** referenced group id → referencing group id → number of rules. */
  readonly sgReferencedBy = new Map<string, Map<string, number>>();
  /** name → the live (or scheduled-for-deletion) secret. */
  readonly secretByName = new Map<string, Secret>();
  readonly clientTokens = new Map<string, ClientTokenRecord>();
  /** tunnel name → tunnels with that name, deleted ones included. */
  readonly tunnelsByName = new Map<string, Tunnel[]>();
  /** `TunnelID` tag value → instances carrying it ("active connections" are running ones). */
  readonly instancesByTunnel = new Map<string, Set<Instance>>();
  readonly volumes = new Map<string, Volume>();
  /** `<zoneId>\0<fqdn>` → records. */
  readonly dnsByName = new Map<string, DnsRecord[]>();
  /** instance id → the Run Commands sent to it, oldest first. */
  readonly commandsByInstance = new Map<string, SsmCommand[]>();
  /** Secret names a forced delete still blocks, until when (fault setting `secretNameReuseMs`). */
  readonly blockedSecretNames = new Map<string, number>();

  constructor(readonly partition?: Partition) {
    this.account = partition?.account ?? SEED.accountId;
    this.region = partition?.region ?? SEED.region;
    if (partition && !isDefaultPartition(partition)) {
      const net = defaultNetwork(partition);
      this.defaultVpcId = net.vpcId;
      this.defaultSubnetId = net.subnetIds[0]!;
      this.ipPrefix = '172.31';
    } else {
      this.defaultVpcId = SEED.vpcId;
      this.defaultSubnetId = SEED.subnetId;
      this.ipPrefix = '10.42';
    }
    this.seedObjects();
  }

  nextSeq(): number {
    this.seqCounter += 1;
    return this.seqCounter;
  }

  /** .0.4 upwards through the /16, wrapping (addresses are not reclaimed). */
  nextPrivateIp(): string {
    const n = this.ipCounter;
    this.ipCounter = n >= 65_534 ? 4 : n + 1;
    return `${this.ipPrefix}.${n >> 8}.${n & 255}`;
  }

  private seedObjects(): void {
    if (this.defaultVpcId !== SEED.vpcId) {
      this.seedDefaultVpc();
      return;
    }
    this.vpcs.push({
      id: SEED.vpcId,
      cidr: SEED.vpcCidr,
      dhcpOptionsId: SEED_DHCP_OPTIONS_ID,
      isDefault: false,
      tags: new Map([['Name', 'molecule-sim']]),
    });
    this.subnets.push({
      id: SEED.subnetId,
      vpcId: SEED.vpcId,
      cidr: SEED_SUBNET_CIDR,
      tags: new Map([['Name', 'molecule-sim-private']]),
    });
    this.addSecurityGroup({
      seq: 0,
      id: SEED.eicSecurityGroupId,
      name: SEED_EIC_GROUP_NAME,
      description: 'EC2 Instance Connect Endpoint',
      vpcId: SEED.vpcId,
      region: SEED.region,
      ownerId: SEED.accountId,
      rules: [
        {
          id: 'sgr-0e1c0e1c0e1c0e1c1',
          egress: true,
          protocol: 'tcp',
          fromPort: 22,
          toPort: 22,
          cidrIpv4: SEED.vpcCidr,
          tags: new Map(),
        },
      ],
      createdAt: 0,
      eniId: SEED_EIC_ENI_ID,
      tags: new Map([['Name', 'eic-endpoint']]),
      everTagged: false,
    });
    this.addSecurityGroup({
      seq: 0,
      id: SEED_DEFAULT_GROUP_ID,
      name: 'default',
      description: 'default VPC security group',
      vpcId: SEED.vpcId,
      region: SEED.region,
      ownerId: SEED.accountId,
      rules: [
        {
          id: 'sgr-0defa0170defa017d',
          egress: true,
          protocol: '-1',
          cidrIpv4: '0.0.0.0/0',
          tags: new Map(),
        },
      ],
      createdAt: 0,
      // NOTE: a VPC's default group cannot be deleted; holding an ENI stands for that here.
      eniId: 'eni-0defa0170defa017d',
      tags: new Map(),
      everTagged: false,
    });
  }

  /** A new account's region: its default VPC, a subnet per zone and the VPC's `default` group. */
  private seedDefaultVpc(): void {
    const net = defaultNetwork({ account: this.account, region: this.region });
    this.vpcs.push({
      id: net.vpcId,
      ownerId: this.account,
      cidr: net.vpcCidr,
      dhcpOptionsId: `dopt-${net.vpcId.slice(4)}`,
      isDefault: true,
      tags: new Map(),
    });
    net.subnetIds.forEach((id, n) => {
      this.subnets.push({
        id,
        ownerId: this.account,
        vpcId: net.vpcId,
        cidr: `172.31.${n * 16}.0/20`,
        tags: new Map(),
      });
    });
    this.addSecurityGroup({
      seq: 0,
      id: `sg-${net.vpcId.slice(4)}`,
      name: 'default',
      description: 'default VPC security group',
      vpcId: net.vpcId,
      region: this.region,
      ownerId: this.account,
      rules: [
        {
          id: `sgr-${net.vpcId.slice(4)}`,
          egress: true,
          protocol: '-1',
          cidrIpv4: '0.0.0.0/0',
          tags: new Map(),
        },
      ],
      createdAt: 0,
      // NOTE: a VPC's default group cannot be deleted; holding an ENI stands for that here.
      eniId: `eni-${net.vpcId.slice(4)}`,
      tags: new Map(),
      everTagged: false,
    });
  }

  /** Empties everything except the seeded objects. */
  reset(): void {
    for (const s of [
      this.instances,
      this.securityGroups,
      this.secrets,
      this.tunnels,
      this.dnsRecords,
      this.commands,
    ])
      s.clear();
    for (const m of [
      this.sgByName,
      this.sgInstances,
      this.sgReferencedBy,
      this.secretByName,
      this.clientTokens,
      this.tunnelsByName,
      this.instancesByTunnel,
      this.volumes,
      this.dnsByName,
      this.commandsByInstance,
      this.blockedSecretNames,
    ])
      m.clear();
    this.vpcs.length = 0;
    this.subnets.length = 0;
    this.seedObjects();
  }

  // --- tags ---------------------------------------------------------------

  setTag(res: Taggable, key: string, value: string): void {
    if (isInstance(res) && key === 'TunnelID') {
      const old = res.tags.get(key);
      if (old !== undefined) this.instancesByTunnel.get(old)?.delete(res);
      addToSetMap(this.instancesByTunnel, value, res);
    }
    res.tags.set(key, value);
    res.everTagged = true;
  }

  deleteTag(res: Taggable, key: string): void {
    if (isInstance(res) && key === 'TunnelID') {
      const old = res.tags.get(key);
      if (old !== undefined) this.instancesByTunnel.get(old)?.delete(res);
    }
    res.tags.delete(key);
  }

  // --- instances ----------------------------------------------------------

  addInstance(i: Instance): void {
    this.instances.add(i);
    for (const v of i.volumes) this.volumes.set(v.id, v);
    for (const g of i.securityGroupIds) addToSetMap(this.sgInstances, g, i);
    const tunnel = i.tags.get('TunnelID');
    if (tunnel !== undefined) addToSetMap(this.instancesByTunnel, tunnel, i);
  }

  setInstanceGroups(i: Instance, groupIds: string[]): void {
    for (const g of i.securityGroupIds) this.sgInstances.get(g)?.delete(i);
    i.securityGroupIds = groupIds;
    for (const g of groupIds) addToSetMap(this.sgInstances, g, i);
  }

  private removeInstance(i: Instance): void {
    this.instances.remove(i);
    for (const v of i.volumes) this.volumes.delete(v.id);
    for (const g of i.securityGroupIds) this.sgInstances.get(g)?.delete(i);
    const tunnel = i.tags.get('TunnelID');
    if (tunnel !== undefined) this.instancesByTunnel.get(tunnel)?.delete(i);
  }

  // --- security groups ----------------------------------------------------

  addSecurityGroup(sg: SecurityGroup): void {
    this.securityGroups.add(sg);
    if (sg.deletedAt !== undefined) return;
    this.sgByName.set(sgNameKey(sg.vpcId, sg.name), sg);
    for (const r of sg.rules) this.ruleAdded(sg, r);
  }

  ruleAdded(sg: SecurityGroup, r: Rule): void {
    if (r.groupId === undefined) return;
    let m = this.sgReferencedBy.get(r.groupId);
    if (!m) {
      m = new Map();
      this.sgReferencedBy.set(r.groupId, m);
    }
    m.set(sg.id, (m.get(sg.id) ?? 0) + 1);
  }

  ruleRemoved(sg: SecurityGroup, r: Rule): void {
    if (r.groupId === undefined) return;
    const m = this.sgReferencedBy.get(r.groupId);
    if (!m) return;
    const n = (m.get(sg.id) ?? 0) - 1;
    if (n > 0) m.set(sg.id, n);
    else m.delete(sg.id);
    if (m.size === 0) this.sgReferencedBy.delete(r.groupId);
  }

  deleteSecurityGroup(sg: SecurityGroup, now: number): void {
    sg.deletedAt = now;
    this.sgByName.delete(sgNameKey(sg.vpcId, sg.name));
    for (const r of sg.rules) this.ruleRemoved(sg, r);
  }

  liveGroup(id: string): SecurityGroup | undefined {
    const sg = this.securityGroups.get(id);
    return sg && sg.deletedAt === undefined ? sg : undefined;
  }

  // --- secrets ------------------------------------------------------------

  addSecret(s: Secret, now: number): void {
    this.secrets.add(s);
    if (!secretPurged(s, now)) this.secretByName.set(s.name, s);
  }

  /** The live or scheduled secret with this name (purged ones are dropped from the index). */
  secretNamed(name: string, now: number): Secret | undefined {
    const s = this.secretByName.get(name);
    if (s && secretPurged(s, now)) {
      this.secretByName.delete(name);
      return undefined;
    }
    return s;
  }

  // --- SSM ------------------------------------------------------------------

  addCommand(c: SsmCommand): void {
    this.commands.add(c);
    for (const id of c.instanceIds) {
      const list = this.commandsByInstance.get(id);
      if (list) list.push(c);
      else this.commandsByInstance.set(id, [c]);
    }
  }

  // --- cloudflare ---------------------------------------------------------

  addTunnel(t: Tunnel): void {
    this.tunnels.add(t);
    const list = this.tunnelsByName.get(t.name);
    if (list) list.push(t);
    else this.tunnelsByName.set(t.name, [t]);
  }

  addDnsRecord(r: DnsRecord): void {
    this.dnsRecords.add(r);
    const key = dnsKey(r.zoneId, r.name);
    const list = this.dnsByName.get(key);
    if (list) list.push(r);
    else this.dnsByName.set(key, [r]);
  }

  removeDnsRecord(r: DnsRecord): void {
    this.dnsRecords.remove(r);
    const key = dnsKey(r.zoneId, r.name);
    const list = this.dnsByName.get(key)?.filter((x) => x !== r);
    if (list && list.length > 0) this.dnsByName.set(key, list);
    else this.dnsByName.delete(key);
  }

  renameDnsRecord(r: DnsRecord, name: string): void {
    this.removeDnsRecord(r);
    r.name = name;
    this.addDnsRecord(r);
  }

  // --- housekeeping -------------------------------------------------------

  /** Physically drops what no API can show any more (visibility itself is decided lazily). */
  sweep(now: number): void {
    const ghost = DURATIONS.taggingGhostMs;
    const gone: Instance[] = [];
    for (const i of this.instances.values()) {
      settle(i, now);
      if (i.terminatedAt !== undefined && now >= i.terminatedAt + DURATIONS.terminatedVisibleMs + ghost)
        gone.push(i);
    }
    for (const i of gone) this.removeInstance(i);
    const deadGroups: SecurityGroup[] = [];
    for (const sg of this.securityGroups.values()) {
      if (sg.deletedAt !== undefined && now >= sg.deletedAt + ghost) deadGroups.push(sg);
    }
    for (const sg of deadGroups) {
      this.securityGroups.remove(sg);
      this.sgInstances.delete(sg.id);
    }
    const deadSecrets: Secret[] = [];
    for (const s of this.secrets.values()) {
      if (s.deletionDate !== undefined && now >= s.deletionDate + ghost) deadSecrets.push(s);
    }
    for (const s of deadSecrets) {
      this.secrets.remove(s);
      if (this.secretByName.get(s.name) === s) this.secretByName.delete(s.name);
    }
    for (const [token, rec] of this.clientTokens) {
      if (now >= rec.at + DURATIONS.clientTokenMs) this.clientTokens.delete(token);
    }
    const oldCommands: SsmCommand[] = [];
    for (const c of this.commands.values()) {
      if (now < c.requestedAt + DURATIONS.ssmHistoryMs) break;
      oldCommands.push(c);
    }
    for (const c of oldCommands) {
      this.commands.remove(c);
      for (const id of c.instanceIds) {
        const list = this.commandsByInstance.get(id)?.filter((x) => x !== c) ?? [];
        if (list.length > 0) this.commandsByInstance.set(id, list);
        else this.commandsByInstance.delete(id);
      }
    }
    for (const [name, until] of this.blockedSecretNames)
      if (now >= until) this.blockedSecretNames.delete(name);
    for (const store of [this.instances, this.securityGroups, this.secrets, this.commands]) store.compact();
  }

  // --- persistence --------------------------------------------------------

  toJSON(): SerializedState {
    return {
      version: 1,
      seq: this.seqCounter,
      ip: this.ipCounter,
      instances: [...this.instances.values()].map((i) => ({
        ...i,
        tags: toObj(i.tags),
        volumes: i.volumes.map((v) => ({ ...v, tags: toObj(v.tags) })),
      })),
      securityGroups: [...this.securityGroups.values()].map((sg) => ({
        ...sg,
        tags: toObj(sg.tags),
        rules: sg.rules.map((r) => ({ ...r, tags: toObj(r.tags) })),
      })),
      secrets: [...this.secrets.values()].map((s) => ({ ...s, tags: toObj(s.tags) })),
      tunnels: [...this.tunnels.values()],
      dnsRecords: [...this.dnsRecords.values()],
      clientTokens: [...this.clientTokens.values()].map((c) => ({
        token: c.token,
        fingerprint: c.fingerprint,
        reservationId: c.reservationId,
        instanceIds: c.instances.map((i) => i.id),
        at: c.at,
      })),
      commands: [...this.commands.values()].map((c) => ({ ...c })),
      blockedSecretNames: Object.fromEntries(this.blockedSecretNames),
    };
  }

  /** Replaces the state with a saved one (the seeded objects are rebuilt, not loaded). */
  load(data: SerializedState, now: number): void {
    if (data.version !== 1) throw new Error(`unsupported sim state version ${String(data.version)}`);
    this.reset();
    this.securityGroups.clear();
    this.sgByName.clear();
    this.sgReferencedBy.clear();
    this.seqCounter = data.seq;
    this.ipCounter = data.ip;
    for (const i of data.instances) {
      this.addInstance({
        ...i,
        tags: toMap(i.tags),
        volumes: i.volumes.map((v) => ({ ...v, tags: toMap(v.tags) })),
      });
    }
    for (const sg of data.securityGroups) {
      this.addSecurityGroup({
        ...sg,
        tags: toMap(sg.tags),
        rules: sg.rules.map((r) => ({ ...r, tags: toMap(r.tags) })),
      });
    }
    // The seeded groups are rebuilt, not loaded: put back any the saved state did not hold.
    for (const sg of new SimState(this.partition).securityGroups.values())
      if (!this.securityGroups.get(sg.id)) this.addSecurityGroup(sg);
    for (const s of data.secrets) this.addSecret({ ...s, tags: toMap(s.tags) }, now);
    for (const t of data.tunnels) this.addTunnel(t);
    for (const r of data.dnsRecords) this.addDnsRecord(r);
    for (const c of data.clientTokens) {
      const instances = c.instanceIds.map((id) => this.instances.get(id)).filter((i) => i !== undefined);
      this.clientTokens.set(c.token, {
        token: c.token,
        fingerprint: c.fingerprint,
        reservationId: c.reservationId,
        instances,
        at: c.at,
      });
    }
    for (const c of data.commands ?? []) this.addCommand({ ...c });
    for (const [name, until] of Object.entries(data.blockedSecretNames ?? {}))
      this.blockedSecretNames.set(name, until);
  }
}

type Jsonify<T> = Omit<T, 'tags'> & { tags: Record<string, string> };

export interface SerializedState {
  version: 1;
  seq: number;
  ip: number;
  instances: (Omit<Jsonify<Instance>, 'volumes'> & { volumes: Jsonify<Volume>[] })[];
  securityGroups: (Omit<Jsonify<SecurityGroup>, 'rules'> & { rules: Jsonify<Rule>[] })[];
  secrets: Jsonify<Secret>[];
  tunnels: Tunnel[];
  dnsRecords: DnsRecord[];
  clientTokens: {
    token: string;
    fingerprint: string;
    reservationId: string;
    instanceIds: string[];
    at: number;
  }[];
  /** Absent in states saved before SSM. */
  commands?: SsmCommand[];
  blockedSecretNames?: Record<string, number>;
}

export function isDefaultPartition(p: Partition): boolean {
  return p.account === SEED.accountId && p.region === SEED.region;
}

export const partitionKey = (p: Partition) => `${p.account}/${p.region}`;

export function sgNameKey(vpcId: string, name: string): string {
  return `${vpcId}\0${name.toLowerCase()}`;
}

export function dnsKey(zoneId: string, name: string): string {
  return `${zoneId}\0${name}`;
}

function isInstance(res: Taggable): res is Instance {
  return (res as Instance).reservationId !== undefined;
}

function addToSetMap<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let s = m.get(k);
  if (!s) {
    s = new Set();
    m.set(k, s);
  }
  s.add(v);
}

function toObj(tags: Tags): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, v] of tags) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true });
  return o;
}

function toMap(o: Record<string, string>): Tags {
  return new Map(Object.entries(o));
}
