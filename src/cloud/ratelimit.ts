import type { Metrics } from '../observability/metrics.js';
import { ThrottledError } from '../runtime/errors.js';

export interface BucketSpec {
  capacity: number;
  refillPerSecond: number;
}

/** At most `limit` calls in any `windowSeconds` (a sliding window, for a provider that counts per window). */
export interface WindowSpec {
  limit: number;
  windowSeconds: number;
}

export type LimitSpec = BucketSpec | WindowSpec;

/**
 * Client-side budgets, one per provider throttling category (EC2 API throttling docs; Cloudflare
 * 1200 requests / 5 min), applied per API action as the provider does (see {@link RateLimiter}).
 * Sharing them across every controller keeps the whole operator under the provider's buckets,
 * so it rarely sees a throttle at all.
 */
/** Refill a little slower than the provider: its clock and ours never start at the same instant. */
const HEADROOM = 0.95;
const aws = (capacity: number, refillPerSecond: number): BucketSpec => ({
  capacity,
  refillPerSecond: refillPerSecond * HEADROOM,
});

export const DEFAULT_BUCKETS = {
  'ec2-run-instances': aws(5, 2),
  'ec2-start-instances': aws(5, 2),
  'ec2-terminate-instances': aws(100, 5),
  'ec2-tags': aws(100, 10),
  'ec2-mutating': aws(50, 5),
  'ec2-resource-intensive': aws(50, 5),
  'ec2-non-mutating': aws(100, 20),
  secretsmanager: aws(50, 50),
  tagging: aws(20, 10),
  'ssm-send-command': aws(20, 10),
  'ssm-read': aws(40, 20),
  // NOTE: Cloudflare blocks for the rest of a 5-minute window once 1200 calls were made in it.
  // Its rule itself, as a sliding window, admits every schedule the provider does: all of a cold
  // start's calls at once when they fit (a token bucket would pace them at ≤ 4/s, e.g. capacity
  // 60 + 3.8/s, and make a 100-org convergence wait minutes on Cloudflare alone).
  cloudflare: cloudflareWindow(1) as LimitSpec,
} satisfies Record<string, LimitSpec>;

/**
 * Cloudflare's budget for this operator: `share` (CLOUDFLARE_RATE_SHARE) of the token's 1200
 * requests per 5 minutes, less the headroom. A token shared with the dashboard or other tools
 * gives the operator only part of it, so that together they stay under the provider's limit.
 */
export function cloudflareWindow(share: number): WindowSpec {
  return { limit: Math.max(1, Math.floor(1200 * share * HEADROOM)), windowSeconds: 300 };
}

/** A bucket held longer than this fails fast instead of keeping its caller waiting. */
const HOLD_WAIT_LIMIT_MS = 2_000;

export type BucketName = keyof typeof DEFAULT_BUCKETS;

const SETTLED: Promise<void> = Promise.resolve();

class TokenBucket {
  private tokens: number;
  private updated: number;
  private tail: Promise<void> = SETTLED;

  constructor(
    readonly spec: BucketSpec,
    private readonly now: () => number,
  ) {
    this.tokens = spec.capacity;
    this.updated = now();
  }

  /** Waits (FIFO) until a token is available and takes it; returns the milliseconds waited. */
  take(): Promise<number> {
    const start = this.now();
    if (this.tail === SETTLED) {
      // Fast path: nobody waiting and a token at hand (the common case).
      this.refill();
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return Promise.resolve(0);
      }
    }
    const turn = this.tail.then(async () => {
      for (;;) {
        this.refill();
        if (this.tokens >= 1) {
          this.tokens -= 1;
          return;
        }
        const ms = ((1 - this.tokens) / this.spec.refillPerSecond) * 1000;
        await new Promise((r) => setTimeout(r, Math.max(1, Math.ceil(ms))));
      }
    });
    this.tail = turn;
    void turn.then(() => {
      if (this.tail === turn) this.tail = SETTLED;
    });
    return turn.then(() => this.now() - start);
  }

  private refill() {
    const t = this.now();
    this.tokens = Math.min(
      this.spec.capacity,
      this.tokens + ((t - this.updated) / 1000) * this.spec.refillPerSecond,
    );
    this.updated = t;
  }
}

/** At most `limit` calls in any `windowSeconds`: the times of the last `limit` calls, in a ring. */
class SlidingWindow {
  private readonly times: number[] = [];
  /** Index of the oldest call once the ring is full. */
  private oldest = 0;
  private tail: Promise<void> = SETTLED;

