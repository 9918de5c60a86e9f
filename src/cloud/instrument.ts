import type { Metrics } from '../observability/metrics.js';
import { CloudError, errorClassOf, NotLeaderError } from '../runtime/errors.js';
import type { BucketName, RateLimiter } from './ratelimit.js';

const OUTCOME: Record<string, string> = {
  NotFound: 'not_found',
  Conflict: 'conflict',
  Throttled: 'throttled',
  Transient: 'transient',
  Terminal: 'terminal',
};

export interface CallContext {
  limiter: Pick<RateLimiter, 'take'> & Partial<Pick<RateLimiter, 'hold'>>;
  metrics?: Metrics;
  /** The target the calls are made for, as the metrics label them ('' for Cloudflare). */
  target: string;
}

/**
 * Runs one provider call: waits for its rate-limit bucket, times it, counts it by outcome and
 * translates its failure with `translate`, so callers only ever see our error classes.
 */
export async function call<T>(
  ctx: CallContext,
  service: string,
  operation: string,
  bucket: BucketName,
  fn: () => Promise<T>,
  translate: (err: unknown, service: string, operation: string) => CloudError,
): Promise<T> {
  await ctx.limiter.take(bucket, operation);
  const started = performance.now();
  try {
    const result = await fn();
    ctx.metrics?.cloudRequests.labels(service, operation, 'ok', ctx.target).inc();
    return result;
  } catch (err) {
    // The mutation guard refused the call (leadership lost): not a cloud outcome, passed on as is.
    const notLeader = notLeaderIn(err);
    if (notLeader) throw notLeader;
    const translated = err instanceof CloudError ? err : translate(err, service, operation);
    ctx.metrics?.cloudRequests
      .labels(service, operation, OUTCOME[errorClassOf(translated)] ?? 'transient', ctx.target)
      .inc();
    throw translated;
  } finally {
    ctx.metrics?.cloudRequestDuration
      .labels(service, ctx.target)
      .observe((performance.now() - started) / 1000);
  }
}

/** Operations that only read: every other one is refused by the mutation guard once leadership is lost. */
export const READ_OPERATION = /^(Describe|Get|List|BatchGet)/;

function notLeaderIn(err: unknown): NotLeaderError | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof NotLeaderError) return e;
  }
  return undefined;
}
