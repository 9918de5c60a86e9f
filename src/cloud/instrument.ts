import type { Metrics } from '../observability/metrics.js';
import { CloudError, errorClassOf } from '../runtime/errors.js';
import type { BucketName, RateLimiter } from './ratelimit.js';

const OUTCOME: Record<string, string> = {
  NotFound: 'not_found',
  Conflict: 'conflict',
  Throttled: 'throttled',
  Transient: 'transient',
  Terminal: 'terminal',
};

export interface CallContext {
  limiter: Pick<RateLimiter, 'take'>;
  metrics?: Metrics;
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
  await ctx.limiter.take(bucket);
  const started = performance.now();
  try {
    const result = await fn();
    ctx.metrics?.cloudRequests.labels(service, operation, 'ok').inc();
    return result;
  } catch (err) {
    const translated = err instanceof CloudError ? err : translate(err, service, operation);
    ctx.metrics?.cloudRequests
      .labels(service, operation, OUTCOME[errorClassOf(translated)] ?? 'transient')
      .inc();
    throw translated;
  } finally {
    ctx.metrics?.cloudRequestDuration.labels(service).observe((performance.now() - started) / 1000);
  }
}
