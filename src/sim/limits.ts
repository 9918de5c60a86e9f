/**
 * Every rate limit and simulated duration in one table, so benchmarks can compute the
 * token-bucket lower bound for a workload from the same numbers the simulator enforces.
 *
 * Buckets hold `capacity` tokens, refill `refillPerSecond` per *simulated* second (the time
 * scale speeds refill up), and each request takes one token.
 */

export interface BucketSpec {
  capacity: number;
  refillPerSecond: number;
}

/**
 * EC2 request buckets (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html).
 * Buckets are per API action: two Describe* actions never share tokens. The unfiltered and
 * unpaginated variant of DescribeInstances / DescribeSecurityGroups draws from its own,
 * smaller bucket (key `ec2:<Action>:unfiltered`).
 */
export const EC2_BUCKETS = {
  RunInstances: { capacity: 5, refillPerSecond: 2 },
  StartInstances: { capacity: 5, refillPerSecond: 2 },
  TerminateInstances: { capacity: 100, refillPerSecond: 5 },
  CreateTags: { capacity: 100, refillPerSecond: 10 },
  DeleteTags: { capacity: 100, refillPerSecond: 10 },
  /** Authorize/RevokeSecurityGroupIngress/Egress. */
  resourceIntensive: { capacity: 50, refillPerSecond: 5 },
  /** Every other mutating action (StopInstances, CreateSecurityGroup, ModifyInstanceAttribute, ...). */
  mutating: { capacity: 50, refillPerSecond: 5 },
  /** Describe* with a filter, id list or MaxResults. */
  nonMutating: { capacity: 100, refillPerSecond: 20 },
  /** DescribeInstances / DescribeSecurityGroups with no filter, no ids and no MaxResults. */
  unfilteredDescribe: { capacity: 50, refillPerSecond: 10 },
} as const satisfies Record<string, BucketSpec>;

/**
 * Secrets Manager quotas are requests per second; a bucket of one second's worth models them.
 * GetSecretValue and DescribeSecret share one 10,000/s quota (key `secretsmanager:read`);
 * every other operation has its own bucket.
 */
export const SECRETS_MANAGER_BUCKETS = {
  read: { capacity: 10_000, refillPerSecond: 10_000 },
  ListSecrets: { capacity: 100, refillPerSecond: 100 },
  write: { capacity: 50, refillPerSecond: 50 },
} as const satisfies Record<string, BucketSpec>;

/** Resource Groups Tagging API GetResources (no published number; our choice). */
export const TAGGING_BUCKETS = {
  GetResources: { capacity: 20, refillPerSecond: 10 },
} as const satisfies Record<string, BucketSpec>;

/** Cloudflare: 1200 requests per 5 minutes per user, one bucket for the whole API. */
export const CLOUDFLARE_BUCKET: BucketSpec = { capacity: 1200, refillPerSecond: 4 };

/**
 * Cloudflare's documented limit as the API enforces it (fault setting `cloudflareRateLimit`):
 * a fixed window per user (API token) that, once over, refuses every call until it ends.
 */
export const CLOUDFLARE_WINDOW = { limit: 1200, windowMs: 300_000 } as const;

/**
 * Systems Manager Run Command (no published per-action numbers; our choice). SendCommand has
 * its own bucket; ListCommands, ListCommandInvocations and GetCommandInvocation share one.
 */
export const SSM_BUCKETS = {
  SendCommand: { capacity: 20, refillPerSecond: 10 },
  read: { capacity: 100, refillPerSecond: 40 },
} as const satisfies Record<string, BucketSpec>;

/** Simulated durations (ms of simulated time). */
export const DURATIONS = {
  /**
   * pending → running, stopping → stopped, shutting-down → terminated; SSM Run Command:
   * InvocationDoesNotExist right after SendCommand, then Pending, then InProgress.
   */
  realistic: {
    pending: 15_000,
    stopping: 20_000,
    shuttingDown: 20_000,
    ssmInvocationVisible: 1_000,
    ssmDelivery: 2_000,
    ssmRun: 15_000,
  },
  fast: {
    pending: 20,
    stopping: 20,
    shuttingDown: 20,
    ssmInvocationVisible: 10,
    ssmDelivery: 10,
    ssmRun: 20,
  },
  /** Run Command history is kept this long (as the service does). */
  ssmHistoryMs: 30 * 24 * 3_600_000,
  /** Instance-profile credentials handed out by /_sim/instance-credentials live this long. */
  instanceCredentialsMs: 6 * 3_600_000,
  /** Tagging API pagination tokens expire after this long (fault setting `taggingTokenExpiry`). */
  taggingTokenMs: 15 * 60_000,
  /** A terminated instance stays visible in DescribeInstances this long. */
  terminatedVisibleMs: 3_600_000,
  /**
   * The Tagging API keeps listing a resource this long after it left its own service:
   * a deleted security group, a purged secret, or a terminated instance once it dropped out
   * of DescribeInstances (so instances are listed for 2 h after termination in total).
   */
  taggingGhostMs: 3_600_000,
  /** RunInstances client tokens are remembered this long. */
  clientTokenMs: 24 * 3_600_000,
} as const;
