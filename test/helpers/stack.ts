import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApiServer } from '../../src/api/server.js';
import { createCloudPorts } from '../../src/cloud/index.js';
import type { CloudPorts } from '../../src/cloud/ports.js';
import { RateLimiter } from '../../src/cloud/ratelimit.js';
import type { Config } from '../../src/config.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import type { Metrics } from '../../src/observability/metrics.js';
import { type Operator, type OperatorOptions, operatorMetrics, startOperator } from '../../src/operator.js';
import type { Clock } from '../../src/runtime/clock.js';
import { type SimOptions, type Simulator, startSimulator } from '../../src/sim/index.js';
import { testConfig } from '../fixtures/config.js';
import { SIM_CREDENTIALS, simEnv } from '../fixtures/sim.js';
import { callApi } from './api.js';
import { createTestDatabase, type TestDatabase } from './db.js';

// Shared with the vitest-free bench and chaos libraries; re-exported for the tests.
export { IAM_PROFILE, SIM_CREDENTIALS, simEnv } from '../fixtures/sim.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface Stack {
  sim: Simulator;
  tdb: TestDatabase;
  config: Config;
  metrics: Metrics;
  ports: CloudPorts;
  /** How the operator's cloud clients are built (simulator credentials, lifted buckets). */
  cloud: NonNullable<OperatorOptions['cloud']>;
  logger: Logger;
  app: FastifyInstance;
  apiUrl: string;
  operator: Operator | undefined;
  /** Calls the API as an operator would, with the admin token. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  startOperator(): Promise<Operator>;
  stopOperator(): Promise<void>;
  close(): Promise<void>;
}

export interface StackOptions {
  /** Variables over the test defaults (a function of the simulator for values it decides, like the canary network). */
  env?: Record<string, string | undefined> | ((sim: Simulator) => Record<string, string | undefined>);
  sim?: SimOptions;
  /** Start the controllers right away (default true). */
  operator?: boolean;
  /** How long the operator caches pins (default 0: read on every reconcile). */
  pinsTtlMs?: number;
  /** The operator's clock (default the system's). */
  clock?: Clock;
}

/**
 * The whole product in one process for tests: simulator, a database of the test file's own,
 * the HTTP API on an ephemeral port, and the controllers with test-sized timings.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const sim = await startSimulator({ port: 0, profile: 'fast', ...options.sim });
  const tdb = await createTestDatabase();
  const config = testConfig({
    ...simEnv(sim),
    PROVISION_SHARED_SECRET: 'provision-shared-secret-value-0001',
    GHCR_PULL_TOKEN: 'ghcr-pull-token-value-0002',
    CREATE_GRACE: '3s',
    RESYNC_CRON: '0 0 1 1 *',
    ORPHAN_SCAN_CRON: '0 0 1 1 *',
    ...(typeof options.env === 'function' ? options.env(sim) : options.env),
  });
  const metrics = operatorMetrics(false);
  const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const cloud = {
    awsCredentials: SIM_CREDENTIALS,
    maxAttempts: 3,
    // Buckets stay on, scaled up: tests exercise the limiter without waiting on it.
    limiter: new RateLimiter(
      Object.fromEntries(
        [
          'ec2-run-instances',
          'ec2-start-instances',
          'ec2-terminate-instances',
          'ec2-tags',
          'ec2-mutating',
          'ec2-resource-intensive',
          'ec2-non-mutating',
          'secretsmanager',
          'tagging',
          'ssm-send-command',
          'ssm-read',
          'cloudflare',
        ].map((b) => [b, { capacity: 1000, refillPerSecond: 1000 }]),
      ),
      metrics,
    ),
  };
  const ports = createCloudPorts(config, { ...cloud, metrics });
  const app = await buildApiServer({ config, database: tdb.database, metrics, logger });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const apiUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  const stack: Stack = {
    sim,
    tdb,
    config,
    metrics,
    ports,
    cloud,
    logger,
    app,
    apiUrl,
    operator: undefined,
    async api(method, path, body) {
      const { status, text } = await callApi(apiUrl, ADMIN_TOKEN, method, path, body);
      return { status, body: text ? JSON.parse(text) : undefined };
    },
    async startOperator() {
      stack.operator = await startOperator({
        config,
        database: tdb.database,
        metrics,
        logger,
        cloud,
        pinsTtlMs: options.pinsTtlMs ?? 0,
        ...(options.clock ? { clock: options.clock } : {}),
        manager: {
          pollIntervalMs: 50,
          lease: {
            name: `lease-${Math.random()}`,
            leaseDurationMs: 3000,
            renewDeadlineMs: 2000,
            retryPeriodMs: 100,
          },
          backoff: { baseDelayMs: 50, maxDelayMs: 1000 },
          resyncJitterMs: 0,
        },
      });
      return stack.operator;
    },
    async stopOperator() {
      await stack.operator?.stop();
      stack.operator = undefined;
    },
    async close() {
      await stack.stopOperator();
      await app.close();
      await tdb.drop();
      await sim.close();
    },
  };
  if (options.operator !== false) await stack.startOperator();
  return stack;
}

/** Polls until `check` returns a truthy value (or stops throwing), with a deadline. */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs = 15_000,
  intervalMs = 25,
): Promise<NonNullable<T>> {
  const start = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
      last = new Error('condition was falsy');
    } catch (e) {
      last = e;
    }
    if (Date.now() - start > timeoutMs) throw last;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
