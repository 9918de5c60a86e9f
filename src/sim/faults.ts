import type { BucketSpec } from './limits.js';

/**
 * Fault and realism knobs. Operation keys for {@link FaultSettings.operations} are
 * `<service>:<operation>` exactly as they appear in the call log:
 * `ec2:RunInstances`, `secretsmanager:CreateSecret`, `tagging:GetResources`,
 * `cloudflare:POST cfd_tunnel`, `cloudflare:PUT cfd_tunnel/:id/configurations`,
 * `cloudflare:GET dns_records`, ... A `<service>:*` key applies to every operation of a service.
 */
export interface FaultSettings {
  /** Real milliseconds added to every request. */
  latencyMs: number;
  /** 0..1 probability of a 5xx (EC2 500 InternalError / 503 Unavailable, SM/Tagging 500, CF 500). */
  errorRate: number;
  /** 0..1 probability of a throttle (EC2 503 RequestLimitExceeded, SM/Tagging 400, CF 429 code 971). */
  throttleRate: number;
  /** Enforce the token buckets of limits.ts. */
  buckets: boolean;
  /** New instance / security group ids stay invisible to Describe* for this many simulated ms. */
  eventualConsistencyMs: number;
  /**
   * Share (0..1) of injected 5xx on mutating calls that happen *after* the change was applied,
   * so the caller cannot tell whether it succeeded. Default 0.5.
   */
  errorAfterCommitRatio?: number;
  operations?: Record<string, Partial<Pick<FaultSettings, 'errorRate' | 'throttleRate' | 'latencyMs'>>>;
  /** Role ARNs STS refuses to let anyone assume (AccessDenied), e.g. a trust policy taken away. */
  deniedRoles?: string[];
  /**
   * Trust policies: role ARN → who may assume it (principal ARNs, role ARNs of sessions, or
   * account ids). A role not listed here trusts the default account's own credentials only.
   */
  roleTrust?: Record<string, string[]>;
  /** SSM commands sent to these instances end `Failed` (ResponseCode 1, a stderr text). */
  ssmFailedInstances?: string[];

  // --- fidelity (issue 21): real behaviours that are off unless asked for -----------------
  /**
   * For this many simulated ms after an instance or group was created, and after an instance
   * was terminated, calls that change it (Terminate/Stop/Start/ModifyInstanceAttribute,
   * CreateTags/DeleteTags, Authorize/Revoke, DeleteSecurityGroup, RunInstances naming the
   * group) answer InvalidInstanceID.NotFound / InvalidGroup.NotFound without acting.
   */
  writeConsistencyMs?: number;
  /** A force-deleted secret's name stays blocked this long (CreateSecret: InvalidRequestException). */
  secretNameReuseMs?: number;
  /** DeleteSecret with ForceDeleteWithoutRecovery on a secret already scheduled for deletion is refused. */
  refuseForceDeleteOfScheduled?: boolean;
  /** ListSecrets shows the secrets as they were this many simulated ms ago. */
  listSecretsLagMs?: number;
  /**
   * Cloudflare's 1200 requests per 5 minutes per token as a fixed window (limits.ts
   * CLOUDFLARE_WINDOW): once over, every call fails with 429 until the window ends, with only
   * the standard headers (`retry-after` in whole seconds, no `retry-after-ms`). Replaces the
   * Cloudflare token bucket while on.
   */
  cloudflareRateLimit?: boolean;
  /**
   * A tunnel's connections linger this long after its connector (a running instance tagged
   * `TunnelID`) stopped: DELETE answers 1022 until then, unless `?cascade=true` or
   * `DELETE …/connections` cleaned them up.
   */
  tunnelConnectionLingerMs?: number;
  /** A terminated instance keeps holding its security groups (DependencyViolation) this long. */
  groupReleaseMs?: number;
  /**
   * Paginated listings (DescribeInstances/DescribeSecurityGroups with MaxResults, Tagging
   * GetResources, ListSecrets) return short or empty pages that still carry a token, and a
   * last page may carry a token to an empty page.
   */
  shortPages?: boolean;
  /** Tagging API pagination tokens expire after 15 minutes (PaginationTokenExpiredException). */
  taggingTokenExpiry?: boolean;
  /** RunInstances without groups attaches the VPC's `default` group. */
  defaultGroupOnLaunch?: boolean;
  /**
   * Tunnel status takes all four values: `down` once connectors went away, `degraded` while
   * only lingering connections remain, instead of `inactive`.
   */
  tunnelStatusDetail?: boolean;
}

