import { createHash } from 'node:crypto';
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  CreateTagsCommand,
  DeleteSecurityGroupCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeVpcsCommand,
  type EC2Client,
  type Filter,
  type IpPermission,
  ModifyInstanceAttributeCommand,
  ModifyInstanceMetadataOptionsCommand,
  RevokeSecurityGroupIngressCommand,
  RunInstancesCommand,
  type Instance as SdkInstance,
  type SecurityGroup as SdkSecurityGroup,
  StartInstancesCommand,
  StopInstancesCommand,
  type Tag,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  isConflict,
  isNotFound,
  NOT_YET_CONSISTENT,
  TerminalError,
  TransientError,
} from '../../runtime/errors.js';
import { type CallContext, call } from '../instrument.js';
import {
  EC2_MAX_FILTER_VALUES,
  type Ec2Port,
  type IngressRule,
  type Instance,
  type InstanceFilter,
  type InstanceState,
  type LaunchInput,
  type RawListing,
  type SecurityGroup,
  type SecurityGroupFilter,
  type TagIn,
  type Tags,
} from '../ports.js';
import type { BucketName } from '../ratelimit.js';
import {
  decodeInstancesPage,
  decodeSecurityGroupsPage,
  decodeWith,
  keepBody,
  type ListingSet,
  pageParts,
  UnsupportedXml,
} from './ec2-listing.js';
import { translateAwsError } from './errors.js';

/** EC2's largest page: a steady-state listing costs one call per thousand objects. */
const PAGE = 1000;

/** Instance metadata: IMDSv2 only, one hop (the host, not its containers) (DESIGN §12). */
const IMDS = { HttpTokens: 'required', HttpPutResponseHopLimit: 1, HttpEndpoint: 'enabled' } as const;

export class Ec2Adapter implements Ec2Port {
  /** Root device name per AMI: the root volume can only be sized under the image's own device name. */
  private readonly rootDevices = new Map<string, string>();
  /** A page's token was once read wrong from its raw bytes: raw listings give no digest any more. */
  private pagesMisread = false;

  constructor(
    private readonly client: EC2Client,
    private readonly ctx: CallContext,
    private readonly pageSize = PAGE,
    /** Decode the two listing pages with ec2-listing.ts instead of the SDK's deserializer (tests compare both). */
    private readonly decodeListings = true,
  ) {}

  private send<T>(operation: string, bucket: BucketName, fn: () => Promise<T>): Promise<T> {
    return call(this.ctx, 'ec2', operation, bucket, fn, translateAwsError);
  }

  /**
   * A call that changes an instance or group we observed. EC2's write path is eventually
   * consistent (AWS "eventual consistency" guide): right after RunInstances/CreateSecurityGroup,
   * and right after a terminate, TerminateInstances, CreateTags, Modify*, Authorize/Revoke and
   * DeleteSecurityGroup may answer InvalidInstanceID.NotFound / InvalidGroup.NotFound without
   * acting. Such a NotFound proves nothing — least of all that the object is gone — so it is
   * passed on as {@link NOT_YET_CONSISTENT}: the caller looks again with a describe later.
   */
  private async mutate<T>(operation: string, bucket: BucketName, fn: () => Promise<T>): Promise<T> {
    try {
      return await this.send(operation, bucket, fn);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      throw new TransientError(
        `ec2 ${operation}: ${(e as Error).message.replace(/^ec2 \S+: /, '')} right after a change (not yet consistent); confirming with a describe later`,
        { service: 'ec2', operation, code: NOT_YET_CONSISTENT, cause: e },
      );
    }
  }

  async describeInstances(filter: InstanceFilter): Promise<Instance[]> {
    const filters = instanceFilters(filter);
    const out: Instance[] = [];
    let token: string | undefined;
    do {
      const command = new DescribeInstancesCommand({
        Filters: filters,
        MaxResults: this.pageSize,
        NextToken: token,
      });
      const decoded = this.decodeListings ? decodeWith(command, decodeInstancesPage) : () => undefined;
      const res = await this.send('DescribeInstances', 'ec2-non-mutating', () => this.client.send(command));
      const page = decoded();
      if (page) out.push(...page.instances);
      else for (const r of res.Reservations ?? []) for (const i of r.Instances ?? []) out.push(toInstance(i));
      token = page ? page.nextToken : res.NextToken || undefined;
    } while (token);
    return out;
  }

