import { EC2Client } from '@aws-sdk/client-ec2';
import { ResourceGroupsTaggingAPIClient } from '@aws-sdk/client-resource-groups-tagging-api';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SSMClient } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { FinalizeRequestMiddleware, MetadataBearer } from '@aws-sdk/types';
import Cloudflare from 'cloudflare';
import type { Config } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import { AssumedRoleCredentials, EXPIRED_CREDENTIALS } from './aws/credentials.js';
import { Ec2Adapter } from './aws/ec2.js';
import { translateAwsError } from './aws/errors.js';
import { SecretsAdapter } from './aws/secrets.js';
import { SsmAdapter } from './aws/ssm.js';
import { TaggingAdapter } from './aws/tagging.js';
import { CloudflareAdapter } from './cloudflare/adapter.js';
import { type CallContext, READ_OPERATION } from './instrument.js';
import type { CloudflarePorts, CloudPorts } from './ports.js';
import { cloudflareWindow, RateLimiter } from './ratelimit.js';
import { CloudTargets, type Target, type TargetName, targetSettings } from './targets.js';

export interface CloudOptions {
  metrics?: Metrics;
  /** One limiter for every target (tests); by default each target and Cloudflare get their own. */
  limiter?: CallContext['limiter'];
  /** Static AWS credentials (simulator, tests); otherwise the SDK's default provider chain. */
  awsCredentials?: { accessKeyId: string; secretAccessKey: string };
  /** SDK attempts per call, retries included. */
  maxAttempts?: number;
  /** Page size of every listing (tests use small pages to exercise pagination). */
  pageSize?: number;
  /**
   * Throws (NotLeaderError) when this process may no longer change anything in a target.
   * Checked right before every attempt of every mutating request leaves the process — after
   * rate-limit waits and retry backoffs — so a leader paused past its lease cannot act on
   * decisions it took while it still led.
   */
  mutationGuard?: (target: TargetName) => void | Promise<void>;
}

/**
 * Builds every target's ports over the real SDKs. Endpoints come only from AWS_ENDPOINT_URL and
 * CLOUDFLARE_BASE_URL (or the SDK defaults), so the same code talks to AWS or the simulator.
 * Each target has its own clients and rate-limit buckets (AWS throttles per account and
 * Region) and acts under its own lease; a target other than the primary acts with the
 * credentials of its role, assumed from the primary's. Cloudflare is one account: every
 * target's Cloudflare ports share one budget.
 */
export function createTargets(config: Config, options: CloudOptions = {}): CloudTargets {
  const limiter = (target: string) =>
    options.limiter ??
    new RateLimiter(
      { cloudflare: cloudflareWindow(config.CLOUDFLARE_RATE_SHARE), ...config.RATE_LIMITS },
      options.metrics,
      target,
    );
  const cloudflareLimiter = limiter('');
  const base = {
    maxAttempts: options.maxAttempts ?? 3,
    ...(config.AWS_ENDPOINT_URL ? { endpoint: config.AWS_ENDPOINT_URL } : {}),
    ...(options.awsCredentials ? { credentials: options.awsCredentials } : {}),
  };
  const targets = targetSettings(config).map((settings): Target => {
    const role = settings.roleArn
      ? new AssumedRoleCredentials(new STSClient({ ...base, region: settings.region }), settings.roleArn)
      : undefined;
    const client = { ...base, region: settings.region, ...(role ? { credentials: role.provider } : {}) };
    const guard = options.mutationGuard ? () => options.mutationGuard!(settings.name) : undefined;
    const ctx: CallContext = {
      limiter: limiter(settings.name),
      target: settings.name,
      ...(options.metrics ? { metrics: options.metrics } : {}),
    };
    const sts = new STSClient(client);
    return {
      ...settings,
      aws: {
        ec2: new Ec2Adapter(prepared(new EC2Client(client), guard, role), ctx, options.pageSize),
        secrets: new SecretsAdapter(
          prepared(new SecretsManagerClient(client), guard, role),
          ctx,
          small(options.pageSize),
        ),
        tagging: new TaggingAdapter(
          prepared(new ResourceGroupsTaggingAPIClient(client), undefined, role),
          ctx,
          small(options.pageSize),
        ),
        // NOTE: SSM pages at most 50 items.
        ssm: new SsmAdapter(
          prepared(new SSMClient(client), guard, role),
          ctx,
          options.pageSize === undefined ? undefined : Math.min(options.pageSize, 50),
        ),
      },
      cloudflare: createCloudflarePorts(config, { ...ctx, limiter: cloudflareLimiter }, guard, options),
      identify: async () => {
        try {
          const id = await prepared(sts, undefined, role).send(new GetCallerIdentityCommand({}));
          return { account: id.Account ?? '', arn: id.Arn ?? '' };
        } catch (e) {
          throw translateAwsError(e, 'sts', 'GetCallerIdentity');
        }
      },
    };
  });
  return new CloudTargets(targets);
}

