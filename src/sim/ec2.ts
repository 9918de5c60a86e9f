import {
  groupNameOf,
  hiddenByConsistency,
  hiddenFromWrites,
  MAX_TAGS,
  pageChance,
  tagSpecifications,
  validateTagKey,
} from './ec2-common.js';
import {
  authorizeIngress,
  createSecurityGroup,
  deleteSecurityGroup,
  describeSecurityGroups,
  revokeIngress,
} from './ec2-groups.js';
import { renderReservation, renderStateChange, renderSubnet, renderVpc } from './ec2-render.js';
import { type BucketSpec, DURATIONS, EC2_BUCKETS } from './limits.js';
import { AwsError, type Prepared, type SimContext, type SimRequest, type SimResponse } from './protocol.js';
import {
  collectPage,
  compileFilters,
  decodePageToken,
  type Extractor,
  encodePageToken,
  maxResults,
  QueryParams,
  tagField,
} from './query.js';
import { SEED } from './seed.js';
import {
  describeVisible,
  type Instance,
  type InstanceStateName,
  STATE_CODES,
  type Subnet,
  settle,
  type Taggable,
  type Volume,
  type Vpc,
} from './state.js';
import { ec2ErrorBody, ec2Response, list } from './xml.js';

/** EC2 Query protocol: action dispatch, instances, tags, VPCs and subnets. */

type Handler = (ctx: SimContext, p: QueryParams, req: SimRequest) => string;

const HANDLERS: Record<string, Handler> = {
  RunInstances: runInstances,
  DescribeInstances: describeInstances,
  TerminateInstances: (ctx, p) => changeState(ctx, p, 'terminate'),
  StopInstances: (ctx, p) => changeState(ctx, p, 'stop'),
  StartInstances: (ctx, p) => changeState(ctx, p, 'start'),
  ModifyInstanceAttribute: modifyInstanceAttribute,
  ModifyInstanceMetadataOptions: modifyInstanceMetadataOptions,
  CreateSecurityGroup: createSecurityGroup,
  DescribeSecurityGroups: describeSecurityGroups,
  AuthorizeSecurityGroupIngress: (ctx, p) => authorizeIngress(ctx, p, false),
  AuthorizeSecurityGroupEgress: (ctx, p) => authorizeIngress(ctx, p, true),
  RevokeSecurityGroupIngress: (ctx, p) => revokeIngress(ctx, p, false),
  RevokeSecurityGroupEgress: (ctx, p) => revokeIngress(ctx, p, true),
  DeleteSecurityGroup: deleteSecurityGroup,
  CreateTags: createTags,
  DeleteTags: deleteTags,
  DescribeVpcs: describeVpcs,
  DescribeSubnets: describeSubnets,
  DescribeImages: describeImages,
};

const RESOURCE_INTENSIVE = new Set([
  'AuthorizeSecurityGroupIngress',
  'AuthorizeSecurityGroupEgress',
  'RevokeSecurityGroupIngress',
  'RevokeSecurityGroupEgress',
]);

type OwnBucket = 'RunInstances' | 'StartInstances' | 'TerminateInstances' | 'CreateTags' | 'DeleteTags';
const OWN_BUCKET = new Set<string>([
  'RunInstances',
  'StartInstances',
  'TerminateInstances',
  'CreateTags',
  'DeleteTags',
]);

export function isMutatingEc2(action: string): boolean {
  return HANDLERS[action] !== undefined && !action.startsWith('Describe');
}

/** The token bucket an action draws from (reference anchors §5; see limits.ts). */
export function ec2Bucket(action: string, p: QueryParams): { key: string; spec: BucketSpec } {
  if (OWN_BUCKET.has(action)) return { key: `ec2:${action}`, spec: EC2_BUCKETS[action as OwnBucket] };
  if (RESOURCE_INTENSIVE.has(action)) return { key: `ec2:${action}`, spec: EC2_BUCKETS.resourceIntensive };
  if (action.startsWith('Describe')) {
    const unfiltered =
      (action === 'DescribeInstances' || action === 'DescribeSecurityGroups') &&
      !p.has('MaxResults') &&
      !p.has('NextToken') &&
      !p.has('Filter.1.Name') &&
      !p.has('InstanceId.1') &&
      !p.has('GroupId.1') &&
      !p.has('GroupName.1');
    return unfiltered
      ? { key: `ec2:${action}:unfiltered`, spec: EC2_BUCKETS.unfilteredDescribe }
      : { key: `ec2:${action}`, spec: EC2_BUCKETS.nonMutating };
  }
  return { key: `ec2:${action}`, spec: EC2_BUCKETS.mutating };
}

