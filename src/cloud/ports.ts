/**
 * The cloud as the controllers see it: only the calls they make, in our own types. Adapters
 * (aws/, cloudflare/) implement these over the real SDKs and translate every failure into
 * the classes of src/runtime/errors.ts. Unless a method says otherwise:
 * - a failed call throws; a failed *list* never returns a partial or empty result;
 * - `NotFoundError` is thrown only when the provider says the object does not exist;
 * - list methods walk every page.
 */

export type Tags = Record<string, string>;

export type InstanceState = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

export interface Instance {
  id: string;
  state: InstanceState;
  instanceType: string;
  imageId: string;
  subnetId: string | undefined;
  vpcId: string | undefined;
  securityGroupIds: string[];
  iamInstanceProfileArn: string | undefined;
  clientToken: string | undefined;
  launchTime: Date | undefined;
  /** Instance metadata service settings, when the listing reports them. */
  metadata: InstanceMetadata | undefined;
  tags: Tags;
}

/** IMDS settings: `required` tokens (IMDSv2) and a hop limit of 1 keep containers away from the role. */
export interface InstanceMetadata {
  httpTokens: string;
  hopLimit: number;
}

export interface LaunchInput {
  /** Idempotency token: the same token and parameters return the same instance. */
  clientToken: string;
  imageId: string;
  instanceType: string;
  subnetId: string;
  securityGroupIds: string[];
  iamInstanceProfileName: string;
  keyName?: string;
  volumeSizeGb: number;
  /** Plain text; the adapter base64-encodes it. Carries no secret. */
  userData: string;
  tags: Tags;
}

export interface IngressRule {
  protocol: string;
  fromPort: number;
  toPort: number;
  /** Exactly one of `cidr` or `sourceGroupId`. */
  cidr?: string;
  sourceGroupId?: string;
  description?: string;
}

export interface SecurityGroup {
  id: string;
  name: string;
  vpcId: string | undefined;
  description: string;
  ingress: IngressRule[];
  tags: Tags;
}

/**
 * EC2 rejects a call whose filters carry more than this many values in all (FilterLimitExceeded);
 * callers split longer lists.
 */
export const EC2_MAX_FILTER_VALUES = 200;

/** A tag whose value must be one of `values` (OR), on top of the exact `tags`. */
export interface TagIn {
  key: string;
  values: string[];
}

export interface InstanceFilter {
  /** Every tag must match (AND). */
  tags: Tags;
  tagIn?: TagIn;
  /** Restrict to these states; all states when absent. */
  states?: InstanceState[];
  clientToken?: string;
}

export interface SecurityGroupFilter {
  tags?: Tags;
  tagIn?: TagIn;
  names?: string[];
  vpcId?: string;
}

/**
 * A listing's pages as they arrived, not yet read: a resync that finds the digest as it was
 * when it last read them (and found nothing to do) need not read them again.
 */
export interface RawListing<T> {
  /**
   * SHA-256 of the pages less their request ids and page tokens: the same digest, the same
   * objects in the same order. Undefined when the pages could not be read so; it may also be
   * cleared by {@link items}, which checks what the digest was taken of.
   */
  readonly digest: string | undefined;
  /** The objects (what the describe call returns), read from the pages kept. */
  items(): Promise<T[]>;
}

export interface Ec2Port {
  /** All instances matching the filter, across pages. Recently terminated ones are included unless filtered by state. */
  describeInstances(filter: InstanceFilter): Promise<Instance[]>;
  /**
   * {@link describeInstances}, its pages kept undecoded with their digest (absent: a port that
   * cannot). `keep: false`: only the digest is kept, the pages are let go at once (they die
   * young), and {@link RawListing.items} lists again.
   */
  describeInstancePages?(filter: InstanceFilter, options?: { keep?: boolean }): Promise<RawListing<Instance>>;
  /**
   * Launches one instance. Idempotent on `clientToken`: a replay returns the instance the
   * first call created (whatever its state). Same token, other parameters → TerminalError.
   */
  runInstance(input: LaunchInput): Promise<Instance>;
  /** Idempotent: an already terminated or unknown instance is not an error. */
  terminateInstance(id: string): Promise<void>;
  /** Conflict when the instance is not in a state that can stop. */
  stopInstance(id: string): Promise<void>;
  /** Conflict when the instance is not stopped. */
  startInstance(id: string): Promise<void>;
  /** Only while stopped: Conflict otherwise. */
  modifyInstanceType(id: string, instanceType: string): Promise<void>;
  /** IMDSv2 only, hop limit 1 (DESIGN §12); applies to a running instance at once. */
  requireImdsV2(id: string): Promise<void>;
  /** Overwrites the given tag keys. */
  tagResources(ids: string[], tags: Tags): Promise<void>;

