import { buildApiServer } from '../api/server.js';
import { loadConfig } from '../config.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import { startProbeServer } from '../observability/server.js';
import { listening, logFormat, parseFlags } from './args.js';
import { describeDatabase, openForCommand } from './database.js';
import { waitForShutdownSignal } from './signals.js';
import type { CliContext } from './types.js';

export async function run(argv: string[], ctx: CliContext): Promise<number> {
  const flags = parseFlags(argv, { migrate: { type: 'boolean' } });
  const config = loadConfig(ctx.env, { required: ['CP_ADMIN_API_TOKEN'] });
  const logger = createLogger({
    level: config.LOG_LEVEL,
    name: 'molecule-operator.api',
    format: logFormat(config),
  });
  // Listen for signals before the slow start-up so an early Ctrl-C still shuts down cleanly.
  const shutdown = waitForShutdownSignal();
  const database = await openForCommand(config, { migrate: !!flags.migrate });
  try {
    if (flags.migrate) logger.info({ database: describeDatabase(config) }, 'migrations applied');
    const metrics = createMetrics();
    const app = await buildApiServer({ config, database, metrics, logger });
    await listening('PORT', config.PORT, () => app.listen({ port: config.PORT, host: '0.0.0.0' }));
    // Metrics for monitoring only, on their own port: API clients reach PORT alone.
    const probes = await listening('METRICS_PORT', config.METRICS_PORT, () =>
      startProbeServer(
        { database, metrics, logger, readiness: () => ({ ready: true, details: {} }) },
        config.METRICS_PORT,
      ),
    ).catch(async (e) => {
      await app.close();
      throw e;
    });
    const signal = await shutdown.signal;
    logger.info({ signal }, 'shutting down');
    await app.close();
    await probes.close();
    logger.info('stopped');
    return 0;
  } finally {
    await database.close();
  }
}
