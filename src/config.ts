import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import { FAILPOINTS as FAILPOINT_NAMES, type Failpoint } from './runtime/failpoints.js';

/**
 * Every environment variable the operator reads, validated once. Nothing else in the
 * project reads `process.env`: commands call {@link loadConfig} and pass the result down.
 */

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `500ms`, `30s`, `5m`, `1h`, `2d` or a bare number of seconds into milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 's']!);
}

const optionalString = z.string().trim().min(1).optional();
const url = z.url({ protocol: /^https?$/ });
const duration = (fallback: string, options: { positive?: boolean } = {}) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      const ms = parseDuration(v);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: 'expected a duration such as 30s, 5m or 1h' });
        return z.NEVER;
      }
      if (options.positive && ms <= 0) {
        ctx.addIssue({ code: 'custom', message: 'must be longer than zero' });
        return z.NEVER;
      }
      return ms;
    });
const int = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);
const cron = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .refine((v) => {
      const n = v.trim().split(/\s+/).length;
      return n === 5 || n === 6;
    }, 'expected a cron expression with 5 or 6 fields');

/** A comma-separated list of DNS labels, lowercased, duplicates dropped; unset is an empty list. */
const labelList = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const labels = (v ?? '')
      .split(',')
      .map((l) => l.trim().toLowerCase())
      .filter(Boolean);
    const bad = labels.filter((l) => !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l));
    if (bad.length > 0) {
      ctx.addIssue({
        code: 'custom',
        message: `expected comma-separated DNS labels such as "billing,partners"; not labels: ${bad.join(', ')}`,
      });
      return z.NEVER;
    }
    return [...new Set(labels)];
  });

/**
 * Which proxies may say who the client is through X-Forwarded-For (fastify's `trustProxy`):
 * `false` (default: the peer address is the client), comma-separated addresses / CIDRs of the
 * proxies, or `true` (any peer: only when nothing but the proxy can reach the API).
 */
const trustProxy = z
  .string()
  .optional()
  .transform((v, ctx): boolean | string[] => {
    if (v === undefined || v === 'false') return false;
    if (v === 'true') return true;
    const entries = v
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean);
    const bad = entries.filter((e) => {
      const [address, prefix, ...rest] = e.split('/');
      const family = isIP(address ?? '');
      if (family === 0 || rest.length > 0) return true;
      if (prefix === undefined) return false;
      return !/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128);
    });
    if (entries.length === 0 || bad.length > 0) {
      ctx.addIssue({
        code: 'custom',
        message: `expected false, true or comma-separated proxy addresses/CIDRs such as 10.0.0.0/8${bad.length > 0 ? `; not addresses: ${bad.join(', ')}` : ''}`,
      });
      return z.NEVER;
    }
    return entries;
  });

const bucketOverride = z.object({ capacity: z.number().positive(), refillPerSecond: z.number().positive() });

