import { hiddenByConsistency, hiddenFromWrites, pageChance, tagSpecifications } from './ec2-common.js';
import { renderGroup, renderRevokedRule, renderRule } from './ec2-render.js';
import { AwsError, type SimContext, type SimRequest } from './protocol.js';
import {
  collectPage,
  compileFilters,
  decodePageToken,
  type Extractor,
  encodePageToken,
  maxResults,
  type QueryParams,
  tagField,
} from './query.js';
import { type Rule, type SecurityGroup, settle, sgNameKey } from './state.js';
import { list, tagSet } from './xml.js';

/** EC2 security groups: create, describe, authorize/revoke, delete (reference A9, F). */

const GROUP_ID = /^sg-([0-9a-f]{8}|[0-9a-f]{17})$/;

function groupNotFound(id: string): AwsError {
  return new AwsError('InvalidGroup.NotFound', `The security group '${id}' does not exist`);
}

/**
 * NOTE: `GroupName` addressing only works in a default VPC; the simulator has none, so AWS's
 * answer for an account without a default VPC applies.
 */
function noDefaultVpc(): AwsError {
  return new AwsError(
    'VPCIdNotSpecified',
    'No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.',
  );
}

function requireGroup(ctx: SimContext, p: QueryParams): SecurityGroup {
  const id = p.get('GroupId');
  if (id === undefined) {
    if (p.get('GroupName') !== undefined) throw noDefaultVpc();
    throw new AwsError('MissingParameter', 'The request must contain the parameter groupId');
  }
  if (!GROUP_ID.test(id))
    throw new AwsError('InvalidGroupId.Malformed', `Invalid id: "${id}" (expecting "sg-...")`);
  const sg = ctx.state.liveGroup(id);
  if (!sg || hiddenFromWrites(ctx, ctx.clock.now(), sg.createdAt)) throw groupNotFound(id);
  return sg;
}

export function createSecurityGroup(ctx: SimContext, p: QueryParams, req: SimRequest): string {
  const { state, clock, rng } = ctx;
  const name = p.get('GroupName');
  const description = p.get('GroupDescription');
  if (name === undefined || name === '')
    throw new AwsError('MissingParameter', 'The request must contain the parameter GroupName');
  if (description === undefined) {
    throw new AwsError('MissingParameter', 'The request must contain the parameter GroupDescription');
  }
  if (name.length > 255) throw new AwsError('InvalidParameterValue', 'Group name exceeds 255 characters');
  if (name.toLowerCase().startsWith('sg-')) {
    throw new AwsError('InvalidParameterValue', 'Group names may not be in the format sg-*');
  }
  const vpcId = p.get('VpcId') ?? state.defaultVpcId;
  if (!state.vpcs.some((v) => v.id === vpcId)) {
    throw new AwsError('InvalidVpcID.NotFound', `The vpc ID '${vpcId}' does not exist`);
  }
  if (state.sgByName.has(sgNameKey(vpcId, name))) {
    throw new AwsError(
      'InvalidGroup.Duplicate',
      `The security group '${name}' already exists for VPC '${vpcId}'`,
    );
  }
  const tags = tagSpecifications(p, ['security-group']).get('security-group') ?? new Map<string, string>();
  const now = clock.now();
  const sg: SecurityGroup = {
    seq: state.nextSeq(),
    id: `sg-${rng.hex(17)}`,
    name,
    description,
    vpcId,
    region: req.region,
    ownerId: state.account,
    // A new VPC group allows all egress.
    rules: [
      { id: `sgr-${rng.hex(17)}`, egress: true, protocol: '-1', cidrIpv4: '0.0.0.0/0', tags: new Map() },
    ],
    createdAt: now,
    tags,
    everTagged: tags.size > 0,
  };
  state.addSecurityGroup(sg);
  return (
    '<return>true</return>' +
    `<groupId>${sg.id}</groupId>` +
    tagSet(sg.tags) +
    `<securityGroupArn>arn:aws:ec2:${sg.region}:${sg.ownerId}:security-group/${sg.id}</securityGroupArn>`
  );
}