function targetOf(action: string, p: QueryParams): string | undefined {
  switch (action) {
    case 'RunInstances': {
      for (const spec of p.structs('TagSpecification')) {
        if (spec.get('ResourceType') !== 'instance') continue;
        const tags = new Map(spec.structs('Tag').map((t) => [t.get('Key') ?? '', t.get('Value') ?? '']));
        const owner = tags.get('WorkspaceID') ?? tags.get('OrgID');
        if (owner !== undefined) return owner;
      }
      return undefined;
    }
    case 'TerminateInstances':
    case 'StopInstances':
    case 'StartInstances':
      return p.list('InstanceId').join(',');
    case 'ModifyInstanceAttribute':
    case 'ModifyInstanceMetadataOptions':
      return p.get('InstanceId');
    case 'CreateSecurityGroup':
      return p.get('GroupName');
    case 'AuthorizeSecurityGroupIngress':
    case 'AuthorizeSecurityGroupEgress':
    case 'RevokeSecurityGroupIngress':
    case 'RevokeSecurityGroupEgress':
    case 'DeleteSecurityGroup':
      return p.get('GroupId') ?? p.get('GroupName');
    case 'CreateTags':
    case 'DeleteTags':
      return p.list('ResourceId').join(',');
    default:
      return undefined;
  }
}

function xmlResponse(status: number, body: string, requestId: string): SimResponse {
  return {
    status,
    headers: { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-requestid': requestId },
    body,
  };
}

export function ec2Error(e: AwsError, requestId: string): SimResponse {
  return xmlResponse(e.status, ec2ErrorBody(e.code, e.message, requestId), requestId);
}

export function prepareEc2(ctx: SimContext, req: SimRequest): Prepared {
  const p = QueryParams.parse(req.method === 'GET' ? req.query.toString() : req.body);
  const action = p.get('Action') ?? '';
  const handler = HANDLERS[action];
  return {
    service: 'ec2',
    operation: action === '' ? 'MissingAction' : action,
    mutating: isMutatingEc2(action),
    target: targetOf(action, p),
    bucket: handler ? ec2Bucket(action, p) : undefined,
    run() {
      try {
        if (!handler) {
          if (action === '')
            throw new AwsError('MissingAction', 'The request must contain the parameter Action');
          throw new AwsError('InvalidAction', `The action ${action} is not valid for this web service.`);
        }
        // NOTE: DryRun answers 412 and must not consume a RunInstances client token.
        if (p.get('DryRun') === 'true') {
          throw new AwsError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);
        }
        return xmlResponse(200, ec2Response(action, req.requestId, handler(ctx, p, req)), req.requestId);
      } catch (e) {
        if (e instanceof AwsError) return ec2Error(e, req.requestId);
        return ec2Error(
          new AwsError('InternalError', `An internal error has occurred: ${String(e)}`, 500),
          req.requestId,
        );
      }
    },
    throttled: () =>
      ec2Error(new AwsError('RequestLimitExceeded', 'Request limit exceeded.', 503), req.requestId),
    failed: () =>
      // Alternate between the two 5xx forms without touching the id generator.
      req.requestId.charCodeAt(0) % 2 === 0
        ? ec2Error(new AwsError('InternalError', 'An internal error has occurred', 500), req.requestId)
        : ec2Error(
            new AwsError('Unavailable', "The server is overloaded and can't handle the request.", 503),
            req.requestId,
          ),
  };
}

// --- helpers -----------------------------------------------------------------

const INSTANCE_ID = /^i-([0-9a-f]{8}|[0-9a-f]{17})$/;

function checkInstanceId(id: string): void {
  if (!INSTANCE_ID.test(id)) throw new AwsError('InvalidInstanceID.Malformed', `Invalid id: "${id}"`);
}

export function instanceNotFound(ids: string[]): AwsError {
  return ids.length === 1
    ? new AwsError('InvalidInstanceID.NotFound', `The instance ID '${ids[0]}' does not exist`)
    : new AwsError('InvalidInstanceID.NotFound', `The instance IDs '${ids.join(', ')}' do not exist`);
}

/** Looks up every id or throws NotFound naming all missing ones (nothing is changed then). */
function requireInstances(ctx: SimContext, ids: string[], now: number, forDescribe: boolean): Instance[] {
  for (const id of ids) checkInstanceId(id);
  const found: Instance[] = [];
  const missing: string[] = [];
  for (const id of ids) {
    const i = ctx.state.instances.get(id);
    if (
      !i ||
      !describeVisible(i, now) ||
      (forDescribe
        ? hiddenByConsistency(ctx, i.createdAt, now)
        : hiddenFromWrites(ctx, now, i.createdAt, i.terminateCalledAt))
    )
      missing.push(id);
    else found.push(i);
  }
  if (missing.length > 0) throw instanceNotFound(missing);
  return found;
}

