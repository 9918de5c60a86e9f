import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { refreshDesiredObjects } from '../api/routes/health.js';
import type { Database } from '../db/client.js';
import { DesiredStateRepository } from '../db/desired.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export interface ProbeDeps {
  database: Database;
  metrics: Metrics;
  logger: Logger;
  /** Extra readiness facts (leader, listener, disabled controllers). `ready: false` fails the probe. */
  readiness: () => { ready: boolean; details: Record<string, unknown> };
}

const PING_TIMEOUT_MS = 2_000;

/**
 * `/healthz`, `/readyz` and `/metrics` for `molecule-operator run` on METRICS_PORT. Served by
 * leader and standbys alike, with no authentication (no secrets are exposed).
 */
export interface ProbeServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

export async function startProbeServer(
  deps: ProbeDeps,
  port: number,
  host = '0.0.0.0',
): Promise<ProbeServer> {
  const desired = new DesiredStateRepository(deps.database.db);
  const server = createServer(async (req, res) => {
    const send = (status: number, body: unknown, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET')
        return send(405, { error: { code: 'MethodNotAllowed', message: 'only GET' } });
      if (path === '/healthz') return send(200, { status: 'ok' });
      if (path === '/readyz') {
        let database = 'ok';
        try {
          await withTimeout(deps.database.ping(), PING_TIMEOUT_MS);
        } catch {
          database = 'unreachable';
        }
        const r = deps.readiness();
        const ok = database === 'ok' && r.ready;
        return send(ok ? 200 : 503, {
          status: ok ? 'ok' : 'unavailable',
          checks: { database, ...r.details },
        });
      }
      if (path === '/metrics') {
        await refreshDesiredObjects(deps.metrics, desired).catch((err) =>
          deps.logger.warn({ err: String(err) }, 'cannot refresh desired object counts'),
        );
        return send(200, await deps.metrics.registry.metrics(), deps.metrics.registry.contentType);
      }
      return send(404, { error: { code: 'NotFound', message: 'no such route' } });
    } catch (err) {
      deps.logger.error({ err: String(err) }, 'probe request failed');
      send(500, { error: { code: 'Internal', message: 'internal error' } });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out')), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
