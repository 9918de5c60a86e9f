import type { DesiredStateRepository } from '../../db/desired.js';
import type { Metrics } from '../../observability/metrics.js';
import type { App, RouteContext } from '../context.js';
import { Health, Readiness } from '../responses.js';

/** A readiness probe must answer quickly even when the database hangs. */
const PING_TIMEOUT_MS = 2_000;

/** Probes: public, and never rate limited (a flood must not fail the readiness of every replica). */
export const PROBE_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

/**
 * Liveness and readiness (database reachable). Prometheus metrics are not served here, on the
 * port API clients reach, but on METRICS_PORT by the probe server (src/observability/server.ts).
 */
export function registerHealthRoutes(app: App, { database }: RouteContext): void {
  const probe = { tags: ['health'] };
  app.get(
    '/healthz',
    { schema: { ...probe, operationId: 'getHealth', summary: 'Liveness', response: { 200: Health } } },
    async () => ({
      status: 'ok' as const,
    }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        ...probe,
        operationId: 'getReadiness',
        summary: 'Readiness: the database answers',
        response: { 200: Readiness, 503: Readiness.meta({ description: 'The database does not answer' }) },
      },
    },
    async (request, reply) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          database.ping(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('database ping timed out')), PING_TIMEOUT_MS);
          }),
        ]);
        return { status: 'ok' as const, checks: { database: 'ok' as const } };
      } catch (err) {
        // The reason goes to the log; the unauthenticated probe only says which check failed.
        request.log.warn({ err }, 'readiness check failed');
        return reply
          .code(503)
          .send({ status: 'unavailable' as const, checks: { database: 'unreachable' as const } });
      } finally {
        clearTimeout(timer);
      }
    },
  );
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