  describeSecurityGroups(filter: SecurityGroupFilter): Promise<SecurityGroup[]>;
  /** {@link describeSecurityGroups}, its pages kept undecoded with their digest. */
  describeSecurityGroupPages?(
    filter: SecurityGroupFilter,
    options?: { keep?: boolean },
  ): Promise<RawListing<SecurityGroup>>;
  /** Creates a group with no ingress and the default egress. Conflict (code `InvalidGroup.Duplicate`) when the name exists in the VPC. */
  createSecurityGroup(input: {
    name: string;
    description: string;
    vpcId: string;
    tags: Tags;
  }): Promise<string>;
  /** Adds rules; rules that already exist are not an error. */
  authorizeIngress(groupId: string, rules: IngressRule[]): Promise<void>;
  /** Removes rules; rules already gone are not an error. */
  revokeIngress(groupId: string, rules: IngressRule[]): Promise<void>;
  /** Idempotent on NotFound. Transient (code `DependencyViolation`) while still attached or referenced. */
  deleteSecurityGroup(id: string): Promise<void>;
  /** The primary CIDR block of a VPC; NotFound for an unknown VPC. */
  describeVpcCidr(vpcId: string): Promise<string>;
}

export interface SecretSummary {
  arn: string;
  name: string;
  tags: Tags;
  /** The version id that carries AWSCURRENT. */
  currentVersionId: string | undefined;
  /** Set while the secret is scheduled for deletion. */
  deletedDate: Date | undefined;
  lastChangedDate: Date | undefined;
}

export interface SecretsPort {
  /**
   * Every secret whose name starts with `prefix`, including those scheduled for deletion. The
   * objects may be the very ones an earlier listing returned (cloud/pages.ts): read-only.
   */
  listSecrets(prefix: string): Promise<SecretSummary[]>;
  /** NotFound when no secret (live or scheduled for deletion) has this name. */
  describeSecret(name: string): Promise<SecretSummary>;
  /** NotFound when absent; Conflict when scheduled for deletion. */
  getSecretValue(name: string): Promise<{ value: string; versionId: string }>;
  /**
   * Creates the secret. Idempotent on `token` (same token and value → no-op). Conflict when
   * the name exists (code `ResourceExistsException`) or is scheduled for deletion (code `ScheduledForDeletion`).
   */
  createSecret(input: {
    name: string;
    value: string;
    tags: Tags;
    token: string;
    description: string;
  }): Promise<{
    arn: string;
    versionId: string;
  }>;
  /** Writes a new AWSCURRENT version; idempotent on `token`. */
  putSecretValue(name: string, value: string, token: string): Promise<{ versionId: string }>;
  restoreSecret(name: string): Promise<void>;
  /** `recoveryDays` 0 deletes at once; 7–30 schedules. Idempotent on NotFound and on already-scheduled. */
  deleteSecret(name: string, recoveryDays: number): Promise<void>;
  /** The secret's resource policy document, or undefined when it has none. NotFound when absent. */
  getResourcePolicy(name: string): Promise<string | undefined>;
  /** Replaces the resource policy; refused (and nothing written) when it would grant public access. */
  putResourcePolicy(name: string, policy: string): Promise<void>;
  tagSecret(name: string, tags: Tags): Promise<void>;
}

export interface TaggedResource {
  arn: string;
  /** e.g. `ec2:instance`, `ec2:security-group`, `secretsmanager:secret`, `ec2:volume`. */
  resourceType: string;
  /** The id inside the ARN (`i-…`, `sg-…`, the secret's name+suffix). */
  resourceId: string;
  tags: Tags;
}

export interface TaggingPort {
  /** Every resource (of any type) carrying all the given tags, across pages. May include recently deleted ghosts. */
  getResources(tags: Tags): Promise<TaggedResource[]>;
}

export interface Tunnel {
  id: string;
  name: string;
  createdAt: Date | undefined;
  deletedAt: Date | undefined;
  status: string | undefined;
}

export interface IngressConfigRule {
  hostname?: string;
  service: string;
  path?: string;
}

export interface TunnelConfig {
  version: number;
  ingress: IngressConfigRule[];
}

