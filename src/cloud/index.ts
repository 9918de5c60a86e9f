import { EC2Client } from '@aws-sdk/client-ec2';
import { ResourceGroupsTaggingAPIClient } from '@aws-sdk/client-resource-groups-tagging-api';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import Cloudflare from 'cloudflare';
import type { Config } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import { Ec2Adapter } from './aws/ec2.js';
import { SecretsAdapter } from './aws/secrets.js';
import { TaggingAdapter } from './aws/tagging.js';
import { CloudflareAdapter } from './cloudflare/adapter.js';
import { type CallContext, READ_OPERATION } from './instrument.js';
import type { AwsPorts, CloudflarePorts, CloudPorts } from './ports.js';
import { RateLimiter } from './ratelimit.js';
import { CloudTargets, type Target, type TargetSettings, targetSettings } from './targets.js';

export interface CloudOptions {
  metrics?: Metrics;
  limiter?: CallContext['limiter'];
  /** Static AWS credentials (simulator, tests); otherwise the SDK's default provider chain. */
  awsCredentials?: { accessKeyId: string; secretAccessKey: string };
  /** SDK attempts per call, retries included. */
  maxAttempts?: number;
  /** Page size of every listing (tests use small pages to exercise pagination). */
  pageSize?: number;
  /**
   * Throws (NotLeaderError) when this process may no longer change anything. Checked right
   * before every attempt of every mutating request leaves the process — after rate-limit waits
   * and retry backoffs — so a leader paused past its lease cannot act on decisions it took
   * while it still led.
   */
  mutationGuard?: () => void;
}

/**
 * Builds every target's ports and the Cloudflare ports over the real SDKs. Endpoints come only
 * from AWS_ENDPOINT_URL and CLOUDFLARE_BASE_URL (or the SDK defaults), so the same code talks
 * to AWS or the simulator. Each target gets its own rate-limit buckets (AWS throttles per
 * account and Region); Cloudflare, one account for all, gets one.
 */
export function createTargets(config: Config, options: CloudOptions = {}): CloudTargets {
  const limiter = () => options.limiter ?? new RateLimiter(config.RATE_LIMITS, options.metrics);
  const targets = targetSettings(config).map(
    (settings): Target => ({
      ...settings,
      aws: createAwsPorts(settings, config.AWS_ENDPOINT_URL, limiter(), options),
    }),
  );
  return new CloudTargets(targets, createCloudflarePorts(config, limiter(), options));
}

/** The primary target's ports (tests, and commands that look at the primary account only). */
export function createCloudPorts(config: Config, options: CloudOptions = {}): CloudPorts {
  const targets = createTargets(config, options);
  return targets.portsFor(targets.primary);
}

function createAwsPorts(
  target: TargetSettings,
  endpoint: string | undefined,
  limiter: CallContext['limiter'],
  options: CloudOptions,
): AwsPorts {
  const ctx: CallContext = { limiter, ...(options.metrics ? { metrics: options.metrics } : {}) };
  const aws = {
    region: target.region,
    maxAttempts: options.maxAttempts ?? 3,
    ...(endpoint ? { endpoint } : {}),
    ...(options.awsCredentials ? { credentials: options.awsCredentials } : {}),
  };
  const guard = options.mutationGuard;
  return {
    ec2: new Ec2Adapter(guarded(new EC2Client(aws), guard), ctx, options.pageSize),
    secrets: new SecretsAdapter(guarded(new SecretsManagerClient(aws), guard), ctx, small(options.pageSize)),
    tagging: new TaggingAdapter(new ResourceGroupsTaggingAPIClient(aws), ctx, small(options.pageSize)),
  };
}

function createCloudflarePorts(
  config: Config,
  limiter: CallContext['limiter'],
  options: CloudOptions,
): CloudflarePorts | undefined {
  if (!config.CLOUDFLARE_API_TOKEN || !config.CLOUDFLARE_ACCOUNT_ID || !config.CLOUDFLARE_ZONE_ID)
    return undefined;
  const guard = options.mutationGuard;
  const client = new Cloudflare({
    apiToken: config.CLOUDFLARE_API_TOKEN,
    ...(config.CLOUDFLARE_BASE_URL ? { baseURL: config.CLOUDFLARE_BASE_URL } : {}),
    maxRetries: Math.max(0, (options.maxAttempts ?? 3) - 1),
    timeout: 30_000,
    ...(guard
      ? {
          fetch: async (...args: Parameters<typeof fetch>) => {
            if ((args[1]?.method ?? 'GET').toUpperCase() !== 'GET') guard();
            return fetch(...args);
          },
        }
      : {}),
  });
  const cf = new CloudflareAdapter(
    client,
    { accountId: config.CLOUDFLARE_ACCOUNT_ID, zoneId: config.CLOUDFLARE_ZONE_ID },
    { limiter, ...(options.metrics ? { metrics: options.metrics } : {}) },
    options.pageSize,
  );
  return { tunnels: cf, dns: cf };
}

/** Secrets Manager and the Tagging API page at most 100 items. */
const small = (n: number | undefined) => (n === undefined ? undefined : Math.min(n, 100));

/**
 * Adds the mutation guard to an AWS client, inside the retry middleware (so before each
 * attempt) and as the last step before the request is sent.
 */
function guarded<C extends EC2Client | SecretsManagerClient>(client: C, guard: (() => void) | undefined): C {
  if (!guard) return client;
  (client.middlewareStack as EC2Client['middlewareStack']).add(
    (next, context) => async (args) => {
      const operation = (context.commandName ?? '').replace(/Command$/, '');
      if (!READ_OPERATION.test(operation)) guard();
      return next(args);
    },
    { step: 'deserialize', priority: 'low', name: 'moleculeMutationGuard' },
  );
  return client;
}