/** The primary target's ports (tests, and commands that look at the primary account only). */
export function createCloudPorts(config: Config, options: CloudOptions = {}): CloudPorts {
  const targets = createTargets(config, options);
  return targets.portsFor(targets.primary);
}

function createCloudflarePorts(
  config: Config,
  ctx: CallContext,
  guard: (() => void | Promise<void>) | undefined,
  options: CloudOptions,
): CloudflarePorts | undefined {
  if (!config.CLOUDFLARE_API_TOKEN || !config.CLOUDFLARE_ACCOUNT_ID || !config.CLOUDFLARE_ZONE_ID)
    return undefined;
  const client = new Cloudflare({
    apiToken: config.CLOUDFLARE_API_TOKEN,
    ...(config.CLOUDFLARE_BASE_URL ? { baseURL: config.CLOUDFLARE_BASE_URL } : {}),
    maxRetries: Math.max(0, (options.maxAttempts ?? 3) - 1),
    timeout: 30_000,
    fetch: async (...args: Parameters<typeof fetch>) => {
      if (guard && (args[1]?.method ?? 'GET').toUpperCase() !== 'GET') await guard();
      const res = await fetch(...args);
      // A 429 naming a short wait to the millisecond is an ordinary throttle: the SDK's retry.
      if (res.status !== 429 || res.headers.has('retry-after-ms')) return res;
      // Over the 1200 per 5 minutes, Cloudflare refuses every call for the rest of the window
      // and says how long only in `retry-after` (whole seconds; no `retry-after-ms`). The SDK
      // would sleep that long inside the call and try again: hold the whole Cloudflare budget
      // until then instead, and let this call fail now.
      ctx.limiter.hold?.('cloudflare', retryAfterMs(res.headers.get('retry-after')));
      const headers = new Headers(res.headers);
      headers.set('x-should-retry', 'false');
      return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
    },
  });
  const cf = new CloudflareAdapter(
    client,
    { accountId: config.CLOUDFLARE_ACCOUNT_ID, zoneId: config.CLOUDFLARE_ZONE_ID },
    ctx,
    options.pageSize,
  );
  return { tunnels: cf, dns: cf };
}

/** Cloudflare's window when the 429 does not say: a whole one (5 minutes). */
const CLOUDFLARE_WINDOW_MS = 300_000;

/** `retry-after` as seconds or an HTTP date, in ms; a whole window when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number {
  if (!value) return CLOUDFLARE_WINDOW_MS;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(CLOUDFLARE_WINDOW_MS, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? CLOUDFLARE_WINDOW_MS : Math.min(CLOUDFLARE_WINDOW_MS, Math.max(0, at - now));
}

/** Secrets Manager and the Tagging API page at most 100 items. */
const small = (n: number | undefined) => (n === undefined ? undefined : Math.min(n, 100));

type AwsClient = EC2Client | SecretsManagerClient | ResourceGroupsTaggingAPIClient | STSClient | SSMClient;

/**
 * Adds to an AWS client, per attempt (inside the retry middleware): the mutation guard, as the
 * last step before a mutating request is sent; and, for an assumed role, fresh credentials when
 * the provider says the ones used expired — the error is marked retryable, so the SDK's retry
 * signs the next attempt with new ones.
 */
function prepared<C extends AwsClient>(
  client: C,
  guard: (() => void | Promise<void>) | undefined,
  role: AssumedRoleCredentials | undefined,
): C {
  const stack = client.middlewareStack as EC2Client['middlewareStack'];
  if (guard) {
    stack.add(
      (next, context) => async (args) => {
        const operation = (context.commandName ?? '').replace(/Command$/, '');
        if (!READ_OPERATION.test(operation)) await guard();
        return next(args);
      },
      { step: 'deserialize', priority: 'low', name: 'moleculeMutationGuard' },
    );
  }
  if (role) {
    const refresh: FinalizeRequestMiddleware<object, MetadataBearer> = (next) => async (args) => {
      try {
        return await next(args);
      } catch (e) {
        const err = e as { name?: string; $retryable?: unknown };
        if (EXPIRED_CREDENTIALS.has(err.name ?? '')) {
          role.expire();
          err.$retryable ??= {};
        }
        throw e;
      }
    };
    stack.addRelativeTo(refresh, {
      relation: 'after',
      toMiddleware: 'retryMiddleware',
      name: 'moleculeExpiredCredentials',
    });
  }
  return client;
}