/** Every fidelity knob on, with realistic windows: what a chaos run against a strict cloud sets. */
export const STRICT_FIDELITY: Partial<FaultSettings> = {
  writeConsistencyMs: 2_000,
  secretNameReuseMs: 60_000,
  refuseForceDeleteOfScheduled: true,
  listSecretsLagMs: 5_000,
  cloudflareRateLimit: true,
  tunnelConnectionLingerMs: 30_000,
  groupReleaseMs: 10_000,
  shortPages: true,
  taggingTokenExpiry: true,
  defaultGroupOnLaunch: true,
  tunnelStatusDetail: true,
};

/** The same knobs off (today's profiles). */
export const NO_FIDELITY: Partial<FaultSettings> = {
  writeConsistencyMs: 0,
  secretNameReuseMs: 0,
  refuseForceDeleteOfScheduled: false,
  listSecretsLagMs: 0,
  cloudflareRateLimit: false,
  tunnelConnectionLingerMs: 0,
  groupReleaseMs: 0,
  shortPages: false,
  taggingTokenExpiry: false,
  defaultGroupOnLaunch: false,
  tunnelStatusDetail: false,
};

const DURATION_KNOBS = [
  'writeConsistencyMs',
  'secretNameReuseMs',
  'listSecretsLagMs',
  'tunnelConnectionLingerMs',
  'groupReleaseMs',
] as const;
const SWITCH_KNOBS = [
  'refuseForceDeleteOfScheduled',
  'cloudflareRateLimit',
  'shortPages',
  'taggingTokenExpiry',
  'defaultGroupOnLaunch',
  'tunnelStatusDetail',
] as const;

export const FAST_FAULTS: FaultSettings = {
  latencyMs: 0,
  errorRate: 0,
  throttleRate: 0,
  buckets: false,
  eventualConsistencyMs: 0,
  errorAfterCommitRatio: 0.5,
  operations: {},
};

export const REALISTIC_FAULTS: FaultSettings = { ...FAST_FAULTS, latencyMs: 5, buckets: true };

function checkRate(name: string, v: unknown): void {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new Error(`${name} must be a number in 0..1`);
}
function checkNonNegative(name: string, v: unknown): void {
  if (typeof v !== 'number' || !(v >= 0)) throw new Error(`${name} must be a non-negative number`);
}