  private async rootDeviceName(imageId: string): Promise<string> {
    const known = this.rootDevices.get(imageId);
    if (known) return known;
    const res = await this.send('DescribeImages', 'ec2-non-mutating', () =>
      this.client.send(new DescribeImagesCommand({ ImageIds: [imageId] })),
    );
    const name = res.Images?.[0]?.RootDeviceName;
    if (!name)
      throw new TerminalError(`image ${imageId} was not found`, {
        reason: 'InvalidImage',
        service: 'ec2',
        operation: 'DescribeImages',
      });
    this.rootDevices.set(imageId, name);
    return name;
  }

  async runInstance(input: LaunchInput): Promise<Instance> {
    const rootDevice = await this.rootDeviceName(input.imageId);
    const tagSpec = (ResourceType: 'instance' | 'volume') => ({ ResourceType, Tags: toTags(input.tags) });
    const res = await this.mutate('RunInstances', 'ec2-run-instances', () =>
      this.client.send(
        new RunInstancesCommand({
          ClientToken: input.clientToken,
          ImageId: input.imageId,
          InstanceType: input.instanceType as never,
          MinCount: 1,
          MaxCount: 1,
          SubnetId: input.subnetId,
          SecurityGroupIds: input.securityGroupIds,
          IamInstanceProfile: { Name: input.iamInstanceProfileName },
          ...(input.keyName ? { KeyName: input.keyName } : {}),
          UserData: Buffer.from(input.userData, 'utf8').toString('base64'),
          BlockDeviceMappings: [
            {
              DeviceName: rootDevice,
              Ebs: {
                VolumeSize: input.volumeSizeGb,
                VolumeType: 'gp3',
                DeleteOnTermination: true,
                Encrypted: true,
              },
            },
          ],
          MetadataOptions: IMDS,
          TagSpecifications: [tagSpec('instance'), tagSpec('volume')],
        }),
      ),
    );
    const instance = res.Instances?.[0];
    if (!instance) throw new Error('RunInstances returned no instance');
    return toInstance(instance);
  }

  /** NotFound is not "gone" (see {@link mutate}): whether it is, a describe says afterwards. */
  async terminateInstance(id: string): Promise<void> {
    await this.mutate('TerminateInstances', 'ec2-terminate-instances', () =>
      this.client.send(new TerminateInstancesCommand({ InstanceIds: [id] })),
    );
  }

  async stopInstance(id: string): Promise<void> {
    await this.mutate('StopInstances', 'ec2-mutating', () =>
      this.client.send(new StopInstancesCommand({ InstanceIds: [id] })),
    );
  }

  async startInstance(id: string): Promise<void> {
    await this.mutate('StartInstances', 'ec2-start-instances', () =>
      this.client.send(new StartInstancesCommand({ InstanceIds: [id] })),
    );
  }

  async modifyInstanceType(id: string, instanceType: string): Promise<void> {
    await this.mutate('ModifyInstanceAttribute', 'ec2-mutating', () =>
      this.client.send(
        new ModifyInstanceAttributeCommand({ InstanceId: id, InstanceType: { Value: instanceType } }),
      ),
    );
  }

  async requireImdsV2(id: string): Promise<void> {
    await this.mutate('ModifyInstanceMetadataOptions', 'ec2-mutating', () =>
      this.client.send(new ModifyInstanceMetadataOptionsCommand({ InstanceId: id, ...IMDS })),
    );
  }

  async tagResources(ids: string[], tags: Tags): Promise<void> {
    await this.mutate('CreateTags', 'ec2-tags', () =>
      this.client.send(new CreateTagsCommand({ Resources: ids, Tags: toTags(tags) })),
    );
  }

