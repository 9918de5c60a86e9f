import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { DesiredStateRepository } from '../db/desired.js';
import { OrphanLedger } from '../db/orphans.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { createAuthHook, type FailureLimiter } from './auth.js';
import type { RouteContext } from './context.js';
import { ApiError, BODY_LIMIT_BYTES, clientErrorHandler, toErrorResponse } from './errors.js';
import { registerAdminRoutes } from './routes/admin.js';
import { PUBLIC_PATHS, registerHealthRoutes } from './routes/health.js';
import { registerOrgRoutes } from './routes/orgs.js';
import { registerWorkspaceRoutes } from './routes/workspaces.js';

export interface ApiServerDeps {
  config: Config;
  database: Database;
  metrics: Metrics;
  logger: Logger;
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/**
 * The control-plane HTTP API (DESIGN §8), ready but not listening: the caller listens and
 * closes. Throws when CP_ADMIN_API_TOKEN is unset: the API never runs unauthenticated.
 */
export async function buildApiServer(deps: ApiServerDeps): Promise<FastifyInstance> {
  const token = deps.config.CP_ADMIN_API_TOKEN;
  if (!token) throw new Error('CP_ADMIN_API_TOKEN is required to serve the API');

  // Typed as the default instance: pino's Logger is a FastifyBaseLogger, but fastify's generics
  // do not see it as assignable, and callers only need the base logger interface.
  const app = Fastify({
    loggerInstance: deps.logger,
    bodyLimit: BODY_LIMIT_BYTES,
    clientErrorHandler,
    // Malformed URLs (bad percent-encoding) are rejected before routing; keep our error shape.
    frameworkErrors: (error, _request, reply) => sendError(reply as FastifyReply, error),
    // Requests still arriving on open connections during a graceful close are served as usual
    // (the database closes only after the server has); fastify's 503 would not be our error shape.
    return503OnClosing: false,
    // Behind a load balancer, the client's address is in X-Forwarded-For (TRUST_PROXY says whose).
    trustProxy: trustProxy(deps.config.TRUST_PROXY),
  }) as unknown as FastifyInstance;

  // Rate limits per client address (before the routes: it hooks each one as it is declared).
  // Probes are exempt: kubelet and load balancers must always get an answer.
  const isPublic = (request: FastifyRequest) => PUBLIC_PATHS.has(request.routeOptions.url ?? '');
  await app.register(rateLimit, {
    global: true,
    max: deps.config.API_RATE_LIMIT,
    timeWindow: 60_000,
    allowList: (request) => isPublic(request),
    errorResponseBuilder: (_request, context) =>
      new ApiError(
        429,
        'TooManyRequests',
        `rate limit exceeded (${context.max} requests a minute): retry in ${context.after}`,
      ),
  });
  const failed = app.createRateLimit({ max: deps.config.API_AUTH_FAILURE_LIMIT, timeWindow: 60_000 });
  const failures: FailureLimiter = {
    async blockedFor(request) {
      const seen = await failed(request, { increment: false });
      return !seen.isAllowed && seen.remaining === 0 ? Math.max(1, seen.ttlInSeconds) : undefined;
    },
    async record(request) {
      await failed(request);
    },
  };

  // JSON only: anything else is a 415. An empty body counts as no body, so body-less POSTs
  // (stop/start) work from clients that always send Content-Type: application/json.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if ((body as string).trim() === '') done(null, undefined);
    else parseJson(request, body as string, done);
  });

  app.setErrorHandler((error, _request, reply) => sendError(reply, error));
  app.setNotFoundHandler(() => {
    throw new ApiError(404, 'NotFound', 'no such route');
  });

  // Fail closed: every route needs the token unless it is one of the public probes.
  app.addHook('onRequest', createAuthHook(token, isPublic, failures));

  const methodsByUrl = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const methods = methodsByUrl.get(route.url) ?? new Set<string>();
    for (const m of [route.method].flat()) methods.add(m);
    methodsByUrl.set(route.url, methods);
  });

  const ctx: RouteContext = {
    config: deps.config,
    database: deps.database,
    desired: new DesiredStateRepository(deps.database.db),
    ledger: new OrphanLedger(deps.database.db),
    metrics: deps.metrics,
  };
  registerHealthRoutes(app, ctx);
  registerOrgRoutes(app, ctx);
  registerWorkspaceRoutes(app, ctx);
  registerAdminRoutes(app, ctx);
  registerMethodNotAllowed(app, methodsByUrl);

  await app.ready();
  return app;
}

/** TRUST_PROXY as fastify takes it: a number of hops becomes "trust the first n". */
function trustProxy(
  v: boolean | number | string,
): boolean | string | ((address: string, hop: number) => boolean) {
  return typeof v === 'number' ? (_address, hop) => hop < v : v;
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
      handler: async () => {
        throw new ApiError(405, 'MethodNotAllowed', `allowed methods: ${allow}`, undefined, { allow });
      },
    });
  }
}