function userInitiated(now: number): string {
  return `User initiated (${new Date(now).toISOString().slice(0, 19).replace('T', ' ')} GMT)`;
}

const SHUTDOWN_REASON = {
  code: 'Client.UserInitiatedShutdown',
  message: 'Client.UserInitiatedShutdown: User initiated shutdown',
};

// --- instances ---------------------------------------------------------------

function runInstances(ctx: SimContext, p: QueryParams, req: SimRequest): string {
  const { state, clock, rng } = ctx;
  const now = clock.now();
  const token = p.get('ClientToken') ?? '';
  if (token.length > 64) {
    throw new AwsError(
      'InvalidParameterValue',
      `Value (${token}) for parameter clientToken is invalid. Length exceeds 64.`,
    );
  }
  const fingerprint = p.fingerprint(['ClientToken']);
  if (token !== '') {
    const rec = state.clientTokens.get(token);
    if (rec && now < rec.at + DURATIONS.clientTokenMs) {
      if (rec.fingerprint !== fingerprint) {
        throw new AwsError(
          'IdempotentParameterMismatch',
          `Arguments on this idempotent request are inconsistent with arguments used in previous request(s).`,
        );
      }
      for (const i of rec.instances) settle(i, now);
      return renderReservation(rec.reservationId, rec.instances, groupNameOf(state));
    }
  }

  const imageId = p.get('ImageId');
  if (imageId === undefined)
    throw new AwsError('MissingParameter', 'The request must contain the parameter ImageId');
  if (!/^ami-([0-9a-f]{8}|[0-9a-f]{17})$/.test(imageId)) {
    throw new AwsError('InvalidAMIID.Malformed', `Invalid id: "${imageId}" (expecting "ami-...")`);
  }
  const minCount = p.int('MinCount');
  const maxCount = p.int('MaxCount');
  if (minCount === undefined)
    throw new AwsError('MissingParameter', 'The request must contain the parameter MinCount');
  if (maxCount === undefined)
    throw new AwsError('MissingParameter', 'The request must contain the parameter MaxCount');
  if (minCount < 1 || maxCount < 1 || minCount > maxCount) {
    throw new AwsError(
      'InvalidParameterValue',
      `Invalid value for MinCount (${minCount}) / MaxCount (${maxCount})`,
    );
  }
  const instanceType = p.get('InstanceType') ?? 'm1.small';
  if (!/^[a-z0-9-]+\.[a-z0-9-]+$/.test(instanceType)) {
    throw new AwsError('InvalidParameterValue', `Invalid value '${instanceType}' for InstanceType.`);
  }

  const subnetId = p.get('SubnetId') ?? state.defaultSubnetId;
  const subnet = state.subnets.find((s) => s.id === subnetId);
  if (!subnet) throw new AwsError('InvalidSubnetID.NotFound', `The subnet ID '${subnetId}' does not exist`);
  const groupIds: string[] = [];
  for (const id of p.list('SecurityGroupId')) {
    const sg = state.liveGroup(id);
    if (!sg || sg.vpcId !== subnet.vpcId || hiddenFromWrites(ctx, now, sg.createdAt)) {
      throw new AwsError(
        'InvalidGroup.NotFound',
        `The security group '${id}' does not exist in VPC '${subnet.vpcId}'`,
      );
    }
    if (!groupIds.includes(id)) groupIds.push(id);
  }
  for (const name of p.list('SecurityGroup')) {
    const sg = state.sgByName.get(`${subnet.vpcId}\0${name.toLowerCase()}`);
    if (!sg)
      throw new AwsError(
        'InvalidGroup.NotFound',
        `The security group '${name}' does not exist in VPC '${subnet.vpcId}'`,
      );
    if (!groupIds.includes(sg.id)) groupIds.push(sg.id);
  }
  // NOTE: AWS attaches the VPC's default group to an instance launched without one.
  if (groupIds.length === 0 && ctx.faults().defaultGroupOnLaunch) {
    const fallback = state.sgByName.get(`${subnet.vpcId}\0default`);
    if (fallback) groupIds.push(fallback.id);
  }

  const userData = p.get('UserData');
  if (userData !== undefined) {
    if (
      !/^[A-Za-z0-9+/]*={0,2}$/.test(userData.replace(/\s/g, '')) ||
      userData.replace(/\s/g, '').length % 4 !== 0
    ) {
      throw new AwsError('InvalidParameterValue', 'Invalid BASE64 encoding of user data.');
    }
    if (Buffer.from(userData, 'base64').length > 16_384) {
      throw new AwsError('InvalidParameterValue', 'User data is limited to 16384 bytes');
    }
  }

  let iamInstanceProfile: Instance['iamInstanceProfile'];
  const profileName = p.get('IamInstanceProfile.Name');
  const profileArn = p.get('IamInstanceProfile.Arn');
  if (profileName !== undefined || profileArn !== undefined) {
    const arn = profileArn ?? `arn:aws:iam::${state.account}:instance-profile/${profileName}`;
    if (!/^arn:aws:iam::\d{12}:instance-profile\/.+/.test(arn)) {
      throw new AwsError(
        'InvalidParameterValue',
        `Value (${arn}) for parameter iamInstanceProfile.arn is invalid.`,
      );
    }
    iamInstanceProfile = { arn, id: `AIPA${fnvUpper(arn)}` };
  }

  const httpTokens = p.get('MetadataOptions.HttpTokens') ?? 'optional';
  if (httpTokens !== 'optional' && httpTokens !== 'required') {
    throw new AwsError('InvalidParameterValue', `Invalid value '${httpTokens}' for HttpTokens`);
  }
  const httpEndpoint = p.get('MetadataOptions.HttpEndpoint') ?? 'enabled';
  if (httpEndpoint !== 'enabled' && httpEndpoint !== 'disabled') {
    throw new AwsError('InvalidParameterValue', `Invalid value '${httpEndpoint}' for HttpEndpoint`);
  }
  const hopLimit = p.int('MetadataOptions.HttpPutResponseHopLimit') ?? 1;
  if (hopLimit < 1 || hopLimit > 64) {
    throw new AwsError('InvalidParameterValue', `Invalid value '${hopLimit}' for HttpPutResponseHopLimit`);
  }
  const metadataOptions = { httpTokens, httpEndpoint, httpPutResponseHopLimit: hopLimit };

  const mappings = p.structs('BlockDeviceMapping').map((m) => {
    const size = m.int('Ebs.VolumeSize');
    if (size !== undefined && (size < 1 || size > 16_384)) {
      throw new AwsError(
        'InvalidParameterValue',
        `Volume of ${size}GiB is outside the allowed range (1-16384)`,
      );
    }
    return {
      deviceName: m.get('DeviceName') ?? '/dev/xvda',
      size,
      volumeType: m.get('Ebs.VolumeType') ?? 'gp3',
      deleteOnTermination: m.get('Ebs.DeleteOnTermination') !== 'false',
      encrypted: m.get('Ebs.Encrypted') === 'true',
    };
  });
  if (!mappings.some((m) => m.deviceName === '/dev/xvda')) {
    mappings.unshift({
      deviceName: '/dev/xvda',
      size: 8,
      volumeType: 'gp3',
      deleteOnTermination: true,
      encrypted: false,
    });
  }

  const tagSpecs = tagSpecifications(p, ['instance', 'volume', 'network-interface']);
  const region = req.region;
  const az = p.get('Placement.AvailabilityZone') ?? `${region}a`;
  const reservationId = `r-${rng.hex(17)}`;
  const instances: Instance[] = [];
  for (let n = 0; n < maxCount; n++) {
    const volumes: Volume[] = mappings.map((m) => ({
      id: `vol-${rng.hex(17)}`,
      deviceName: m.deviceName,
      size: m.size ?? 8,
      volumeType: m.volumeType,
      deleteOnTermination: m.deleteOnTermination,
      encrypted: m.encrypted,
      createdAt: now,
      tags: new Map(tagSpecs.get('volume') ?? []),
      everTagged: (tagSpecs.get('volume')?.size ?? 0) > 0,
    }));
    const instance: Instance = {
      seq: state.nextSeq(),
      ownerId: state.account,
      id: `i-${rng.hex(17)}`,
      reservationId,
      region,
      availabilityZone: az,
      imageId,
      instanceType,
      keyName: p.get('KeyName'),
      subnetId,
      vpcId: subnet.vpcId,
      privateIp: state.nextPrivateIp(),
      securityGroupIds: [...groupIds],
      clientToken: token,
      userData,
      iamInstanceProfile,
      metadataOptions,
      volumes,
      amiLaunchIndex: n,
      createdAt: now,
      launchTime: now,
      state: 'pending',
      transition: { to: 'running', at: now + ctx.durations.pending },
      reason: '',
      stateReason: { code: 'pending', message: 'pending' },
      tags: new Map(tagSpecs.get('instance') ?? []),
      everTagged: (tagSpecs.get('instance')?.size ?? 0) > 0,
    };
    state.addInstance(instance);
    instances.push(instance);
  }
  if (token !== '') state.clientTokens.set(token, { token, fingerprint, reservationId, instances, at: now });
  return renderReservation(reservationId, instances, groupNameOf(state));
}