export const ConfigSchema = z.object({
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL')
    .optional(),
  PGLITE_DIR: z.string().default('.data/pglite'),
  MOLECULE_ENV: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'expected a short lowercase name such as dev, staging or prod')
    .default('dev'),

  AWS_REGION: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'expected an AWS region such as us-east-1')
    .default('us-east-1'),
  AWS_ENDPOINT_URL: url.optional(),
  EC2_AMI: z
    .string()
    .regex(/^ami-[0-9a-f]{8,17}$/, 'expected an AMI id')
    .default('ami-0ea3c35c5c3284d82'),
  EC2_VPC_ID: z
    .string()
    .regex(/^vpc-[0-9a-f]{8,17}$/, 'expected a VPC id')
    .optional(),
  EC2_SUBNET_ID: z
    .string()
    .regex(/^subnet-[0-9a-f]{8,17}$/, 'expected a subnet id')
    .optional(),
  EC2_SECURITY_GROUP: z
    .string()
    .regex(/^sg-[0-9a-f]{8,17}$/, 'expected a security group id')
    .optional(),
  EC2_INSTANCE_TYPE: z
    .string()
    .regex(/^[a-z0-9]+\.[a-z0-9]+$/, 'expected an instance type such as t3.small')
    .default('t3.small'),
  EC2_KEY_NAME: optionalString,
  EC2_TENANT_IAM_PROFILE: optionalString,
  EC2_WORKSPACE_IAM_PROFILE: optionalString,
  EIC_ENDPOINT_SG_ID: z
    .string()
    .regex(/^sg-[0-9a-f]{8,17}$/, 'expected a security group id')
    .optional(),
  TENANT_IMAGE: z.string().default('ghcr.io/molecule-ai/platform-tenant:latest'),
  CANARY_TENANT_IMAGE: optionalString,

  // The canary target: a second AWS account (DESIGN §10). The first four come together.
  CANARY_ROLE_ARN: z
    .string()
    .regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/, 'expected an IAM role ARN')
    .optional(),
  CANARY_REGION: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'expected an AWS region such as us-east-1')
    .optional(),
  CANARY_VPC_ID: z
    .string()
    .regex(/^vpc-[0-9a-f]{8,17}$/, 'expected a VPC id')
    .optional(),
  CANARY_SUBNET_ID: z
    .string()
    .regex(/^subnet-[0-9a-f]{8,17}$/, 'expected a subnet id')
    .optional(),
  CANARY_EIC_ENDPOINT_SG_ID: z
    .string()
    .regex(/^sg-[0-9a-f]{8,17}$/, 'expected a security group id')
    .optional(),
  CANARY_TENANT_IAM_PROFILE: optionalString,
  CANARY_WORKSPACE_IAM_PROFILE: optionalString,

  CLOUDFLARE_API_TOKEN: optionalString,
  CLOUDFLARE_ACCOUNT_ID: z
    .string()
    .regex(/^[0-9a-f]{32}$/, 'expected a 32-hex-digit account id')
    .optional(),
  CLOUDFLARE_ZONE_ID: z
    .string()
    .regex(/^[0-9a-f]{32}$/, 'expected a 32-hex-digit zone id')
    .optional(),
  CLOUDFLARE_BASE_URL: url.optional(),
  APP_DOMAIN: z
    .string()
    .regex(/^([a-z0-9-]+\.)+[a-z]{2,}$/, 'expected a domain such as moleculesai.app')
    .default('moleculesai.app'),
  TENANT_ORIGIN_SERVICE: z.string().default('http://localhost:8080'),

  CP_ADMIN_API_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  CP_BASE_URL: url.default('https://api.moleculesai.app'),
  PROVISION_SHARED_SECRET: optionalString,
  GHCR_PULL_TOKEN: optionalString,
  SECRET_RECOVERY_DAYS: z.coerce
    .number()
    .int()
    .refine((d) => d === 0 || (d >= 7 && d <= 30), 'must be 0 (force delete) or between 7 and 30')
    .default(7),

  RESYNC_CRON: cron('*/5 * * * *'),
  ORPHAN_SCAN_CRON: cron('*/5 * * * *'),
  ORPHAN_POLICY: z.enum(['report', 'delete']).default('report'),
  ORPHAN_GRACE: duration('1h'),
  ORPHAN_MAX_DELETIONS: int(10, 0, 1000),
  ORPHAN_MAX_FRACTION: z.coerce.number().min(0).max(1).default(0.2),

  // Image rollouts (DESIGN §11): canaries first, then the rest after the soak, a few at a time.
  ROLLOUT_CANARY_SOAK: duration('10m'),
  ROLLOUT_MAX_IN_FLIGHT: int(5, 1, 1000),
  ROLLOUT_MAX_FAILURES: int(3, 1, 1000),

  RECONCILE_CONCURRENCY: int(8, 1, 256),
  CREATE_GRACE: duration('30s'),
  // Leader election (client-go's defaults scaled to a Postgres row); shorter only in tests.
  LEASE_DURATION: duration('15s', { positive: true }),
  LEASE_RENEW_DEADLINE: duration('10s', { positive: true }),
  LEASE_RETRY_PERIOD: duration('2s', { positive: true }),
  /** The share (0..1] of the Cloudflare token's 1200 requests / 5 min this operator may use. */
  CLOUDFLARE_RATE_SHARE: z.coerce.number().gt(0).max(1).default(1),
  RATE_LIMITS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return {};
      try {
        return z.record(z.string(), bucketOverride).parse(JSON.parse(v));
      } catch {
        ctx.addIssue({
          code: 'custom',
          message: 'expected JSON such as {"ec2-run-instances":{"capacity":5,"refillPerSecond":2}}',
        });
        return z.NEVER;
      }
    }),

  // HTTP API (src/api): request budgets per client address, and hostnames slugs must not take.
  API_RATE_LIMIT: int(6000, 0, 1_000_000),
  API_RATE_LIMIT_WINDOW: duration('1m', { positive: true }),
  API_AUTH_FAILURE_LIMIT: int(20, 0, 1_000_000),
  API_AUTH_FAILURE_WINDOW: duration('1m', { positive: true }),
  API_TRUST_PROXY: trustProxy,
  RESERVED_SLUGS: labelList,

  PORT: int(8080, 0, 65535),
  METRICS_PORT: int(9090, 0, 65535),
  /** Chaos suite only (runtime/failpoints.ts): comma-separated points where the process stops itself once. */
  FAILPOINTS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const points = (v ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const unknown = points.filter((p) => !(FAILPOINT_NAMES as readonly string[]).includes(p));
      if (unknown.length > 0) {
        ctx.addIssue({ code: 'custom', message: `unknown failpoint ${unknown.join(', ')}` });
        return z.NEVER;
      }
      return points as Failpoint[];
    }),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `run` and `api`: one JSON object a line, or coloured lines for people; unset, pretty on a terminal. */
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
});

