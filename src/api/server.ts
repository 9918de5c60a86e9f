import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import pkg from '../../package.json' with { type: 'json' };
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { DesiredStateRepository } from '../db/desired.js';
import { OrphanLedger } from '../db/orphans.js';
import { PinRepository } from '../db/pins.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { createAuthHook } from './auth.js';
import type { App, RouteContext } from './context.js';
import { ApiError, BODY_LIMIT_BYTES, clientErrorHandler, toErrorResponse } from './errors.js';
import { failureBudgetMessage, registerRateLimits } from './limits.js';
import { registerOpenApi, registerOpenApiRoute, useZodSchemas } from './openapi.js';
import { registerAdminRoutes } from './routes/admin.js';
import { PROBE_PATHS, registerHealthRoutes } from './routes/health.js';
import { registerOrgRoutes } from './routes/orgs.js';
import { registerPinRoutes } from './routes/pins.js';
import { registerRolloutRoutes } from './routes/rollouts.js';
import { registerWorkspaceRoutes } from './routes/workspaces.js';

export interface ApiServerDeps {
  config: Config;
  database: Database;
  metrics: Metrics;
  logger: Logger;
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/** Routes that need no bearer token: the probes and the API's own description. */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set([...PROBE_PATHS, '/openapi.json']);

/** Method and URL of every documented route of a server built here, in registration order. */
const routeTables = new WeakMap<FastifyInstance, { method: string; url: string }[]>();
export function routesOf(app: FastifyInstance): readonly { method: string; url: string }[] {
  return routeTables.get(app) ?? [];
}

/**
 * The control-plane HTTP API (DESIGN §8), ready but not listening: the caller listens and
 * closes. Throws when CP_ADMIN_API_TOKEN is unset: the API never runs unauthenticated.
 * Prometheus metrics are not served here but on METRICS_PORT (`startProbeServer`), out of
 * reach of API clients.
 */
export async function buildApiServer(deps: ApiServerDeps): Promise<FastifyInstance> {
  const token = deps.config.CP_ADMIN_API_TOKEN;
  if (!token) throw new Error('CP_ADMIN_API_TOKEN is required to serve the API');

  // Typed as the default instance: pino's Logger is a FastifyBaseLogger, but fastify's generics
  // do not see it as assignable, and callers only need the base logger interface.
  const app = Fastify({
    loggerInstance: deps.logger,
    bodyLimit: BODY_LIMIT_BYTES,
    // Who the client is, for the per-client rate limits: the peer, or X-Forwarded-For from a
    // proxy trusted by API_TRUST_PROXY.
    trustProxy: deps.config.API_TRUST_PROXY,
    clientErrorHandler,
    // Malformed URLs (bad percent-encoding) are rejected before routing; keep our error shape.
    frameworkErrors: (error, _request, reply) => sendError(reply as FastifyReply, error),
    // Requests still arriving on open connections during a graceful close are served as usual
    // (the database closes only after the server has); fastify's 503 would not be our error shape.
    return503OnClosing: false,
  }) as unknown as FastifyInstance;

  // JSON only: anything else is a 415. An empty body counts as no body, so body-less POSTs
  // (stop/start) work from clients that always send Content-Type: application/json.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if ((body as string).trim() === '') done(null, undefined);
    else parseJson(request, body as string, done);
  });

  app.setErrorHandler((error, _request, reply) => sendError(reply, error));
  useZodSchemas(app);

  const routeUrl = (request: { routeOptions: { url?: string } }) => request.routeOptions.url ?? '';
  app.setNotFoundHandler(() => {
    throw new ApiError(404, 'NotFound', 'no such route');
  });
  const { failures, requestBudget } = await registerRateLimits(app, deps.config, (request) =>
    PROBE_PATHS.has(routeUrl(request)),
  );
  // Before any route, so that it documents the routes registered after it.
  await registerOpenApi(app, {
    isPublic: (url) => PUBLIC_PATHS.has(url),
    isRateLimited: (url) => !PROBE_PATHS.has(url),
    version: pkg.version,
  });

  // A flood is refused first, before any other work; then, failing closed, every route needs
  // the token unless it is public.
  if (requestBudget) app.addHook('onRequest', requestBudget);
  app.addHook(
    'onRequest',
    createAuthHook(
      token,
      (request) => PUBLIC_PATHS.has(routeUrl(request)),
      failures,
      failureBudgetMessage(deps.config),
    ),
  );

  const methodsByUrl = new Map<string, Set<string>>();
  const routes: { method: string; url: string }[] = [];
  routeTables.set(app, routes);
  app.addHook('onRoute', (route) => {
    const methods = methodsByUrl.get(route.url) ?? new Set<string>();
    for (const m of [route.method].flat()) {
      methods.add(m);
      if (m !== 'HEAD' && !route.schema?.hide) routes.push({ method: m, url: route.url });
    }
    methodsByUrl.set(route.url, methods);
  });

  const ctx: RouteContext = {
    config: deps.config,
    database: deps.database,
    desired: new DesiredStateRepository(deps.database.db),
    ledger: new OrphanLedger(deps.database.db),
    pins: new PinRepository(deps.database.db),
    metrics: deps.metrics,
  };
  const api = app.withTypeProvider() as unknown as App;
  registerHealthRoutes(api, ctx);
  registerOpenApiRoute(app);
  registerOrgRoutes(api, ctx);
  registerWorkspaceRoutes(api, ctx);
  registerAdminRoutes(api, ctx);
  registerPinRoutes(api, ctx);
  registerRolloutRoutes(api, ctx);
  registerMethodNotAllowed(app, methodsByUrl);

  await app.ready();
  return app;
}

function sendError(reply: FastifyReply, error: unknown): FastifyReply {
  const { status, body, headers } = toErrorResponse(error);
  if (status >= 500) reply.log.error({ err: error }, 'request failed');
  else reply.log.info({ code: body.error.code, statusCode: status }, 'request rejected');
  if (headers) reply.headers(headers);
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}

/** Fastify answers 404 for a known path with an unknown method; say 405 and list what is allowed. */
function registerMethodNotAllowed(app: FastifyInstance, methodsByUrl: Map<string, Set<string>>): void {
  for (const [url, methods] of [...methodsByUrl]) {
    const allowed = METHODS.filter((m) => methods.has(m));
    const missing = METHODS.filter((m) => !methods.has(m));
    if (missing.length === 0) continue;
    const allow = allowed.join(', ');
    app.route({
      method: [...missing],
      url,
      schema: { hide: true },
      handler: async () => {
        throw new ApiError(405, 'MethodNotAllowed', `allowed methods: ${allow}`, undefined, { allow });
      },
    });
  }
}
