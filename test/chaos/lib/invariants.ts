import { registry } from '../../../controllers/index.js';
import type { ScanResult } from '../../../controllers/orphan.js';
import { loadConfig } from '../../../src/config.js';
import { createLogger } from '../../../src/observability/logger.js';
import { createOperator, operatorMetrics } from '../../../src/operator.js';
import {
  bootstrapSecretName,
  dnsComment,
  dnsCommentMarker,
  tenantHostname,
  tenantSecurityGroupName,
  tunnelCnameTarget,
  tunnelName,
  tunnelNamePrefix,
  workspaceBootstrapSecretName,
  workspaceSecurityGroupName,
} from '../../../src/provisioning/names.js';
import { workspaceResources } from '../../../src/provisioning/tiers.js';
import type { SimStateDump } from '../../../src/sim/index.js';
import { APP_DOMAIN, ENV, until, type World } from './world.js';

const LIVE_STATES = new Set(['pending', 'running', 'stopping', 'stopped']);
const TENANT_TYPE = 't3.small';

interface OrgRow {
  id: string;
  slug: string;
  target: string;
  power_state: string;
  deleting: boolean;
  purged: boolean;
}
interface WsRow {
  id: string;
  org_id: string;
  tier: number;
  runtime: string;
  power_state: string;
  deleting: boolean;
  purged: boolean;
}

export interface InvariantReport {
  /** Must hold at every moment, converged or not: no duplicate, no SSH open to the world. */
  safety: string[];
  /** Must hold once the operator has converged. */
  convergence: string[];
  counts: {
    liveOrgs: number;
    /** Of the live orgs, those in the canary target. */
    canaryOrgs: number;
    liveWorkspaces: number;
    purgedOrgs: number;
    purgedWorkspaces: number;
    instances: number;
    securityGroups: number;
    secrets: number;
    tunnels: number;
    dnsRecords: number;
  };
}

/** True when a rule lets 0.0.0.0/0 (or ::/0) reach port 22. */
function sshToWorld(r: { protocol: string; fromPort?: number; toPort?: number; cidrIpv4?: string }): boolean {
  if (r.cidrIpv4 !== '0.0.0.0/0') return false;
  if (r.protocol === '-1') return true;
  if (r.protocol !== 'tcp' && r.protocol !== '6') return false;
  return (r.fromPort ?? 0) <= 22 && 22 <= (r.toPort ?? 65535);
}

/** Where an AWS object lives: the default account and region, or another partition. */
type Where<T> = T & { where: string };

/** Every account and region's AWS objects together, each marked with where it lives. */
function awsObjects(dump: SimStateDump) {
  const parts = [
    { where: 'primary', ...dump },
    ...dump.partitions.map((p) => ({ where: `${p.account}/${p.region}`, ...p })),
  ];
  const mark = <T>(where: string, xs: T[]): Where<T>[] => xs.map((x) => ({ ...x, where }));
  return {
    instances: parts.flatMap((p) => mark(p.where, p.instances)),
    securityGroups: parts.flatMap((p) => mark(p.where, p.securityGroups)),
    secrets: parts.flatMap((p) => mark(p.where, p.secrets)),
  };
}

/** The instance ids a bundle policy lets read (its Allow's ec2:SourceInstanceARN); undefined without a policy. */
function policyReaders(policy: string | undefined): string[] | undefined {
  if (policy === undefined) return undefined;
  const doc = JSON.parse(policy) as {
    Statement: { Effect: string; Condition?: { ArnEquals?: Record<string, string | string[]> } }[];
  };
  return doc.Statement.filter((st) => st.Effect === 'Allow')
    .flatMap((st) => [st.Condition?.ArnEquals?.['ec2:SourceInstanceARN'] ?? []].flat())
    .map((arn) => arn.split('/').at(-1)!)
    .sort();
}

