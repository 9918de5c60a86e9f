import { Writable } from 'node:stream';
import { createCloudPorts } from '../../../src/cloud/index.js';
import type { CloudPorts } from '../../../src/cloud/ports.js';
import {
  type BucketName,
  DEFAULT_BUCKETS,
  type LimitSpec,
  RateLimiter,
} from '../../../src/cloud/ratelimit.js';
import type { Config } from '../../../src/config.js';
import type { Database } from '../../../src/db/client.js';
import { createLogger, type Logger } from '../../../src/observability/logger.js';
import type { Metrics } from '../../../src/observability/metrics.js';
import {
  type Operator,
  type OperatorOptions,
  operatorMetrics,
  startOperator,
} from '../../../src/operator.js';
import { testConfig } from '../../fixtures/config.js';
import { SIM_CREDENTIALS, type SimEndpoint, simEnv } from '../../fixtures/sim.js';

export { IAM_PROFILE, SIM_CREDENTIALS, type SimEndpoint } from '../../fixtures/sim.js';

export const BENCH_ENV = 'bench';

/** Configuration of an operator pointed at the simulator, as a user would export it. */
export function benchConfig(sim: SimEndpoint, overrides: Record<string, string | undefined> = {}): Config {
  return testConfig({
    MOLECULE_ENV: BENCH_ENV,
    ...simEnv(sim),
    PROVISION_SHARED_SECRET: 'provision-shared-secret-value-0001',
    GHCR_PULL_TOKEN: 'ghcr-pull-token-value-0002',
    // Resyncs are triggered by the benchmark, never by the clock.
    RESYNC_CRON: '0 0 1 1 *',
    ORPHAN_SCAN_CRON: '0 0 1 1 *',
    LOG_LEVEL: 'info',
    ...overrides,
  });
}

/**
 * Every client-side limit on a clock `factor` times faster: buckets refill `factor`× faster
 * (capacity unchanged), windows are `factor`× shorter (limit unchanged).
 */
export function scaledBuckets(factor: number): Record<string, LimitSpec> {
  return Object.fromEntries(
    Object.entries(DEFAULT_BUCKETS).map(([name, spec]: [string, LimitSpec]) => [
      name,
      'limit' in spec
        ? { limit: spec.limit, windowSeconds: spec.windowSeconds / factor }
        : { capacity: spec.capacity, refillPerSecond: spec.refillPerSecond * factor },
    ]),
  );
}

/** Buckets that never make anyone wait (for phases where the limiter is not what is measured). */
export function liftedBuckets(): Record<string, LimitSpec> {
  return Object.fromEntries(
    (Object.keys(DEFAULT_BUCKETS) as BucketName[]).map((b) => [b, { capacity: 1e9, refillPerSecond: 1e9 }]),
  );
}

/** A logger at info level that writes nowhere: the cost of building log lines is kept, the I/O is not. */
export function nullLogger(level = 'info'): Logger {
  return createLogger(
    { level },
    new Writable({
      write(_chunk, _enc, cb) {
        cb();
      },
    }),
  );
}

export interface BenchOperator {
  operator: Operator;
  ports: CloudPorts;
  metrics: Metrics;
  config: Config;
  stop(): Promise<void>;
}

/** The operator as `molecule-operator run` wires it, against the simulator, leader at once. */
export async function startBenchOperator(options: {
  config: Config;
  database: Database;
  buckets?: Record<string, LimitSpec>;
  maxAttempts?: number;
  manager?: Partial<NonNullable<OperatorOptions['manager']>>;
  logger?: Logger;
}): Promise<BenchOperator> {
  const metrics = operatorMetrics(false);
  const logger = options.logger ?? nullLogger();
  const cloud = {
    awsCredentials: SIM_CREDENTIALS,
    maxAttempts: options.maxAttempts ?? 3,
    limiter: new RateLimiter(options.buckets ?? options.config.RATE_LIMITS, metrics),
  };
  const ports = createCloudPorts(options.config, { ...cloud, metrics });
  const operator = await startOperator({
    config: options.config,
    database: options.database,
    metrics,
    logger,
    cloud,
    manager: {
      // Production lease timings (the defaults): renewals are part of the operator's cost.
      lease: { name: `bench-${process.pid}-${Math.random().toString(36).slice(2, 8)}` },
      resyncJitterMs: 0,
      ...options.manager,
    },
  });
  return { operator, ports, metrics, config: options.config, stop: () => operator.stop() };
}

/** Waits until this replica leads (the first resync is then queued). */
export async function waitForLeadership(op: Operator, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!op.manager.isLeader()) {
    if (Date.now() - start > timeoutMs) throw new Error('operator did not become leader');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Waits until this replica leads and the resync every new leader runs has been queued and
 * worked off (manager.resync joins a running resync: concurrent requests share one run).
 */
export async function settleLeader(op: Operator): Promise<void> {
  await waitForLeadership(op);
  await op.manager.resync('leader-elected');
  await op.manager.idle();
}