function ruleValues(
  egress: boolean,
  pick: (r: Rule, sg: SecurityGroup) => string | undefined,
): Extractor<SecurityGroup> {
  return (sg) => {
    const out: string[] = [];
    for (const r of sg.rules) {
      if (r.egress !== egress) continue;
      const v = pick(r, sg);
      if (v !== undefined) out.push(v);
    }
    return out;
  };
}

function groupField(name: string): Extractor<SecurityGroup> | undefined {
  const tag = tagField<SecurityGroup>(name);
  if (tag) return tag;
  switch (name) {
    case 'group-id':
      return (sg) => sg.id;
    case 'group-name':
      return (sg) => sg.name;
    case 'vpc-id':
      return (sg) => sg.vpcId;
    case 'description':
      return (sg) => sg.description;
    case 'owner-id':
      return (sg) => sg.ownerId;
  }
  const egress = name.startsWith('egress.');
  const field = egress ? name.slice('egress.'.length) : name;
  switch (field) {
    case 'ip-permission.group-id':
      return ruleValues(egress, (r) => r.groupId);
    case 'ip-permission.cidr':
      return ruleValues(egress, (r) => r.cidrIpv4);
    case 'ip-permission.from-port':
      return ruleValues(egress, (r) => (r.protocol === '-1' ? '-1' : String(r.fromPort)));
    case 'ip-permission.to-port':
      return ruleValues(egress, (r) => (r.protocol === '-1' ? '-1' : String(r.toPort)));
    case 'ip-permission.protocol':
      return ruleValues(egress, (r) => r.protocol);
    case 'ip-permission.user-id':
      return ruleValues(egress, (r, sg) => (r.groupId ? (r.userId ?? sg.ownerId) : undefined));
    default:
      return undefined;
  }
}

export function describeSecurityGroups(ctx: SimContext, p: QueryParams): string {
  const { state, clock } = ctx;
  const now = clock.now();
  const ids = p.list('GroupId');
  if (p.list('GroupName').length > 0) throw noDefaultVpc();
  const limit = maxResults(p);
  if (ids.length > 0 && limit !== undefined) {
    throw new AwsError(
      'InvalidParameterCombination',
      'The parameter groupIdSet cannot be used with the parameter maxResults',
    );
  }
  const filter = compileFilters(p, groupField);
  const fingerprint = p.fingerprint(['MaxResults', 'NextToken']);
  const tokenIn = p.get('NextToken');
  const fromSeq = tokenIn ? decodePageToken(tokenIn, fingerprint) : 0;
  let source: Iterable<SecurityGroup>;
  if (ids.length > 0) {
    const found: SecurityGroup[] = [];
    for (const id of ids) {
      if (!GROUP_ID.test(id))
        throw new AwsError('InvalidGroupId.Malformed', `Invalid id: "${id}" (expecting "sg-...")`);
      const sg = state.liveGroup(id);
      if (!sg || hiddenByConsistency(ctx, sg.createdAt, now)) throw groupNotFound(id);
      if (!found.includes(sg)) found.push(sg);
    }
    source = found.sort((a, b) => a.seq - b.seq);
  } else {
    source = state.securityGroups.scan(fromSeq);
  }
  const accept = (sg: SecurityGroup): boolean =>
    sg.deletedAt === undefined && !hiddenByConsistency(ctx, sg.createdAt, now) && (!filter || filter(sg));
  const { page, nextSeq } = collectPage(
    source,
    accept,
    limit ?? Number.POSITIVE_INFINITY,
    pageChance(ctx, limit),
  );
  return (
    list('securityGroupInfo', page, renderGroup) +
    (nextSeq !== undefined ? `<nextToken>${encodePageToken(nextSeq, fingerprint)}</nextToken>` : '')
  );
}

// --- rules --------------------------------------------------------------------

const PROTOCOLS: Record<string, string> = {
  tcp: 'tcp',
  '6': 'tcp',
  udp: 'udp',
  '17': 'udp',
  icmp: 'icmp',
  '1': 'icmp',
};

