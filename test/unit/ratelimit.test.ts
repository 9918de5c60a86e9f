import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/cloud/ratelimit.js';

describe('client-side rate limits', () => {
  it('a sliding window admits its whole limit at once, then one call per call that left the window', async () => {
    const limiter = new RateLimiter({ cloudflare: { limit: 3, windowSeconds: 0.2 } });
    const t0 = performance.now();
    for (let i = 0; i < 3; i++) await limiter.take('cloudflare');
    expect(performance.now() - t0).toBeLessThan(50);
    await limiter.take('cloudflare');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(195);
  });

  it('keeps one bucket per AWS action, as AWS does, and one for all of Cloudflare', async () => {
    const limiter = new RateLimiter({
      'ec2-non-mutating': { capacity: 2, refillPerSecond: 5 },
      cloudflare: { limit: 2, windowSeconds: 0.5 },
    });
    const t0 = performance.now();
    // Two DescribeInstances and two DescribeSecurityGroups: each action has its own 2 tokens.
    for (const op of [
      'DescribeInstances',
      'DescribeInstances',
      'DescribeSecurityGroups',
      'DescribeSecurityGroups',
    ])
      await limiter.take('ec2-non-mutating', op);
    expect(performance.now() - t0).toBeLessThan(50);
    await limiter.take('ec2-non-mutating', 'DescribeInstances'); // third of the same action: waits a refill
    expect(performance.now() - t0).toBeGreaterThanOrEqual(150);
    const t1 = performance.now();
    await limiter.take('cloudflare', 'ListTunnels');
    await limiter.take('cloudflare', 'ListDnsRecords');
    await limiter.take('cloudflare', 'CreateTunnel'); // the window is shared by every operation
    expect(performance.now() - t1).toBeGreaterThanOrEqual(450);
  });
});
