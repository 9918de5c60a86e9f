import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import type { DesiredStateRepository } from '../db/desired.js';
import type { OrphanLedger } from '../db/orphans.js';
import type { PinRepository } from '../db/pins.js';
import type { Metrics } from '../observability/metrics.js';
import type { ZodTypeProvider } from './openapi.js';

/** What route modules get: repositories over the one database handle, and the metrics registry. */
export interface RouteContext {
  config: Config;
  database: Database;
  desired: DesiredStateRepository;
  ledger: OrphanLedger;
  pins: PinRepository;
  metrics: Metrics;
}

/** The server as routes see it: request parts typed by their zod schemas. */
export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;