function fnvUpper(text: string): string {
  let h = 0x811c9dc5;
  let out = '';
  for (let round = 0; out.length < 17; round++) {
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i) + round;
      h = Math.imul(h, 0x01000193);
    }
    out += (h >>> 0).toString(36).toUpperCase();
  }
  return out.slice(0, 17);
}

function instanceField(name: string): Extractor<Instance> | undefined {
  const tag = tagField<Instance>(name);
  if (tag) return tag;
  switch (name) {
    case 'instance-id':
      return (i) => i.id;
    case 'instance-state-name':
      return (i) => i.state;
    case 'instance-state-code':
      return (i) => String(STATE_CODES[i.state]);
    case 'vpc-id':
      return (i) => i.vpcId;
    case 'subnet-id':
      return (i) => i.subnetId;
    case 'image-id':
      return (i) => i.imageId;
    case 'instance-type':
      return (i) => i.instanceType;
    case 'client-token':
      return (i) => i.clientToken;
    case 'reservation-id':
      return (i) => i.reservationId;
    case 'key-name':
      return (i) => i.keyName;
    case 'private-ip-address':
      return (i) => i.privateIp;
    case 'availability-zone':
    case 'placement.availability-zone':
      return (i) => i.availabilityZone;
    case 'launch-time':
      return (i) => new Date(i.launchTime).toISOString();
    case 'metadata-options.http-tokens':
      return (i) => i.metadataOptions.httpTokens;
    case 'iam-instance-profile.arn':
      return (i) => i.iamInstanceProfile?.arn;
    case 'owner-id':
      return (i) => i.ownerId ?? SEED.accountId;
    case 'instance.group-id':
    case 'group-id':
      return (i) => (i.state === 'terminated' ? [] : i.securityGroupIds);
    default:
      return undefined;
  }
}