function normaliseProtocol(raw: string | undefined): string {
  if (raw === undefined)
    throw new AwsError('MissingParameter', 'The request must contain the parameter ipProtocol');
  const lower = raw.toLowerCase();
  if (lower === '-1' || lower === 'all') return '-1';
  const known = PROTOCOLS[lower];
  if (known) return known;
  if (/^\d+$/.test(lower) && Number(lower) <= 255) return lower;
  throw new AwsError('InvalidParameterValue', `Invalid value '${raw}' for IP protocol. Unknown protocol.`);
}

const CIDR4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

function checkCidr(cidr: string): void {
  const m = CIDR4.exec(cidr);
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) {
    throw new AwsError('InvalidParameterValue', `CIDR block ${cidr} is malformed`);
  }
}

/** A rule as a request names it: a stored {@link Rule} without its id, direction and tags. */
type WantedRule = Omit<Rule, 'id' | 'egress' | 'tags'>;

function ruleKey(r: WantedRule | Rule): string {
  return `${r.protocol}|${r.fromPort ?? ''}|${r.toPort ?? ''}|${r.cidrIpv4 ?? ''}|${r.groupId ?? ''}`;
}

/** Expands `IpPermissions.N` (and the legacy top-level form) into one rule per source. */
function wantedRules(ctx: SimContext, p: QueryParams, sg: SecurityGroup): WantedRule[] {
  const perms = p.structs('IpPermissions');
  if (perms.length === 0 && p.get('IpProtocol') !== undefined) perms.push(p);
  const out: WantedRule[] = [];
  for (const perm of perms) {
    const protocol = normaliseProtocol(perm.get('IpProtocol'));
    let fromPort = perm.int('FromPort', 'fromPort');
    let toPort = perm.int('ToPort', 'toPort');
    if (protocol === 'tcp' || protocol === 'udp') {
      if (fromPort === undefined || toPort === undefined) {
        throw new AwsError(
          'InvalidParameterValue',
          "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange",
        );
      }
      if (fromPort < 0 || toPort > 65_535 || fromPort > toPort) {
        throw new AwsError(
          'InvalidParameterValue',
          `Invalid value for portRange. Must specify a valid fromPort (${fromPort}) and toPort (${toPort}).`,
        );
      }
    } else if (protocol === 'icmp') {
      fromPort ??= -1;
      toPort ??= -1;
    } else {
      fromPort = undefined;
      toPort = undefined;
    }
    const base = { protocol, fromPort, toPort };
    const sources: WantedRule[] = [];
    for (const r of perm.structs('IpRanges')) {
      const cidr = r.get('CidrIp') ?? '';
      checkCidr(cidr);
      sources.push({ ...base, cidrIpv4: cidr, description: r.get('Description') });
    }
    if (perm.get('CidrIp') !== undefined) {
      checkCidr(perm.get('CidrIp')!);
      sources.push({ ...base, cidrIpv4: perm.get('CidrIp') });
    }
    for (const g of perm.structs('Groups')) {
      const gid = g.get('GroupId');
      if (gid === undefined) {
        if (g.get('GroupName') !== undefined) throw noDefaultVpc();
        throw new AwsError('MissingParameter', 'The request must contain the parameter groupId');
      }
      const ref = ctx.state.liveGroup(gid);
      if (!ref || ref.vpcId !== sg.vpcId || hiddenFromWrites(ctx, ctx.clock.now(), ref.createdAt))
        throw groupNotFound(gid);
      sources.push({ ...base, groupId: gid, userId: g.get('UserId'), description: g.get('Description') });
    }
    if (sources.length === 0) {
      throw new AwsError(
        'InvalidParameterValue',
        'The request must contain at least one source (IpRanges, Ipv6Ranges, PrefixListIds or Groups)',
      );
    }
    out.push(...sources);
  }
  if (out.length === 0)
    throw new AwsError('MissingParameter', 'The request must contain the parameter ipPermissions');
  return out;
}