export interface TunnelPort {
  /**
   * Live (not deleted) tunnels, by exact name or by name prefix. The objects may be the very
   * ones an earlier listing returned (cloud/pages.ts): read-only.
   */
  listTunnels(filter: { name?: string; namePrefix?: string }): Promise<Tunnel[]>;
  /** Remotely managed tunnel. Conflict (code `1013`) when a live tunnel has this name. */
  createTunnel(name: string): Promise<Tunnel>;
  /** Soft delete. Idempotent on NotFound. Transient (code `1022`) while the tunnel has active connections. */
  deleteTunnel(id: string): Promise<void>;
  /** The connector token (a credential: never logged or stored). */
  getTunnelToken(id: string): Promise<string>;
  getConfiguration(id: string): Promise<TunnelConfig | undefined>;
  /** Full replace of the remote configuration. */
  putConfiguration(id: string, ingress: IngressConfigRule[]): Promise<void>;
}

export interface DnsRecord {
  id: string;
  name: string;
  type: string;
  content: string;
  proxied: boolean;
  comment: string | undefined;
}

export interface DnsPort {
  /**
   * Records by exact name, or whose comment contains a string. The objects may be the very
   * ones an earlier listing returned (cloud/pages.ts): read-only.
   */
  listRecords(filter: { name?: string; commentContains?: string }): Promise<DnsRecord[]>;
  /** Conflict (code `81053`) when a record already exists for the name. */
  createRecord(input: {
    name: string;
    content: string;
    proxied: boolean;
    comment: string;
  }): Promise<DnsRecord>;
  updateRecord(
    id: string,
    input: { name: string; content: string; proxied: boolean; comment: string },
  ): Promise<void>;
  /** Idempotent on NotFound. */
  deleteRecord(id: string): Promise<void>;
}

/** A Run Command as ListCommands reports it. */
export interface RunCommand {
  id: string;
  comment: string;
  instanceIds: string[];
  requestedAt: Date | undefined;
  /** Pending, InProgress, Success, Failed, Cancelled, TimedOut… */
  status: string;
}

/** One command's run on one instance. */
export interface CommandInvocation {
  /** Pending, InProgress, Delayed, Success, Failed, Cancelled, TimedOut, Cancelling. */
  status: string;
  /** The script's exit status; -1 while it has not finished. */
  responseCode: number;
  /** The end of its standard error (never a secret: the command carries none). */
  stderrTail: string;
}

/** Systems Manager Run Command: how a redeploy reaches a running instance (DESIGN §11). */
export interface SsmPort {
  /**
   * Sends one `AWS-RunShellScript` command to one instance and returns its id. Not idempotent:
   * callers look for an earlier send by its `comment` first ({@link listCommands}). Conflict
   * (code `InvalidInstanceId`) when the instance is not running or not in this account.
   */
  sendShellCommand(input: {
    instanceId: string;
    script: string;
    /** At most 100 characters; names what the command is for, so a restart can find it. */
    comment: string;
    timeoutSeconds: number;
  }): Promise<string>;
  /**
   * The command sent to the instance with this comment, looking through its commands newest
   * first (page by page, stopping at the first match); undefined when none has it.
   * NOTE: ListCommands cannot filter by comment.
   */
  findCommand(instanceId: string, comment: string): Promise<RunCommand | undefined>;
  /** NotFound (code `InvocationDoesNotExist`) for a moment right after the send. */
  getInvocation(commandId: string, instanceId: string): Promise<CommandInvocation>;
}

/** The AWS side of one target (an account and region): its own clients and rate limits. */
export interface AwsPorts {
  ec2: Ec2Port;
  secrets: SecretsPort;
  tagging: TaggingPort;
  ssm: SsmPort;
}

/** Cloudflare: one account for every target. */
export interface CloudflarePorts {
  tunnels: TunnelPort;
  dns: DnsPort;
}

/**
 * What a controller is given: the AWS ports of its owner's target and the Cloudflare ports
 * (absent when Cloudflare is not configured). See cloud/targets.ts.
 */
export interface CloudPorts extends AwsPorts, Partial<CloudflarePorts> {}

/** Kinds of cloud resource, as metric labels, the audit trail and the orphan ledger name them. */
export type ResourceKind =
  | 'ec2_instance'
  | 'security_group'
  | 'secret'
  | 'cf_tunnel'
  | 'cf_dns_record'
  | 'other';

/** Resources ours by tags that no controller keeps (volumes, anything tagged by hand). */
export const OTHER_KIND = 'other' satisfies ResourceKind;
