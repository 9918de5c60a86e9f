import { loadConfig } from '../config.js';
import { createLogger } from '../observability/logger.js';
import { createOperator } from '../operator.js';
import { listening, logFormat, parseFlags } from './args.js';
import { describeDatabase, openForCommand } from './database.js';
import { waitForShutdownSignal } from './signals.js';
import type { CliContext } from './types.js';

export async function run(argv: string[], ctx: CliContext): Promise<number> {
  const flags = parseFlags(argv, { migrate: { type: 'boolean' } });
  const config = loadConfig(ctx.env);
  const logger = createLogger({
    level: config.LOG_LEVEL,
    name: 'molecule-operator',
    format: logFormat(config),
  });
  const shutdown = waitForShutdownSignal();
  const database = await openForCommand(config, { migrate: !!flags.migrate });
  try {
    if (flags.migrate) logger.info({ database: describeDatabase(config) }, 'migrations applied');
    const operator = createOperator({ config, database, logger });
    // Probes first: while the targets are being checked /healthz answers and /readyz says why not yet.
    const probes = await listening('METRICS_PORT', config.METRICS_PORT, () =>
      operator.serveProbes(config.METRICS_PORT),
    );
    try {
      const started = operator.start();
      const first = await Promise.race([started.then(() => 'started' as const), shutdown.signal]);
      if (first === 'started')
        logger.info(
          { metricsPort: probes.port, database: describeDatabase(config), env: config.MOLECULE_ENV },
          'operator started',
        );
      const signal = first === 'started' ? await shutdown.signal : first;
      logger.info({ signal }, 'shutting down');
      await operator.stop();
      await started.catch(() => {});
      logger.info('stopped');
      return 0;
    } finally {
      await probes.close();
    }
  } finally {
    await database.close();
  }
}