  constructor(
    readonly spec: WindowSpec,
    private readonly now: () => number,
  ) {}

  /** Waits (FIFO) until a call fits in the window and records it; returns the milliseconds waited. */
  take(): Promise<number> {
    const start = this.now();
    if (this.tail === SETTLED && this.admit()) return Promise.resolve(0);
    const turn = this.tail.then(async () => {
      while (!this.admit()) {
        const ms = this.times[this.oldest]! + this.spec.windowSeconds * 1000 - this.now();
        await new Promise((r) => setTimeout(r, Math.max(1, Math.ceil(ms))));
      }
    });
    this.tail = turn;
    void turn.then(() => {
      if (this.tail === turn) this.tail = SETTLED;
    });
    return turn.then(() => this.now() - start);
  }

  private admit(): boolean {
    const t = this.now();
    if (this.times.length < this.spec.limit) {
      this.times.push(t);
      return true;
    }
    if (this.times[this.oldest]! + this.spec.windowSeconds * 1000 > t) return false;
    this.times[this.oldest] = t;
    this.oldest = (this.oldest + 1) % this.spec.limit;
    return true;
  }
}

/**
 * Limits shared by every controller. AWS throttles per account, Region *and API action*: each
 * category's numbers apply to every action on its own (two Describe* actions never share
 * tokens), so an AWS bucket is kept per (category, operation). Cloudflare has one budget for
 * the whole API.
 */
export class RateLimiter {
  private readonly specs: Record<string, LimitSpec>;
  private readonly buckets = new Map<string, TokenBucket | SlidingWindow>();
  /** Buckets the provider locked out (its whole window refused), until when (this.now's clock). */
  private readonly held = new Map<string, number>();

  /** @param target the target whose account and region these buckets stand for ('' for Cloudflare), a metric label */
  constructor(
    overrides: Record<string, LimitSpec> = {},
    private readonly metrics?: Metrics,
    private readonly target = 'primary',
    private readonly now: () => number = () => performance.now(),
  ) {
    this.specs = { ...DEFAULT_BUCKETS, ...overrides };
  }

  spec(name: BucketName): LimitSpec {
    return this.specs[name]!;
  }

  /**
   * The provider refused every call of `name` for `ms` more (Cloudflare over its 1200 per 5
   * minutes blocks the rest of the window; the dashboard or another tool on the token may have
   * spent it). Until then {@link take} does not let a call through: a short hold is waited out,
   * a long one fails at once with a ThrottledError (code `RateLimited`) that names its end, so
   * reconciles back off with that condition instead of hammering a locked API.
   */
  hold(name: BucketName, ms: number): void {
    const now = this.now();
    const until = now + Math.max(0, ms);
    const current = this.held.get(name) ?? 0;
    if (until <= current) return;
    if (current <= now) this.metrics?.ratelimitLockouts.labels(name, this.target).inc();
    this.held.set(name, until);
  }

  async take(name: BucketName, operation?: string): Promise<void> {
    const until = this.held.get(name);
    if (until !== undefined) {
      const left = until - this.now();
      if (left <= 0) this.held.delete(name);
      else if (left <= HOLD_WAIT_LIMIT_MS) {
        await new Promise((r) => setTimeout(r, Math.ceil(left)));
        this.metrics?.ratelimitWait.labels(name, this.target).inc(left / 1000);
      } else
        throw new ThrottledError(
          `${name}: the provider refuses every call until its rate-limit window ends (in ${Math.ceil(left / 1000)} s); not calling before then`,
          { service: name, code: 'RateLimited' },
        );
    }
    const key = operation && name !== 'cloudflare' ? `${name}:${operation}` : name;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      const spec = this.specs[name];
      if (!spec) throw new Error(`unknown rate-limit bucket ${name}`);
      bucket = 'limit' in spec ? new SlidingWindow(spec, this.now) : new TokenBucket(spec, this.now);
      this.buckets.set(key, bucket);
    }
    const waited = await bucket.take();
    if (waited > 0) this.metrics?.ratelimitWait.labels(name, this.target).inc(waited / 1000);
  }
}

/** A limiter that never waits (tests of adapters, `plan`). */
export const unlimited = {
  take: async (_name: BucketName, _operation?: string) => {},
  hold: (_name: BucketName, _ms: number) => {},
} as Pick<RateLimiter, 'take' | 'hold'>;
