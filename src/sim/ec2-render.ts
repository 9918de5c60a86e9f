import { SEED } from './seed.js';
import { type Instance, type Rule, type SecurityGroup, STATE_CODES, type Subnet, type Vpc } from './state.js';
import { el, iso, list, tagSet } from './xml.js';

/** XML for EC2 shapes, using the element names the SDK's deserializer expects (reference A2). */

export function instanceArn(i: Instance): string {
  return `arn:aws:ec2:${i.region}:${i.ownerId ?? SEED.accountId}:instance/${i.id}`;
}

export function groupArn(sg: SecurityGroup): string {
  return `arn:aws:ec2:${sg.region}:${sg.ownerId}:security-group/${sg.id}`;
}

export function ruleArn(sg: SecurityGroup, r: Rule): string {
  return `arn:aws:ec2:${sg.region}:${sg.ownerId}:security-group-rule/${r.id}`;
}

const STATE_XML = new Map<string, string>();

function stateXml(name: string, state: Instance['state']): string {
  const key = `${name}|${state}`;
  let xml = STATE_XML.get(key);
  if (xml === undefined) {
    xml = `<${name}><code>${STATE_CODES[state]}</code><name>${state}</name></${name}>`;
    STATE_XML.set(key, xml);
  }
  return xml;
}

// Invariant parts of every instance, written once.
const MONITORING = '<monitoring><state>disabled</state></monitoring>';
const AFTER_GROUPS_STATIC =
  '<architecture>x86_64</architecture><rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/xvda</rootDeviceName>';
const TAIL_STATIC =
  '<platformDetails>Linux/UNIX</platformDetails><usageOperation>RunInstances</usageOperation>' +
  '<bootMode>uefi-preferred</bootMode><currentInstanceBootMode>legacy-bios</currentInstanceBootMode>';

export function renderInstance(i: Instance, groupName: (id: string) => string): string {
  const terminated = i.state === 'terminated';
  const dns = i.privateIp === '' ? '' : `ip-${i.privateIp.replaceAll('.', '-')}.ec2.internal`;
  // NOTE: a terminated instance has lost its ENI: no private address and no groups.
  let groups = '';
  if (!terminated)
    for (const g of i.securityGroupIds)
      groups += `<item><groupId>${g}</groupId>${el('groupName', groupName(g))}</item>`;
  let volumes = '';
  if (!terminated) {
    for (const v of i.volumes) {
      volumes += `<item>${el('deviceName', v.deviceName)}<ebs><volumeId>${v.id}</volumeId><status>attached</status><attachTime>${iso(v.createdAt)}</attachTime><deleteOnTermination>${v.deleteOnTermination}</deleteOnTermination></ebs></item>`;
    }
  }
  const m = i.metadataOptions;
  return (
    `<instanceId>${i.id}</instanceId>${el('imageId', i.imageId)}${stateXml('instanceState', i.state)}` +
    `${el('privateDnsName', dns)}<dnsName/>${el('reason', i.reason)}${el('keyName', i.keyName)}` +
    `<amiLaunchIndex>${i.amiLaunchIndex}</amiLaunchIndex><productCodes/>${el('instanceType', i.instanceType)}` +
    `<launchTime>${iso(i.launchTime)}</launchTime>` +
    `<placement>${el('availabilityZone', i.availabilityZone)}<groupName/><tenancy>default</tenancy></placement>${MONITORING}` +
    `${el('subnetId', i.subnetId)}${el('vpcId', i.vpcId)}${i.privateIp === '' ? '' : `<privateIpAddress>${i.privateIp}</privateIpAddress>`}` +
    `<sourceDestCheck>true</sourceDestCheck>${groups === '' ? '<groupSet/>' : `<groupSet>${groups}</groupSet>`}` +
    (i.stateReason
      ? `<stateReason>${el('code', i.stateReason.code)}${el('message', i.stateReason.message)}</stateReason>`
      : '') +
    AFTER_GROUPS_STATIC +
    (volumes === '' ? '<blockDeviceMapping/>' : `<blockDeviceMapping>${volumes}</blockDeviceMapping>`) +
    `<virtualizationType>hvm</virtualizationType>${el('clientToken', i.clientToken)}${tagSet(i.tags)}` +
    '<hypervisor>xen</hypervisor><networkInterfaceSet/>' +
    (i.iamInstanceProfile
      ? `<iamInstanceProfile>${el('arn', i.iamInstanceProfile.arn)}${el('id', i.iamInstanceProfile.id)}</iamInstanceProfile>`
      : '') +
    '<ebsOptimized>false</ebsOptimized><enaSupport>true</enaSupport>' +
    `<metadataOptions><state>applied</state>${el('httpTokens', m.httpTokens)}<httpPutResponseHopLimit>${m.httpPutResponseHopLimit}</httpPutResponseHopLimit>${el('httpEndpoint', m.httpEndpoint)}<httpProtocolIpv6>disabled</httpProtocolIpv6><instanceMetadataTags>disabled</instanceMetadataTags></metadataOptions>` +
    TAIL_STATIC
  );
}

/** One reservation `<item>` body (used by RunInstances at the root and DescribeInstances in a set). */
export function renderReservation(
  reservationId: string,
  instances: Instance[],
  groupName: (id: string) => string,
): string {
  return (
    el('reservationId', reservationId) +
    el('ownerId', instances[0]?.ownerId ?? SEED.accountId) +
    '<groupSet/>' +
    list('instancesSet', instances, (i) => renderInstance(i, groupName))
  );
}