/** Safety invariants from the simulator's state alone; cheap enough to run after every step. */
export function safetyViolations(dump: SimStateDump): string[] {
  const out: string[] = [];
  const aws = awsObjects(dump);
  for (const g of aws.securityGroups) {
    if (g.deletedAt !== undefined) continue;
    for (const r of g.rules)
      if (!r.egress && sshToWorld(r)) out.push(`SG ${g.id} ${g.name} opens tcp/22 to 0.0.0.0/0`);
  }
  // One live instance per owner across every account and region: a copy elsewhere is a duplicate.
  const perOwner = new Map<string, string[]>();
  for (const i of aws.instances) {
    if (i.tags.MOLECULE_ENV !== ENV || !LIVE_STATES.has(i.state)) continue;
    const owner = i.tags.WorkspaceID ? `workspace ${i.tags.WorkspaceID}` : `org ${i.tags.OrgID}`;
    perOwner.set(owner, [...(perOwner.get(owner) ?? []), `${i.id} (${i.where})`]);
  }
  for (const [owner, ids] of perOwner)
    if (ids.length > 1) out.push(`duplicate instances for ${owner}: ${ids.join(', ')}`);
  const tunnels = new Map<string, number>();
  for (const t of dump.tunnels) if (!t.deletedAt) tunnels.set(t.name, (tunnels.get(t.name) ?? 0) + 1);
  for (const [name, n] of tunnels) if (n > 1) out.push(`duplicate tunnels named ${name}: ${n}`);
  const cnames = new Map<string, number>();
  for (const r of dump.dnsRecords) cnames.set(r.name, (cnames.get(r.name) ?? 0) + 1);
  for (const [name, n] of cnames) if (n > 1) out.push(`duplicate DNS records for ${name}: ${n}`);
  return out;
}

/**
 * Every invariant of the reliability suite, from the database (desired state, status, audit)
 * and the simulator's state dump (the cloud as it is):
 * - per live owner exactly one of each resource, shaped as desired, status Ready;
 * - nothing left for deleted owners, every deletion finished (row purged);
 * - nothing of this env that belongs to no live owner (leak/orphan);
 * - every live resource has a created/adopted audit row.
 */