function describeInstances(ctx: SimContext, p: QueryParams): string {
  const { state, clock } = ctx;
  const now = clock.now();
  const ids = p.list('InstanceId');
  const limit = maxResults(p);
  if (ids.length > 0 && limit !== undefined) {
    throw new AwsError(
      'InvalidParameterCombination',
      'The parameter instancesSet cannot be used with the parameter maxResults',
    );
  }
  const fieldFor = (name: string): Extractor<Instance> | undefined => {
    if (name === 'instance.group-name' || name === 'group-name') {
      return (i) =>
        i.state === 'terminated'
          ? []
          : i.securityGroupIds.map((g) => state.securityGroups.get(g)?.name ?? '');
    }
    return instanceField(name);
  };
  const filter = compileFilters(p, fieldFor);
  const fingerprint = p.fingerprint(['MaxResults', 'NextToken']);
  const tokenIn = p.get('NextToken');
  const fromSeq = tokenIn ? decodePageToken(tokenIn, fingerprint) : 0;

  let source: Iterable<Instance>;
  if (ids.length > 0) {
    source = requireInstances(ctx, ids, now, true).sort((a, b) => a.seq - b.seq);
  } else {
    source = state.instances.scan(fromSeq);
  }
  const accept = (i: Instance): boolean =>
    describeVisible(i, now) &&
    !hiddenByConsistency(ctx, i.createdAt, now) &&
    (filter === undefined || filter(i));
  const { page, nextSeq } = collectPage(
    source,
    accept,
    limit ?? Number.POSITIVE_INFINITY,
    pageChance(ctx, limit),
  );

  // Consecutive instances of one reservation share a reservation item.
  const reservations: { id: string; instances: Instance[] }[] = [];
  for (const i of page) {
    const last = reservations[reservations.length - 1];
    if (last && last.id === i.reservationId) last.instances.push(i);
    else reservations.push({ id: i.reservationId, instances: [i] });
  }
  const names = groupNameOf(state);
  return (
    list('reservationSet', reservations, (r) => renderReservation(r.id, r.instances, names)) +
    (nextSeq !== undefined ? `<nextToken>${encodePageToken(nextSeq, fingerprint)}</nextToken>` : '')
  );
}

type Change = 'terminate' | 'stop' | 'start';