export function renderStateChange(
  id: string,
  previous: Instance['state'],
  current: Instance['state'],
): string {
  return el('instanceId', id) + stateXml('currentState', current) + stateXml('previousState', previous);
}

function portsXml(r: { protocol: string; fromPort?: number; toPort?: number }): string {
  return r.protocol === '-1' ? '' : el('fromPort', r.fromPort) + el('toPort', r.toPort);
}

/**
 * NOTE: DescribeSecurityGroups groups rules sharing (protocol, from, to) into one
 * IpPermission with several `groups` / `ipRanges` items, in first-seen order.
 */
export function renderPermissions(rules: Rule[], vpcId: string, ownerId: string): string {
  const byKey = new Map<string, Rule[]>();
  for (const r of rules) {
    const key = `${r.protocol}|${r.fromPort ?? ''}|${r.toPort ?? ''}`;
    const bucket = byKey.get(key);
    if (bucket) bucket.push(r);
    else byKey.set(key, [r]);
  }
  return [...byKey.values()]
    .map(
      (rs) =>
        '<item>' +
        el('ipProtocol', rs[0]!.protocol) +
        portsXml(rs[0]!) +
        list(
          'groups',
          rs.filter((r) => r.groupId !== undefined),
          (r) =>
            el('description', r.description) +
            el('userId', r.userId ?? ownerId) +
            el('groupId', r.groupId) +
            el('vpcId', vpcId),
        ) +
        list(
          'ipRanges',
          rs.filter((r) => r.cidrIpv4 !== undefined),
          (r) => el('cidrIp', r.cidrIpv4) + el('description', r.description),
        ) +
        '<ipv6Ranges/><prefixListIds/>' +
        '</item>',
    )
    .join('');
}

export function renderGroup(sg: SecurityGroup): string {
  const ingress = sg.rules.filter((r) => !r.egress);
  const egress = sg.rules.filter((r) => r.egress);
  const perms = (name: string, rules: Rule[]) =>
    rules.length === 0
      ? `<${name}/>`
      : `<${name}>${renderPermissions(rules, sg.vpcId, sg.ownerId)}</${name}>`;
  return (
    el('ownerId', sg.ownerId) +
    el('groupId', sg.id) +
    el('groupName', sg.name) +
    el('groupDescription', sg.description) +
    el('vpcId', sg.vpcId) +
    perms('ipPermissions', ingress) +
    perms('ipPermissionsEgress', egress) +
    tagSet(sg.tags) +
    el('securityGroupArn', groupArn(sg))
  );
}

export function renderRule(sg: SecurityGroup, r: Rule): string {
  const isAll = r.protocol === '-1';
  return (
    el('securityGroupRuleId', r.id) +
    el('groupId', sg.id) +
    el('groupOwnerId', sg.ownerId) +
    el('isEgress', r.egress) +
    el('ipProtocol', r.protocol) +
    el('fromPort', isAll ? -1 : r.fromPort) +
    el('toPort', isAll ? -1 : r.toPort) +
    el('cidrIpv4', r.cidrIpv4) +
    (r.groupId
      ? `<referencedGroupInfo>${el('groupId', r.groupId)}${el('userId', r.userId ?? sg.ownerId)}</referencedGroupInfo>`
      : '') +
    el('description', r.description) +
    tagSet(r.tags) +
    el('securityGroupRuleArn', ruleArn(sg, r))
  );
}

export function renderRevokedRule(sg: SecurityGroup, r: Rule): string {
  const isAll = r.protocol === '-1';
  return (
    el('securityGroupRuleId', r.id) +
    el('groupId', sg.id) +
    el('isEgress', r.egress) +
    el('ipProtocol', r.protocol) +
    el('fromPort', isAll ? -1 : r.fromPort) +
    el('toPort', isAll ? -1 : r.toPort) +
    el('cidrIpv4', r.cidrIpv4) +
    el('referencedGroupId', r.groupId) +
    el('description', r.description)
  );
}

export function renderVpc(v: Vpc): string {
  return (
    el('vpcId', v.id) +
    el('ownerId', v.ownerId ?? SEED.accountId) +
    el('state', 'available') +
    el('cidrBlock', v.cidr) +
    list(
      'cidrBlockAssociationSet',
      [v],
      (x) =>
        el('cidrBlock', x.cidr) +
        el('associationId', `vpc-cidr-assoc-${x.id.slice(4)}`) +
        `<cidrBlockState>${el('state', 'associated')}</cidrBlockState>`,
    ) +
    el('dhcpOptionsId', v.dhcpOptionsId) +
    tagSet(v.tags) +
    el('instanceTenancy', 'default') +
    el('isDefault', v.isDefault)
  );
}

export function renderSubnet(s: Subnet, az: string, availableIps: number): string {
  return (
    el('subnetId', s.id) +
    el('subnetArn', `arn:aws:ec2:${az.slice(0, -1)}:${s.ownerId ?? SEED.accountId}:subnet/${s.id}`) +
    el('state', 'available') +
    el('ownerId', s.ownerId ?? SEED.accountId) +
    el('vpcId', s.vpcId) +
    el('cidrBlock', s.cidr) +
    el('availableIpAddressCount', availableIps) +
    el('availabilityZone', az) +
    el('availabilityZoneId', 'use1-az1') +
    el('defaultForAz', false) +
    el('mapPublicIpOnLaunch', false) +
    tagSet(s.tags)
  );
}