export async function checkInvariants(world: World): Promise<InvariantReport> {
  const q = world.tdb.database.query.bind(world.tdb.database);
  const orgs = await q<OrgRow>(
    `SELECT id, slug, target, power_state, deletion_requested_at IS NOT NULL AS deleting, purged_at IS NOT NULL AS purged FROM orgs`,
  );
  const wss = await q<WsRow>(
    `SELECT id, org_id, tier, runtime, power_state, deletion_requested_at IS NOT NULL AS deleting, purged_at IS NOT NULL AS purged FROM workspaces`,
  );
  const status = await q<{ controller: string; owner_id: string; ready: boolean; reason: string }>(
    `SELECT controller, owner_id, ready, reason FROM reconcile_status`,
  );
  const audited = new Set(
    (
      await q<{ external_id: string }>(
        `SELECT DISTINCT external_id FROM tenant_resources WHERE action IN ('created', 'adopted')`,
      )
    ).map((r) => r.external_id),
  );
  const dump = world.sim.dump();
  const safety = safetyViolations(dump);
  const conv: string[] = [];

  const orgById = new Map(orgs.map((o) => [o.id, o]));
  const liveOrgs = orgs.filter((o) => !o.purged && !o.deleting);
  const liveOrgIds = new Set(liveOrgs.map((o) => o.id));
  const liveWs = wss.filter((w) => !w.purged && !w.deleting && liveOrgIds.has(w.org_id));
  const liveWsIds = new Set(liveWs.map((w) => w.id));
  for (const o of orgs) if (!o.purged && o.deleting) conv.push(`org ${o.slug} still deleting`);
  for (const w of wss)
    if (!w.purged && (w.deleting || orgById.get(w.org_id)?.deleting))
      conv.push(`workspace ${w.id} still deleting`);

  const ours = <T extends { tags: Record<string, string> }>(xs: T[]) =>
    xs.filter((x) => x.tags.MOLECULE_ENV === ENV);
  const aws = awsObjects(dump);
  const instances = ours(aws.instances).filter((i) => i.state !== 'terminated');
  const groups = ours(aws.securityGroups).filter((g) => g.deletedAt === undefined);
  const secrets = aws.secrets.filter(
    (s) => s.deletedAt === undefined && s.name.startsWith(`molecule/${ENV}/`),
  );
  const tunnels = dump.tunnels.filter((t) => !t.deletedAt && t.name.startsWith(tunnelNamePrefix(ENV)));
  const records = dump.dnsRecords.filter((r) => (r.comment ?? '').startsWith(dnsCommentMarker(ENV)));
  const statusOf = new Map(status.map((s) => [`${s.controller}:${s.owner_id}`, s]));
  const needAudit = (kind: string, id: string) => {
    if (!audited.has(id)) conv.push(`${kind} ${id} has no created/adopted audit row`);
  };
  const needReady = (controller: string, ownerId: string, what: string) => {
    const s = statusOf.get(`${controller}:${ownerId}`);
    if (!s?.ready) conv.push(`${what}: ${controller} not ready (${s?.reason ?? 'no status'})`);
  };
  // Each target's network: the seeded one, or the canary account's default VPC.
  const network = (target: string) => {
    if (target === 'canary' && world.canary)
      return {
        where: `${world.canary.account}/${world.canary.region}`,
        cidr: world.canary.vpcCidr,
        eic: world.canary.defaultSecurityGroupId,
      };
    return { where: 'primary', cidr: world.sim.seed.vpcCidr, eic: world.sim.seed.eicSecurityGroupId };
  };
  const misplaced = (
    x: { where: string },
    net: { where: string },
    what: string,
    kind: string,
    id: string,
  ) => {
    if (x.where !== net.where) conv.push(`${what}: ${kind} ${id} is in ${x.where}, want ${net.where}`);
  };

  const claimed = new Set<string>();
  const claim = (id: string) => claimed.add(id);
  const checkGroup = (name: string, want: string[], what: string, net: ReturnType<typeof network>) => {
    const gs = groups.filter((g) => g.name === name);
    if (gs.length !== 1) return conv.push(`${what}: ${gs.length} security groups named ${name}`);
    const g = gs[0]!;
    claim(g.id);
    misplaced(g, net, what, 'security group', g.id);
    needAudit('security group', g.id);
    const have = g.rules
      .filter((r) => !r.egress)
      .map((r) => `${r.protocol}/${r.fromPort}-${r.toPort} ${r.groupId ?? r.cidrIpv4}`)
      .sort();
    if (JSON.stringify(have) !== JSON.stringify([...want].sort()))
      conv.push(`${what}: SG ${g.id} rules ${JSON.stringify(have)} ≠ ${JSON.stringify(want)}`);
  };
  const checkInstance = (
    match: (i: (typeof instances)[number]) => boolean,
    type: string,
    power: string,
    what: string,
    net: ReturnType<typeof network>,
  ) => {
    const is = instances.filter(match);
    if (is.length !== 1) return conv.push(`${what}: ${is.length} non-terminated instances`);
    const i = is[0]!;
    claim(i.id);
    misplaced(i, net, what, 'instance', i.id);
    needAudit('instance', i.id);
    if (i.instanceType !== type) conv.push(`${what}: instance ${i.id} is ${i.instanceType}, want ${type}`);
    if (i.state !== power) conv.push(`${what}: instance ${i.id} is ${i.state}, want ${power}`);
  };
  for (const o of liveOrgs) {
    const what = `org ${o.slug}`;
    const net = network(o.target);
    const ts = tunnels.filter((t) => t.name === tunnelName(ENV, o.id));
    if (ts.length !== 1) conv.push(`${what}: ${ts.length} tunnels`);
    const tunnel = ts[0];
    if (tunnel) {
      claim(tunnel.id);
      needAudit('tunnel', tunnel.id);
      const host = tenantHostname(o.slug, APP_DOMAIN);
      const rs = records.filter((r) => r.name === host);
      if (rs.length !== 1) conv.push(`${what}: ${rs.length} DNS records for ${host}`);
      const r = rs[0];
      if (r) {
        claim(r.id);
        if (
          r.type !== 'CNAME' ||
          r.content !== tunnelCnameTarget(tunnel.id) ||
          !r.proxied ||
          r.comment !== dnsComment(ENV, o.id)
        )
          conv.push(`${what}: DNS record ${r.id} is ${r.type} ${r.content} proxied=${r.proxied}`);
      }
    }
    const ss = secrets.filter((s) => s.name === bootstrapSecretName(ENV, o.id));
    if (ss.length !== 1) conv.push(`${what}: ${ss.length} bootstrap secrets`);
    for (const s of ss) {
      claim(s.id);
      needAudit('secret', s.id);
      misplaced(s, net, what, 'secret', s.name);
      // Tenant isolation: the bundle is readable from the org's live tenant instance only.
      const tenants = instances.filter((i) => i.tags.OrgID === o.id && i.tags.Role === 'tenant');
      const readers = policyReaders(s.resourcePolicy);
      const want = tenants.map((i) => i.id).sort();
      if (JSON.stringify(readers) !== JSON.stringify(want))
        conv.push(`${what}: bundle policy admits ${JSON.stringify(readers)}, want ${JSON.stringify(want)}`);
    }
    checkGroup(
      tenantSecurityGroupName(ENV, o.id),
      [`tcp/22-22 ${net.eic}`, `tcp/8080-8080 ${net.cidr}`],
      what,
      net,
    );
    checkInstance(
      (i) => i.tags.OrgID === o.id && i.tags.Role === 'tenant',
      TENANT_TYPE,
      o.power_state,
      what,
      net,
    );
    for (const c of registry.forOwner('org')) needReady(c.name, o.id, what);
  }
  for (const w of liveWs) {
    const what = `workspace ${w.id}`;
    const org = orgById.get(w.org_id)!;
    const net = network(org.target);
    checkGroup(workspaceSecurityGroupName(ENV, w.id), [`tcp/22-22 ${net.eic}`], what, net);
    checkInstance(
      (i) => i.tags.WorkspaceID === w.id,
      workspaceResources(w.tier, w.runtime).instanceType,
      org.power_state === 'stopped' ? 'stopped' : w.power_state,
      what,
      net,
    );
    for (const c of registry.forOwner('workspace')) needReady(c.name, w.id, what);
  }

  // The env-wide workspace bootstrap secret: at most one per account and region, and ours.
  const shared = secrets.filter((s) => s.name === workspaceBootstrapSecretName(ENV));
  for (const s of shared) claim(s.id);
  const sharedWhere = shared.map((s) => s.where);
  if (new Set(sharedWhere).size !== sharedWhere.length)
    conv.push(`duplicate workspace bootstrap secrets: ${sharedWhere.join(', ')}`);

  // Anything of this env that no live owner claims is a leak (or an orphan in the making).
  const owner = (tags: Record<string, string>) =>
    tags.WorkspaceID
      ? liveWsIds.has(tags.WorkspaceID)
        ? 'live'
        : 'gone'
      : liveOrgIds.has(tags.OrgID ?? '')
        ? 'live'
        : 'gone';
  for (const i of instances)
    if (!claimed.has(i.id))
      conv.push(`leaked instance ${i.id} in ${i.where} (${i.state}, owner ${owner(i.tags)})`);
  for (const g of groups)
    if (!claimed.has(g.id))
      conv.push(`leaked security group ${g.id} ${g.name} in ${g.where} (owner ${owner(g.tags)})`);
  for (const s of secrets) if (!claimed.has(s.id)) conv.push(`leaked secret ${s.name} in ${s.where}`);
  for (const t of tunnels) if (!claimed.has(t.id)) conv.push(`leaked tunnel ${t.id} ${t.name}`);
  for (const r of records) if (!claimed.has(r.id)) conv.push(`leaked DNS record ${r.name} → ${r.content}`);

  return {
    safety,
    convergence: conv,
    counts: {
      liveOrgs: liveOrgs.length,
      canaryOrgs: liveOrgs.filter((o) => o.target === 'canary').length,
      liveWorkspaces: liveWs.length,
      purgedOrgs: orgs.filter((o) => o.purged).length,
      purgedWorkspaces: wss.filter((w) => w.purged).length,
      instances: instances.length,
      securityGroups: groups.length,
      secrets: secrets.length,
      tunnels: tunnels.length,
      dnsRecords: records.length,
    },
  };
}

