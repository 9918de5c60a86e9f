import { loadConfig } from '../config.js';
import { createLogger } from '../observability/logger.js';
import { startOperator } from '../operator.js';
import { parseFlags } from './args.js';
import { describeDatabase, openConfiguredDatabase } from './database.js';
import { waitForShutdownSignal } from './signals.js';
import type { CliContext } from './types.js';

export async function run(argv: string[], ctx: CliContext): Promise<number> {
  const flags = parseFlags(argv, { migrate: { type: 'boolean' } });
  const config = loadConfig(ctx.env);
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'molecule-operator' });
  const shutdown = waitForShutdownSignal();
  const database = await openConfiguredDatabase(config);
  try {
    if (flags.migrate) {
      await database.migrate();
      logger.info({ database: describeDatabase(config) }, 'migrations applied');
    }
    const operator = await startOperator({ config, database, logger });
    const probes = await operator.serveProbes(config.METRICS_PORT);
    logger.info(
      { metricsPort: probes.port, database: describeDatabase(config), env: config.MOLECULE_ENV },
      'operator started',
    );
    const signal = await shutdown.signal;
    logger.info({ signal }, 'shutting down');
    await operator.stop();
    await probes.close();
    logger.info('stopped');
    return 0;
  } finally {
    await database.close();
  }
}