/** Merges a partial update into settings, validating every field; throws on bad input. */
export function mergeFaults(base: FaultSettings, patch: Partial<FaultSettings>): FaultSettings {
  const next: FaultSettings = { ...base, operations: { ...(base.operations ?? {}) } };
  if (patch.latencyMs !== undefined) checkNonNegative('latencyMs', patch.latencyMs);
  if (patch.eventualConsistencyMs !== undefined)
    checkNonNegative('eventualConsistencyMs', patch.eventualConsistencyMs);
  if (patch.errorRate !== undefined) checkRate('errorRate', patch.errorRate);
  if (patch.throttleRate !== undefined) checkRate('throttleRate', patch.throttleRate);
  if (patch.errorAfterCommitRatio !== undefined)
    checkRate('errorAfterCommitRatio', patch.errorAfterCommitRatio);
  if (patch.buckets !== undefined && typeof patch.buckets !== 'boolean')
    throw new Error('buckets must be a boolean');
  for (const key of ['latencyMs', 'errorRate', 'throttleRate', 'buckets', 'eventualConsistencyMs'] as const) {
    if (patch[key] !== undefined) (next as unknown as Record<string, unknown>)[key] = patch[key];
  }
  if (patch.errorAfterCommitRatio !== undefined) next.errorAfterCommitRatio = patch.errorAfterCommitRatio;
  if (patch.deniedRoles !== undefined) {
    if (!Array.isArray(patch.deniedRoles) || patch.deniedRoles.some((r) => typeof r !== 'string'))
      throw new Error('deniedRoles must be a list of role ARNs');
    next.deniedRoles = [...patch.deniedRoles];
  }
  if (patch.roleTrust !== undefined) {
    const t = patch.roleTrust;
    if (
      t === null ||
      typeof t !== 'object' ||
      Object.values(t).some((v) => !Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    )
      throw new Error('roleTrust must map role ARNs to lists of principals');
    next.roleTrust = structuredClone(t);
  }
  if (patch.ssmFailedInstances !== undefined) {
    const ids = patch.ssmFailedInstances;
    if (!Array.isArray(ids) || ids.some((r) => typeof r !== 'string'))
      throw new Error('ssmFailedInstances must be a list of instance ids');
    next.ssmFailedInstances = [...ids];
  }
  for (const key of DURATION_KNOBS) {
    if (patch[key] === undefined) continue;
    checkNonNegative(key, patch[key]);
    next[key] = patch[key];
  }
  for (const key of SWITCH_KNOBS) {
    if (patch[key] === undefined) continue;
    if (typeof patch[key] !== 'boolean') throw new Error(`${key} must be a boolean`);
    next[key] = patch[key];
  }
  if (patch.operations !== undefined) {
    if (patch.operations === null || typeof patch.operations !== 'object')
      throw new Error('operations must be an object');
    for (const [op, o] of Object.entries(patch.operations)) {
      if (o === null) {
        delete next.operations![op];
        continue;
      }
      if (o.errorRate !== undefined) checkRate(`operations.${op}.errorRate`, o.errorRate);
      if (o.throttleRate !== undefined) checkRate(`operations.${op}.throttleRate`, o.throttleRate);
      if (o.latencyMs !== undefined) checkNonNegative(`operations.${op}.latencyMs`, o.latencyMs);
      next.operations![op] = { ...(next.operations![op] ?? {}), ...o };
    }
  }
  return next;
}

export interface EffectiveFaults {
  latencyMs: number;
  errorRate: number;
  throttleRate: number;
}

/** Settings for one operation: `<service>:<op>` overrides `<service>:*`, which overrides the globals. */
export function effectiveFaults(f: FaultSettings, service: string, operation: string): EffectiveFaults {
  const ops = f.operations ?? {};
  const svc = ops[`${service}:*`];
  const op = ops[`${service}:${operation}`];
  return {
    latencyMs: op?.latencyMs ?? svc?.latencyMs ?? f.latencyMs,
    errorRate: op?.errorRate ?? svc?.errorRate ?? f.errorRate,
    throttleRate: op?.throttleRate ?? svc?.throttleRate ?? f.throttleRate,
  };
}

interface Bucket {
  tokens: number;
  last: number;
}

/** Token buckets keyed by name, refilled lazily from the simulated clock. */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  /** Takes one token. When empty, returns the simulated ms until a token is available. */
  take(key: string, spec: BucketSpec, now: number): { ok: true } | { ok: false; waitMs: number } {
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: spec.capacity, last: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(spec.capacity, b.tokens + ((now - b.last) / 1000) * spec.refillPerSecond);
    b.last = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, waitMs: Math.ceil(((1 - b.tokens) / spec.refillPerSecond) * 1000) };
  }

  /** Tokens left (after refill) without taking one. */
  peek(key: string, spec: BucketSpec, now: number): number {
    const b = this.buckets.get(key);
    if (!b) return spec.capacity;
    return Math.min(spec.capacity, b.tokens + ((now - b.last) / 1000) * spec.refillPerSecond);
  }

  reset(): void {
    this.buckets.clear();
  }
}