export type Config = z.output<typeof ConfigSchema>;
export type ConfigKey = keyof z.input<typeof ConfigSchema>;
export const CONFIG_KEYS = Object.keys(ConfigSchema.shape) as ConfigKey[];

/** Variables whose values are credentials: never logged, never echoed back. */
export const SECRET_KEYS: readonly ConfigKey[] = [
  'CLOUDFLARE_API_TOKEN',
  'CP_ADMIN_API_TOKEN',
  'PROVISION_SHARED_SECRET',
  'GHCR_PULL_TOKEN',
  'DATABASE_URL',
];

export class ConfigError extends Error {
  constructor(readonly problems: { variable: string; message: string }[]) {
    super(
      `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n'),
    );
    this.name = 'ConfigError';
  }
}

/**
 * Credentials may come from files, so that a Kubernetes Secret is mounted rather than copied into
 * the environment (where `/proc/<pid>/environ`, crash dumps and child processes see it):
 * `<KEY>_FILE=/path` for one, or `CREDENTIALS_DIRECTORY=/dir` (systemd's convention) holding a
 * file per credential named after it. A missing file in the directory means unset, so an optional
 * key can be left out of the Secret. One trailing newline is dropped.
 */
function readCredentialFiles(
  env: Record<string, string | undefined>,
  input: Record<string, string>,
  problems: { variable: string; message: string }[],
): void {
  const read = (variable: string, file: string, optional: boolean): string | undefined => {
    try {
      const value = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
      if (value.trim() !== '') return value;
      problems.push({ variable, message: `${file} is empty` });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      if (!(optional && code === 'ENOENT'))
        problems.push({ variable, message: `cannot read ${file}: ${code}` });
    }
    return undefined;
  };
  const dir = env.CREDENTIALS_DIRECTORY?.trim();
  if (dir) {
    try {
      if (!statSync(dir).isDirectory())
        problems.push({ variable: 'CREDENTIALS_DIRECTORY', message: `${dir} is not a directory` });
    } catch (e) {
      problems.push({
        variable: 'CREDENTIALS_DIRECTORY',
        message: `cannot read ${dir}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      });
    }
  }
  for (const key of SECRET_KEYS) {
    const file = env[`${key}_FILE`]?.trim();
    if (file) {
      if (input[key] !== undefined) {
        problems.push({ variable: `${key}_FILE`, message: `set either ${key} or ${key}_FILE, not both` });
        continue;
      }
      const value = read(`${key}_FILE`, file, false);
      if (value !== undefined) input[key] = value;
    } else if (dir && input[key] === undefined) {
      const value = read('CREDENTIALS_DIRECTORY', join(dir, key), true);
      if (value !== undefined) input[key] = value;
    }
  }
}

export interface LoadOptions {
  /** Variables this command cannot run without, reported together with every other problem. */
  required?: readonly ConfigKey[];
}

/**
 * Validates the environment. Empty strings count as unset. Every problem is collected and
 * thrown together in one {@link ConfigError} naming each variable.
 */