function describeRule(r: WantedRule): string {
  const peer = r.cidrIpv4 ?? r.groupId;
  if (r.protocol === '-1') return `peer: ${peer}, ALL, ALLOW`;
  if (r.protocol === 'icmp') return `peer: ${peer}, ICMP, type: ${r.fromPort}, code: ${r.toPort}, ALLOW`;
  return `peer: ${peer}, ${r.protocol.toUpperCase()}, from port: ${r.fromPort}, to port: ${r.toPort}, ALLOW`;
}

export function authorizeIngress(ctx: SimContext, p: QueryParams, egress: boolean): string {
  const sg = requireGroup(ctx, p);
  const wanted = wantedRules(ctx, p, sg);
  const tags =
    tagSpecifications(p, ['security-group-rule']).get('security-group-rule') ?? new Map<string, string>();
  const existing = new Set(sg.rules.filter((r) => r.egress === egress).map(ruleKey));
  // All or nothing: one duplicate (also within the call) fails the whole request.
  for (const w of wanted) {
    const key = ruleKey(w);
    if (existing.has(key)) {
      throw new AwsError(
        'InvalidPermission.Duplicate',
        `the specified rule "${describeRule(w)}" already exists`,
      );
    }
    existing.add(key);
  }
  const added: Rule[] = wanted.map((w) => ({
    id: `sgr-${ctx.rng.hex(17)}`,
    egress,
    ...w,
    tags: new Map(tags),
  }));
  for (const r of added) {
    if (r.description === undefined) delete r.description;
    if (r.userId === undefined) delete r.userId;
    sg.rules.push(r);
    ctx.state.ruleAdded(sg, r);
  }
  return '<return>true</return>' + list('securityGroupRuleSet', added, (r) => renderRule(sg, r));
}

export function revokeIngress(ctx: SimContext, p: QueryParams, egress: boolean): string {
  const sg = requireGroup(ctx, p);
  const byId = p.list('SecurityGroupRuleId');
  let victims: Rule[];
  if (byId.length > 0) {
    victims = byId.map((id) => {
      const r = sg.rules.find((x) => x.id === id && x.egress === egress);
      if (!r) {
        throw new AwsError(
          'InvalidSecurityGroupRuleId.NotFound',
          `The security group rule ID '${id}' does not exist`,
        );
      }
      return r;
    });
  } else {
    // NOTE: in a non-default VPC any unmatched rule fails the call and nothing is revoked.
    victims = wantedRules(ctx, p, sg).map((w) => {
      const key = ruleKey(w);
      const r = sg.rules.find((x) => x.egress === egress && ruleKey(x) === key);
      if (!r)
        throw new AwsError(
          'InvalidPermission.NotFound',
          'The specified rule does not exist in this security group.',
        );
      return r;
    });
  }
  const gone = new Set(victims);
  sg.rules = sg.rules.filter((r) => !gone.has(r));
  for (const r of gone) ctx.state.ruleRemoved(sg, r);
  return (
    '<return>true</return><unknownIpPermissionSet/>' +
    list('revokedSecurityGroupRuleSet', [...gone], (r) => renderRevokedRule(sg, r))
  );
}

export function deleteSecurityGroup(ctx: SimContext, p: QueryParams): string {
  const { state, clock } = ctx;
  const now = clock.now();
  const sg = requireGroup(ctx, p);
  const dependent = new AwsError('DependencyViolation', `resource ${sg.id} has a dependent object`);
  if (sg.eniId !== undefined) throw dependent;
  // NOTE: a terminated instance's network interface lets go of its groups a while later
  // (fault setting `groupReleaseMs`).
  const release = ctx.faults().groupReleaseMs ?? 0;
  for (const i of state.sgInstances.get(sg.id) ?? []) {
    settle(i, now);
    if (!i.securityGroupIds.includes(sg.id)) continue;
    if (i.state !== 'terminated' || now < (i.terminatedAt ?? 0) + release) throw dependent;
  }
  const referencing = state.sgReferencedBy.get(sg.id);
  if (referencing) {
    for (const other of referencing.keys()) if (other !== sg.id && state.liveGroup(other)) throw dependent;
  }
  state.deleteSecurityGroup(sg, now);
  return `<return>true</return><groupId>${sg.id}</groupId>`;
}
