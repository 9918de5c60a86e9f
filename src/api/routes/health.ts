import type { DesiredStateRepository } from '../../db/desired.js';
import type { Metrics } from '../../observability/metrics.js';
import type { App, RouteContext } from '../context.js';

/** A readiness probe must answer quickly even when the database hangs. */
const PING_TIMEOUT_MS = 2_000;

/** Public endpoints: liveness and readiness (database reachable). */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

/**
 * Liveness and readiness. Prometheus metrics are not served here, on the port API clients
 * reach, but on METRICS_PORT by the probe server (src/observability/server.ts).
 */
export function registerHealthRoutes(app: App, { database }: RouteContext): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (request, reply) => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        database.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('database ping timed out')), PING_TIMEOUT_MS);
        }),
      ]);
      return { status: 'ok', checks: { database: 'ok' } };
    } catch (err) {
      // The reason goes to the log; the unauthenticated probe only says which check failed.
      request.log.warn({ err }, 'readiness check failed');
      return reply.code(503).send({ status: 'unavailable', checks: { database: 'unreachable' } });
    } finally {
      clearTimeout(timer);
    }
  });
}

/** Sets molecule_desired_objects{kind=org|workspace, state=total|ready|deleting} from the database. */
export async function refreshDesiredObjects(
  metrics: Metrics,
  desired: DesiredStateRepository,
): Promise<void> {
  const [counts, ready] = await Promise.all([desired.counts(), desired.readyCounts()]);
  for (const kind of ['org', 'workspace'] as const) {
    const c = kind === 'org' ? counts.orgs : counts.workspaces;
    metrics.desiredObjects.labels(kind, 'total').set(c.total);
    metrics.desiredObjects.labels(kind, 'deleting').set(c.deleting);
    metrics.desiredObjects.labels(kind, 'ready').set(kind === 'org' ? ready.orgs : ready.workspaces);
  }
}