function changeState(ctx: SimContext, p: QueryParams, change: Change): string {
  const now = ctx.clock.now();
  const ids = p.list('InstanceId');
  if (ids.length === 0)
    throw new AwsError('MissingParameter', 'The request must contain the parameter InstanceId');
  const instances = requireInstances(ctx, ids, now, false);
  // Validate every instance before changing any (the call is all-or-nothing).
  for (const i of instances) {
    if (change === 'stop' && !['running', 'stopping', 'stopped'].includes(i.state)) {
      throw new AwsError(
        'IncorrectInstanceState',
        `The instance '${i.id}' is not in a state from which it can be stopped.`,
      );
    }
    if (change === 'start' && !['stopped', 'pending', 'running'].includes(i.state)) {
      throw new AwsError(
        'IncorrectInstanceState',
        `The instance '${i.id}' is not in a state from which it can be started.`,
      );
    }
  }
  const items: string[] = [];
  for (const i of instances) {
    const previous: InstanceStateName = i.state;
    if (previous === 'running' && change !== 'start') i.stoppedRunningAt = now;
    if (change === 'terminate' && previous !== 'shutting-down' && previous !== 'terminated') {
      i.terminateCalledAt ??= now;
      i.state = 'shutting-down';
      i.transition = { to: 'terminated', at: now + ctx.durations.shuttingDown };
      i.reason = userInitiated(now);
      i.stateReason = SHUTDOWN_REASON;
    } else if (change === 'stop' && previous === 'running') {
      i.state = 'stopping';
      i.transition = { to: 'stopped', at: now + ctx.durations.stopping };
      i.reason = userInitiated(now);
      i.stateReason = SHUTDOWN_REASON;
    } else if (change === 'start' && previous === 'stopped') {
      i.state = 'pending';
      i.transition = { to: 'running', at: now + ctx.durations.pending };
      i.launchTime = now;
      i.reason = '';
      i.stateReason = { code: 'pending', message: 'pending' };
    }
    items.push(`<item>${renderStateChange(i.id, previous, i.state)}</item>`);
  }
  return `<instancesSet>${items.join('')}</instancesSet>`;
}

function modifyInstanceAttribute(ctx: SimContext, p: QueryParams): string {
  const now = ctx.clock.now();
  const id = p.get('InstanceId');
  if (id === undefined)
    throw new AwsError('MissingParameter', 'The request must contain the parameter InstanceId');
  const [i] = requireInstances(ctx, [id], now, false);
  const attribute = p.get('Attribute');
  const instanceType =
    p.get('InstanceType.Value') ?? (attribute === 'instanceType' ? p.get('Value') : undefined);
  const userData = p.get('UserData.Value') ?? (attribute === 'userData' ? p.get('Value') : undefined);
  const groupIds = p.list('GroupId');
  if (instanceType === undefined && userData === undefined && groupIds.length === 0) {
    throw new AwsError('InvalidParameterCombination', 'No attributes specified.');
  }
  if ((instanceType !== undefined || userData !== undefined) && i!.state !== 'stopped') {
    throw new AwsError('IncorrectInstanceState', `The instance '${i!.id}' is not in the 'stopped' state.`);
  }
  if (instanceType !== undefined && !/^[a-z0-9-]+\.[a-z0-9-]+$/.test(instanceType)) {
    throw new AwsError(
      'InvalidInstanceAttributeValue',
      `Value (${instanceType}) for parameter instanceType is invalid.`,
    );
  }
  if (groupIds.length > 0) {
    if (i!.state === 'terminated' || i!.state === 'shutting-down') {
      throw new AwsError(
        'IncorrectInstanceState',
        `The instance '${i!.id}' is not in a valid state for this operation.`,
      );
    }
    for (const g of groupIds) {
      const sg = ctx.state.liveGroup(g);
      if (!sg || sg.vpcId !== i!.vpcId || hiddenFromWrites(ctx, now, sg.createdAt))
        throw new AwsError('InvalidGroup.NotFound', `The security group '${g}' does not exist`);
    }
    ctx.state.setInstanceGroups(i!, [...new Set(groupIds)]);
  }
  if (instanceType !== undefined) i!.instanceType = instanceType;
  if (userData !== undefined) i!.userData = userData;
  return '<return>true</return>';
}