  async describeInstancePages(
    filter: InstanceFilter,
    options: { keep?: boolean } = {},
  ): Promise<RawListing<Instance>> {
    const filters = instanceFilters(filter);
    return this.rawListing(
      options.keep ?? true,
      'DescribeInstances',
      'reservationSet',
      (token) =>
        new DescribeInstancesCommand({ Filters: filters, MaxResults: this.pageSize, NextToken: token }),
      (page) => {
        const { instances, nextToken } = decodeInstancesPage(page);
        return { items: instances, nextToken };
      },
      () => this.describeInstances(filter),
    );
  }

  async describeSecurityGroupPages(
    filter: SecurityGroupFilter,
    options: { keep?: boolean } = {},
  ): Promise<RawListing<SecurityGroup>> {
    const filters = groupFilters(filter);
    return this.rawListing(
      options.keep ?? true,
      'DescribeSecurityGroups',
      'securityGroupInfo',
      (token) =>
        new DescribeSecurityGroupsCommand({ Filters: filters, MaxResults: this.pageSize, NextToken: token }),
      (page) => {
        const { groups, nextToken } = decodeSecurityGroupsPage(page);
        return { items: groups, nextToken };
      },
      () => this.describeSecurityGroups(filter),
    );
  }

  /**
   * Every page of a listing as it came, with the digest of what they list (ports.ts
   * RawListing): hashing the bytes costs a small fraction of decoding them. Pages are followed by
   * the token read from their last bytes (ec2-listing.ts pageParts); decoding checks it against
   * the token the decoder reads, and a difference clears the digest, here and from then on.
   * A page this reader does not handle is listed again through the SDK (`again`), as is the
   * whole listing when its pages were not kept (`keep` false: a caller that expects the digest
   * unchanged lets them go at once, so that megabytes of pages never outlive a young-generation
   * collection).
   */
  private async rawListing<T>(
    keep: boolean,
    operation: 'DescribeInstances' | 'DescribeSecurityGroups',
    set: ListingSet,
    command: (token: string | undefined) => DescribeInstancesCommand | DescribeSecurityGroupsCommand,
    decode: (page: Buffer) => { items: T[]; nextToken: string | undefined },
    again: () => Promise<T[]>,
  ): Promise<RawListing<T>> {
    const hash = createHash('sha256');
    const pages: { chunks: Buffer[]; token: string | undefined }[] = [];
    let known = !this.pagesMisread;
    let token: string | undefined;
    do {
      const c = command(token);
      const body = keepBody(c);
      await this.send(operation, 'ec2-non-mutating', () => this.client.send(c as DescribeInstancesCommand));
      const chunks = body();
      if (!chunks) throw new TransientError(`ec2 ${operation}: a successful response without a body`);
      const parts = pageParts(chunks, set);
      if (parts) for (const part of parts.content) hash.update(part);
      else {
        known = false;
        try {
          token = decode(Buffer.concat(chunks)).nextToken;
        } catch (e) {
          if (!(e instanceof UnsupportedXml)) throw e;
          const items = await again();
          return { digest: undefined, items: async () => items };
        }
      }
      if (parts) token = parts.token;
      pages.push({ chunks: keep ? chunks : [], token });
    } while (token);
    const digest = hash.digest('base64');
    const listing: { digest: string | undefined; items(): Promise<T[]> } = {
      digest: known ? digest : undefined,
      items: async () => {
        if (!keep) return again();
        const out: T[] = [];
        try {
          for (const p of pages) {
            const page = decode(Buffer.concat(p.chunks));
            if (page.nextToken !== p.token) {
              this.pagesMisread = true;
              listing.digest = undefined;
              throw new UnsupportedXml('a page token read from the raw page differs from the decoded one');
            }
            for (const item of page.items) out.push(item);
          }
        } catch (e) {
          if (!(e instanceof UnsupportedXml)) throw e;
          return again();
        }
        return out;
      },
    };
    return listing;
  }

