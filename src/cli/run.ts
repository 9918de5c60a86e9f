import { createOrphanScanner, type OrphanScanner } from '../../controllers/orphan.js';
import { loadConfig } from '../config.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import { startProbeServer } from '../observability/server.js';
import { startOperator } from '../operator.js';
import { parseFlags } from './args.js';
import { describeDatabase, openConfiguredDatabase } from './database.js';
import { waitForShutdownSignal } from './signals.js';
import type { Command } from './types.js';

export const runCommand: Command = {
  summary: 'run the controllers (leader-elected), with /metrics /healthz /readyz on METRICS_PORT',
  usage: [
    'molecule-operator run [--migrate]',
    '',
    'Reconciles desired orgs and workspaces against AWS and Cloudflare. Several replicas may run:',
    'one leads through the Postgres lease, the others serve probes and metrics only.',
    'Stops on SIGINT/SIGTERM: finishes in-flight reconciles and releases the lease.',
    '',
    '  --migrate   apply pending migrations first',
  ].join('\n'),
  async run(argv, ctx) {
    const flags = parseFlags(argv, { migrate: { type: 'boolean' } });
    const config = loadConfig(ctx.env);
    const logger = createLogger({ level: config.LOG_LEVEL, name: 'molecule-operator' });
    const shutdown = waitForShutdownSignal();
    const metrics = createMetrics();
    const database = await openConfiguredDatabase(config);
    try {
      if (flags.migrate) {
        await database.migrate();
        logger.info({ database: describeDatabase(config) }, 'migrations applied');
      }
      let scanner: OrphanScanner | undefined;
      const operator = await startOperator({
        config,
        database,
        metrics,
        logger,
        manager: {
          lease: {
            leaseDurationMs: config.LEASE_DURATION,
            renewDeadlineMs: config.LEASE_RENEW_DEADLINE,
            retryPeriodMs: config.LEASE_RETRY_PERIOD,
          },
        },
        jobs: (ports, assertLeader) => {
          scanner = createOrphanScanner({ config, database, ports, metrics, logger, assertLeader });
          return [scanner.job()];
        },
      });
      const probes = await startProbeServer(
        {
          database,
          metrics,
          logger,
          readiness: () => {
            const r = operator.manager.readiness();
            return {
              ready: r.listening,
              details: {
                listener: r.listening ? 'ok' : 'reconnecting',
                leader: r.leader,
                orphanDeletion: scanner?.last()?.blockedByFraction
                  ? 'blocked: orphans exceed ORPHAN_MAX_FRACTION'
                  : 'ok',
                controllers: Object.fromEntries(
                  operator.set.controllers.map((c) => [
                    c.name,
                    operator.set.disabled[c.name] ? `disabled: ${operator.set.disabled[c.name]}` : 'enabled',
                  ]),
                ),
              },
            };
          },
        },
        config.METRICS_PORT,
      );
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
  },
};