export function loadConfig(env: Record<string, string | undefined>, options: LoadOptions = {}): Config {
  const input: Record<string, string> = {};
  for (const key of CONFIG_KEYS) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') input[key] = value;
  }
  const problems: { variable: string; message: string }[] = [];
  readCredentialFiles(env, input, problems);
  for (const key of options.required ?? []) {
    if (input[key] === undefined) problems.push({ variable: key, message: 'is required for this command' });
  }
  const parsed = ConfigSchema.safeParse(input);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push({ variable: String(issue.path[0] ?? '?'), message: issue.message });
    }
  }
  // A leader must stop acting before its lease can be taken (runtime/lease.ts). Checked whenever
  // the three parse, whatever else is wrong, so that every problem is reported at once.
  const lease = LeaseSchema.safeParse(input);
  if (lease.success) {
    const c = lease.data;
    if (c.LEASE_RENEW_DEADLINE >= c.LEASE_DURATION)
      problems.push({ variable: 'LEASE_RENEW_DEADLINE', message: 'must be shorter than LEASE_DURATION' });
    if (c.LEASE_RETRY_PERIOD >= c.LEASE_RENEW_DEADLINE)
      problems.push({ variable: 'LEASE_RETRY_PERIOD', message: 'must be shorter than LEASE_RENEW_DEADLINE' });
  }
  problems.push(...canaryProblems(input));
  // Deleting what was seen orphaned a moment ago would take resources mid-creation or whose
  // owner row is not visible yet: in delete mode the grace has a floor.
  const orphans = OrphanSchema.safeParse(input);
  if (
    orphans.success &&
    orphans.data.ORPHAN_POLICY === 'delete' &&
    orphans.data.ORPHAN_GRACE < MIN_ORPHAN_GRACE_MS
  )
    problems.push({
      variable: 'ORPHAN_GRACE',
      message: `must be at least ${MIN_ORPHAN_GRACE_MS / 60_000}m with ORPHAN_POLICY=delete`,
    });
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  return parsed.data;
}

/** The variables that describe the canary target, all or none of them. */
export const CANARY_TARGET_KEYS = [
  'CANARY_ROLE_ARN',
  'CANARY_REGION',
  'CANARY_VPC_ID',
  'CANARY_SUBNET_ID',
] as const;

/**
 * The canary target is configured by four variables together (seed); its EC2 Instance Connect
 * group is required whenever the primary's is set (security group ids are per account).
 */
function canaryProblems(input: Record<string, string>): { variable: string; message: string }[] {
  const set = CANARY_TARGET_KEYS.filter((k) => input[k] !== undefined);
  if (set.length === 0) {
    return ['CANARY_EIC_ENDPOINT_SG_ID', 'CANARY_TENANT_IAM_PROFILE', 'CANARY_WORKSPACE_IAM_PROFILE']
      .filter((k) => input[k] !== undefined)
      .map((variable) => ({
        variable,
        message: `is set but the canary target is not (${CANARY_TARGET_KEYS.join(', ')})`,
      }));
  }
  const problems: { variable: string; message: string }[] = CANARY_TARGET_KEYS.filter(
    (k) => input[k] === undefined,
  ).map((variable) => ({
    variable,
    message: `is required with ${set.join(', ')}: the canary target takes all four of ${CANARY_TARGET_KEYS.join(', ')}`,
  }));
  if (input.EIC_ENDPOINT_SG_ID !== undefined && input.CANARY_EIC_ENDPOINT_SG_ID === undefined) {
    problems.push({
      variable: 'CANARY_EIC_ENDPOINT_SG_ID',
      message: 'is required with EIC_ENDPOINT_SG_ID and a canary target: security group ids are per account',
    });
  }
  return problems;
}

/** The shortest ORPHAN_GRACE in delete mode: longer than CREATE_GRACE and a resync of a large fleet. */
export const MIN_ORPHAN_GRACE_MS = 10 * 60_000;
const OrphanSchema = ConfigSchema.pick({ ORPHAN_POLICY: true, ORPHAN_GRACE: true });

const LeaseSchema = ConfigSchema.pick({
  LEASE_DURATION: true,
  LEASE_RENEW_DEADLINE: true,
  LEASE_RETRY_PERIOD: true,
});

/** Which optional integrations are configured; controllers that lack theirs stay off and say why. */
export function capabilities(config: Config) {
  const missing = (keys: ConfigKey[]) => keys.filter((k) => config[k as keyof Config] === undefined);
  return {
    cloudflare: missing(['CLOUDFLARE_API_TOKEN', 'CLOUDFLARE_ACCOUNT_ID', 'CLOUDFLARE_ZONE_ID']),
    instance: missing(['EC2_TENANT_IAM_PROFILE', 'EC2_SUBNET_ID']),
    securityGroup: config.EC2_VPC_ID || config.EC2_SECURITY_GROUP ? [] : (['EC2_VPC_ID'] as ConfigKey[]),
  };
}