/** IMDS settings of a live instance; unspecified ones keep their value (the change applies at once). */
function modifyInstanceMetadataOptions(ctx: SimContext, p: QueryParams): string {
  const now = ctx.clock.now();
  const id = p.get('InstanceId');
  if (id === undefined)
    throw new AwsError('MissingParameter', 'The request must contain the parameter InstanceId');
  const [i] = requireInstances(ctx, [id], now, false);
  if (i!.state === 'terminated' || i!.state === 'shutting-down')
    throw new AwsError(
      'IncorrectInstanceState',
      `The instance '${i!.id}' is not in a valid state for this operation.`,
    );
  const httpTokens = p.get('HttpTokens');
  if (httpTokens !== undefined && httpTokens !== 'optional' && httpTokens !== 'required')
    throw new AwsError('InvalidParameterValue', `Invalid value '${httpTokens}' for HttpTokens`);
  const hops = p.int('HttpPutResponseHopLimit');
  if (hops !== undefined && (hops < 1 || hops > 64))
    throw new AwsError('InvalidParameterValue', 'The HttpPutResponseHopLimit must be between 1 and 64.');
  const endpoint = p.get('HttpEndpoint');
  if (endpoint !== undefined && endpoint !== 'enabled' && endpoint !== 'disabled')
    throw new AwsError('InvalidParameterValue', `Invalid value '${endpoint}' for HttpEndpoint`);
  const m = i!.metadataOptions;
  i!.metadataOptions = {
    httpTokens: httpTokens ?? m.httpTokens,
    httpEndpoint: endpoint ?? m.httpEndpoint,
    httpPutResponseHopLimit: hops ?? m.httpPutResponseHopLimit,
  };
  const n = i!.metadataOptions;
  return `<instanceId>${i!.id}</instanceId><instanceMetadataOptions><state>pending</state><httpTokens>${n.httpTokens}</httpTokens><httpPutResponseHopLimit>${n.httpPutResponseHopLimit}</httpPutResponseHopLimit><httpEndpoint>${n.httpEndpoint}</httpEndpoint><httpProtocolIpv6>disabled</httpProtocolIpv6><instanceMetadataTags>disabled</instanceMetadataTags></instanceMetadataOptions>`;
}

// --- tags --------------------------------------------------------------------