  async describeSecurityGroups(filter: SecurityGroupFilter): Promise<SecurityGroup[]> {
    const filters = groupFilters(filter);
    const out: SecurityGroup[] = [];
    let token: string | undefined;
    do {
      const command = new DescribeSecurityGroupsCommand({
        Filters: filters,
        MaxResults: this.pageSize,
        NextToken: token,
      });
      const decoded = this.decodeListings ? decodeWith(command, decodeSecurityGroupsPage) : () => undefined;
      const res = await this.send('DescribeSecurityGroups', 'ec2-non-mutating', () =>
        this.client.send(command),
      );
      const page = decoded();
      if (page) out.push(...page.groups);
      else for (const g of res.SecurityGroups ?? []) out.push(toSecurityGroup(g));
      token = page ? page.nextToken : res.NextToken || undefined;
    } while (token);
    return out;
  }

  async createSecurityGroup(input: {
    name: string;
    description: string;
    vpcId: string;
    tags: Tags;
  }): Promise<string> {
    const res = await this.send('CreateSecurityGroup', 'ec2-mutating', () =>
      this.client.send(
        new CreateSecurityGroupCommand({
          GroupName: input.name,
          Description: input.description,
          VpcId: input.vpcId,
          TagSpecifications: [{ ResourceType: 'security-group', Tags: toTags(input.tags) }],
        }),
      ),
    );
    if (!res.GroupId) throw new Error('CreateSecurityGroup returned no id');
    return res.GroupId;
  }

  async authorizeIngress(groupId: string, rules: IngressRule[]): Promise<void> {
    if (rules.length === 0) return;
    try {
      await this.mutate('AuthorizeSecurityGroupIngress', 'ec2-resource-intensive', () =>
        this.client.send(
          new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: toPermissions(rules) }),
        ),
      );
    } catch (e) {
      // One rule already there fails the whole call; add them one by one, skipping duplicates.
      if (!isConflict(e) || rules.length === 1) {
        if (isConflict(e)) return;
        throw e;
      }
      for (const rule of rules) await this.authorizeIngress(groupId, [rule]);
    }
  }

  async revokeIngress(groupId: string, rules: IngressRule[]): Promise<void> {
    if (rules.length === 0) return;
    try {
      await this.mutate('RevokeSecurityGroupIngress', 'ec2-resource-intensive', () =>
        this.client.send(
          new RevokeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: toPermissions(rules) }),
        ),
      );
    } catch (e) {
      // InvalidPermission.NotFound: one rule already gone fails the whole call.
      if (!isPermissionNotFound(e)) throw e;
      if (rules.length === 1) return;
      for (const rule of rules) await this.revokeIngress(groupId, [rule]);
    }
  }

  /** NotFound is not "gone" (see {@link mutate}): whether it is, a describe says afterwards. */
  async deleteSecurityGroup(id: string): Promise<void> {
    await this.mutate('DeleteSecurityGroup', 'ec2-mutating', () =>
      this.client.send(new DeleteSecurityGroupCommand({ GroupId: id })),
    );
  }

  async describeVpcCidr(vpcId: string): Promise<string> {
    const res = await this.send('DescribeVpcs', 'ec2-non-mutating', () =>
      this.client.send(new DescribeVpcsCommand({ VpcIds: [vpcId] })),
    );
    const cidr = res.Vpcs?.[0]?.CidrBlock;
    if (!cidr) throw new Error(`VPC ${vpcId} has no CIDR block`);
    return cidr;
  }
}

const isPermissionNotFound = (e: unknown) =>
  (e as { code?: string }).code === 'InvalidPermission.NotFound' ||
  ((e as { cause?: { name?: string } }).cause?.name ?? '') === 'InvalidPermission.NotFound';

function tagFilters(tags: Tags, tagIn?: TagIn): Filter[] {
  const filters = Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] }));
  if (tagIn) {
    if (tagIn.values.length === 0) throw new TerminalError('a tag filter needs at least one value');
    filters.push({ Name: `tag:${tagIn.key}`, Values: tagIn.values });
  }
  const values = filters.reduce((n, f) => n + f.Values.length, 0);
  if (values > EC2_MAX_FILTER_VALUES)
    throw new TerminalError(`${values} filter values in one call; EC2 accepts ${EC2_MAX_FILTER_VALUES}`);
  return filters;
}