/** What the orphan scans of every target found together. */
/**
 * Polls the invariants until the world has converged, adding every safety violation seen on the
 * way to `safety`; returns the milliseconds it took, or throws the last report after `timeoutMs`.
 */
export function converge(world: World, safety: Set<string>, timeoutMs: number, intervalMs: number) {
  return until(
    async () => {
      const rep = await checkInvariants(world);
      for (const v of rep.safety) safety.add(v);
      return rep.convergence.length === 0;
    },
    timeoutMs,
    async () => JSON.stringify(await checkInvariants(world), null, 2),
    intervalMs,
  );
}

export interface FleetScan {
  ok: boolean;
  errors: string[];
  /** Open orphans by `target/kind`. */
  counts: Record<string, number>;
}

/**
 * One orphan scan of every target in report mode with the operator's own scanner: what the
 * leaders would count.
 */
export async function orphanScan(world: World): Promise<FleetScan> {
  const operator = createOperator({
    config: loadConfig(world.operatorEnv()),
    database: world.tdb.database,
    logger: createLogger({ level: 'silent' }),
    metrics: operatorMetrics(false),
    cloud: {
      awsCredentials: { accessKeyId: 'AKIDCHAOS', secretAccessKey: world.secrets.AWS_SECRET_ACCESS_KEY },
    },
    orphanPolicy: 'report',
  });
  const results: ScanResult[] = await operator.scanner.scanAll();
  return {
    ok: results.every((r) => r.ok),
    errors: results.flatMap((r) => r.errors.map((e) => `${r.target}: ${e}`)),
    counts: Object.fromEntries(
      results.flatMap((r) => Object.entries(r.counts).map(([kind, n]) => [`${r.target}/${kind}`, n])),
    ),
  };
}

export const totalOrphans = (scan: FleetScan) => Object.values(scan.counts).reduce((a, b) => a + b, 0);