function taggableById(ctx: SimContext, id: string, now: number): Taggable {
  const { state } = ctx;
  if (id.startsWith('i-')) {
    const i = state.instances.get(id);
    if (!i || !describeVisible(i, now) || hiddenFromWrites(ctx, now, i.createdAt, i.terminateCalledAt))
      throw instanceNotFound([id]);
    return i;
  }
  if (id.startsWith('sg-')) {
    const sg = state.liveGroup(id);
    if (!sg || hiddenFromWrites(ctx, now, sg.createdAt))
      throw new AwsError('InvalidGroup.NotFound', `The security group '${id}' does not exist`);
    return sg;
  }
  if (id.startsWith('vol-')) {
    const v = state.volumes.get(id);
    if (!v || (v.deletedAt !== undefined && v.deletedAt <= now)) {
      throw new AwsError('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
    }
    return v;
  }
  if (id.startsWith('vpc-')) {
    const v = state.vpcs.find((x) => x.id === id);
    if (!v) throw new AwsError('InvalidVpcID.NotFound', `The vpc ID '${id}' does not exist`);
    return { tags: v.tags, everTagged: true };
  }
  if (id.startsWith('subnet-')) {
    const s = state.subnets.find((x) => x.id === id);
    if (!s) throw new AwsError('InvalidSubnetID.NotFound', `The subnet ID '${id}' does not exist`);
    return { tags: s.tags, everTagged: true };
  }
  throw new AwsError('InvalidID', `The ID '${id}' is not valid`);
}

function createTags(ctx: SimContext, p: QueryParams): string {
  const now = ctx.clock.now();
  const ids = p.list('ResourceId');
  if (ids.length === 0)
    throw new AwsError('MissingParameter', 'The request must contain the parameter resourceIdSet');
  if (ids.length > 1000) throw new AwsError('InvalidParameterValue', 'Too many resource ids (maximum 1000)');
  const tags = p.structs('Tag').map((t) => [t.get('Key') ?? '', t.get('Value') ?? ''] as const);
  if (tags.length === 0)
    throw new AwsError('MissingParameter', 'The request must contain the parameter tagSet');
  for (const [k] of tags) validateTagKey(k);
  const resources = ids.map((id) => taggableById(ctx, id, now));
  for (const r of resources) {
    const keys = new Set([...r.tags.keys(), ...tags.map(([k]) => k)]);
    if (keys.size > MAX_TAGS)
      throw new AwsError('TagLimitExceeded', 'The maximum number of Tags for a resource has been reached.');
  }
  for (const r of resources) for (const [k, v] of tags) ctx.state.setTag(r, k, v);
  return '<return>true</return>';
}

/**
 * NOTE: DeleteTags semantics (reference A8): key only → delete whatever the value; key with
 * `Value=""` → only if empty; key with value → only on a match; no Tag list → every non-`aws:` tag.
 */
function deleteTags(ctx: SimContext, p: QueryParams): string {
  const now = ctx.clock.now();
  const ids = p.list('ResourceId');
  if (ids.length === 0)
    throw new AwsError('MissingParameter', 'The request must contain the parameter resourceIdSet');
  const specs = p.structs('Tag').map((t) => ({ key: t.get('Key') ?? '', value: t.get('Value') }));
  const resources = ids.map((id) => taggableById(ctx, id, now));
  for (const r of resources) {
    if (specs.length === 0) {
      for (const k of [...r.tags.keys()]) if (!k.startsWith('aws:')) ctx.state.deleteTag(r, k);
      continue;
    }
    for (const { key, value } of specs) {
      const have = r.tags.get(key);
      if (have === undefined) continue;
      if (value === undefined || value === have) ctx.state.deleteTag(r, key);
    }
  }
  return '<return>true</return>';
}

// --- Images ------------------------------------------------------------------

/** Root device of every simulated image (an Amazon Linux-style AMI). */
export const SIM_ROOT_DEVICE = '/dev/xvda';

/**
 * NOTE: every well-formed AMI id exists in the simulator, as an EBS-backed x86_64 image whose
 * root device is {@link SIM_ROOT_DEVICE}: callers that size the root volume must map that name
 * (real Ubuntu images use /dev/sda1, Amazon Linux /dev/xvda), which is why they ask first.
 */
function describeImages(_ctx: SimContext, p: QueryParams): string {
  const ids = p.list('ImageId');
  for (const id of ids) {
    if (!/^ami-[0-9a-f]{8,17}$/.test(id)) throw new AwsError('InvalidAMIID.Malformed', `Invalid id: "${id}"`);
  }
  const items = ids
    .map(
      (id) =>
        `<item><imageId>${id}</imageId><imageLocation>sim/${id}</imageLocation><imageState>available</imageState>` +
        `<imageOwnerId>${SEED.accountId}</imageOwnerId><isPublic>false</isPublic><architecture>x86_64</architecture>` +
        `<imageType>machine</imageType><name>sim-image-${id}</name><rootDeviceType>ebs</rootDeviceType>` +
        `<rootDeviceName>${SIM_ROOT_DEVICE}</rootDeviceName><blockDeviceMapping><item><deviceName>${SIM_ROOT_DEVICE}</deviceName>` +
        `<ebs><volumeSize>8</volumeSize><deleteOnTermination>true</deleteOnTermination><volumeType>gp3</volumeType></ebs></item></blockDeviceMapping>` +
        `<virtualizationType>hvm</virtualizationType><hypervisor>xen</hypervisor><enaSupport>true</enaSupport></item>`,
    )
    .join('');
  return `<imagesSet>${items}</imagesSet>`;
}

// --- VPCs and subnets ----------------------------------------------------------

function describeVpcs(ctx: SimContext, p: QueryParams): string {
  const ids = p.list('VpcId');
  const filter = compileFilters<Vpc>(p, (name) => {
    const tag = tagField<Vpc>(name);
    if (tag) return tag;
    switch (name) {
      case 'vpc-id':
        return (v) => v.id;
      case 'cidr':
      case 'cidr-block-association.cidr-block':
        return (v) => v.cidr;
      case 'state':
        return () => 'available';
      case 'is-default':
        return (v) => String(v.isDefault);
      case 'owner-id':
        return (v) => v.ownerId ?? SEED.accountId;
      case 'dhcp-options-id':
        return (v) => v.dhcpOptionsId;
      default:
        return undefined;
    }
  });
  maxResults(p);
  for (const id of ids) {
    if (!ctx.state.vpcs.some((v) => v.id === id))
      throw new AwsError('InvalidVpcID.NotFound', `The vpc ID '${id}' does not exist`);
  }
  const vpcs = ctx.state.vpcs.filter(
    (v) => (ids.length === 0 || ids.includes(v.id)) && (!filter || filter(v)),
  );
  return list('vpcSet', vpcs, renderVpc);
}

function describeSubnets(ctx: SimContext, p: QueryParams, req: SimRequest): string {
  const ids = p.list('SubnetId');
  const filter = compileFilters<Subnet>(p, (name) => {
    const tag = tagField<Subnet>(name);
    if (tag) return tag;
    if (name === 'subnet-id') return (s) => s.id;
    if (name === 'vpc-id') return (s) => s.vpcId;
    if (name === 'cidr-block') return (s) => s.cidr;
    if (name === 'state') return () => 'available';
    return undefined;
  });
  for (const id of ids) {
    if (!ctx.state.subnets.some((s) => s.id === id)) {
      throw new AwsError('InvalidSubnetID.NotFound', `The subnet ID '${id}' does not exist`);
    }
  }
  const subnets = ctx.state.subnets.filter(
    (s) => (ids.length === 0 || ids.includes(s.id)) && (!filter || filter(s)),
  );
  const used = ctx.state.instances.size;
  return list('subnetSet', subnets, (s) => renderSubnet(s, `${req.region}a`, Math.max(0, 65_531 - used)));
}