function instanceFilters(filter: InstanceFilter): Filter[] {
  const filters: Filter[] = tagFilters(filter.tags, filter.tagIn);
  if (filter.states) filters.push({ Name: 'instance-state-name', Values: filter.states });
  if (filter.clientToken) filters.push({ Name: 'client-token', Values: [filter.clientToken] });
  return filters;
}

function groupFilters(filter: SecurityGroupFilter): Filter[] {
  const filters: Filter[] = tagFilters(filter.tags ?? {}, filter.tagIn);
  if (filter.names) filters.push({ Name: 'group-name', Values: filter.names });
  if (filter.vpcId) filters.push({ Name: 'vpc-id', Values: [filter.vpcId] });
  return filters;
}

export function toTags(tags: Tags): Tag[] {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

export function fromTags(tags: Tag[] | undefined): Tags {
  const out: Tags = {};
  for (const t of tags ?? []) if (t.Key !== undefined) out[t.Key] = t.Value ?? '';
  return out;
}

function toInstance(i: SdkInstance): Instance {
  return {
    id: i.InstanceId ?? '',
    state: (i.State?.Name ?? 'pending') as InstanceState,
    instanceType: i.InstanceType ?? '',
    imageId: i.ImageId ?? '',
    subnetId: i.SubnetId,
    vpcId: i.VpcId,
    securityGroupIds: (i.SecurityGroups ?? []).map((g) => g.GroupId ?? '').filter(Boolean),
    iamInstanceProfileArn: i.IamInstanceProfile?.Arn,
    clientToken: i.ClientToken || undefined,
    launchTime: i.LaunchTime,
    metadata: i.MetadataOptions
      ? {
          httpTokens: i.MetadataOptions.HttpTokens ?? 'optional',
          hopLimit: i.MetadataOptions.HttpPutResponseHopLimit ?? 1,
        }
      : undefined,
    tags: fromTags(i.Tags),
  };
}

function toSecurityGroup(g: SdkSecurityGroup): SecurityGroup {
  const ingress: IngressRule[] = [];
  for (const p of g.IpPermissions ?? []) {
    const base = { protocol: p.IpProtocol ?? '-1', fromPort: p.FromPort ?? -1, toPort: p.ToPort ?? -1 };
    for (const r of p.IpRanges ?? []) ingress.push({ ...base, cidr: r.CidrIp ?? '', ...desc(r.Description) });
    for (const pair of p.UserIdGroupPairs ?? []) {
      ingress.push({ ...base, sourceGroupId: pair.GroupId ?? '', ...desc(pair.Description) });
    }
    for (const r of p.Ipv6Ranges ?? [])
      ingress.push({ ...base, cidr: r.CidrIpv6 ?? '', ...desc(r.Description) });
  }
  return {
    id: g.GroupId ?? '',
    name: g.GroupName ?? '',
    vpcId: g.VpcId,
    description: g.Description ?? '',
    ingress,
    tags: fromTags(g.Tags),
  };
}

const desc = (d: string | undefined) => (d ? { description: d } : {});

function toPermissions(rules: IngressRule[]): IpPermission[] {
  return rules.map((r) => ({
    IpProtocol: r.protocol,
    FromPort: r.fromPort,
    ToPort: r.toPort,
    ...(r.cidr
      ? r.cidr.includes(':')
        ? { Ipv6Ranges: [{ CidrIpv6: r.cidr, ...(r.description ? { Description: r.description } : {}) }] }
        : { IpRanges: [{ CidrIp: r.cidr, ...(r.description ? { Description: r.description } : {}) }] }
      : {}),
    ...(r.sourceGroupId
      ? {
          UserIdGroupPairs: [
            { GroupId: r.sourceGroupId, ...(r.description ? { Description: r.description } : {}) },
          ],
        }
      : {}),
  }));
}
