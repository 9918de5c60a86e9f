import type { Metrics } from '../observability/metrics.js';

export interface BucketSpec {
  capacity: number;
  refillPerSecond: number;
}

/**
 * Client-side budgets, one per provider throttling category (EC2 API throttling docs; Cloudflare
 * 1200 requests / 5 min). Sharing them across every controller keeps the whole operator under
 * the provider's buckets, so it rarely sees a throttle at all.
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
  // NOTE: Cloudflare blocks for the rest of a 5-minute window once 1200 calls were made in it.
  // A bucket of capacity C refilling at r admits C + 300·r calls in any 5 minutes, so C + 300·r ≤ 1200.
  cloudflare: { capacity: 60, refillPerSecond: 3.8 },
} satisfies Record<string, BucketSpec>;

export type BucketName = keyof typeof DEFAULT_BUCKETS;

class TokenBucket {
  private tokens: number;
  private updated: number;
  private tail: Promise<void> = Promise.resolve();

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

export class RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    overrides: Record<string, BucketSpec> = {},
    private readonly metrics?: Metrics,
    now: () => number = () => performance.now(),
  ) {
    for (const [name, spec] of Object.entries({ ...DEFAULT_BUCKETS, ...overrides })) {
      this.buckets.set(name, new TokenBucket(spec, now));
    }
  }

  spec(name: BucketName): BucketSpec {
    return this.buckets.get(name)!.spec;
  }

  async take(name: BucketName): Promise<void> {
    const bucket = this.buckets.get(name);
    if (!bucket) throw new Error(`unknown rate-limit bucket ${name}`);
    const waited = await bucket.take();
    if (waited > 0) this.metrics?.ratelimitWait.labels(name).inc(waited / 1000);
  }
}

/** A limiter that never waits (tests of adapters, `plan`). */
export const unlimited = {
  take: async (_name: BucketName) => {},
} as Pick<RateLimiter, 'take'>;
