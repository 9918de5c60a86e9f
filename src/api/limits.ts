import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify';
import type { Config } from '../config.js';
import { ApiError } from './errors.js';

/** What a failed-authentication budget says about a client right now. */
export interface FailureBudget {
  /** Counts one failed authentication; true when it was over the budget. */
  fail(request: FastifyRequest): Promise<{ over: boolean; retryAfterSeconds: number }>;
  /** Whether the client has used its budget up (without counting anything). */
  exhausted(request: FastifyRequest): Promise<{ over: boolean; retryAfterSeconds: number }>;
}

export const tooManyRequests = (message: string, retryAfterSeconds: number) =>
  new ApiError(429, 'TooManyRequests', message, undefined, {
    'retry-after': String(Math.max(1, retryAfterSeconds)),
  });

/** A window for people: `1 min`, `30 s`, `2 h`. */
const span = (ms: number) =>
  ms % 3_600_000 === 0
    ? `${ms / 3_600_000} h`
    : ms % 60_000 === 0
      ? `${ms / 60_000} min`
      : ms % 1000 === 0
        ? `${ms / 1000} s`
        : `${ms} ms`;

/**
 * Per-client request budgets (@fastify/rate-limit, in memory per process; the client is the
 * peer address, or X-Forwarded-For from a proxy trusted by API_TRUST_PROXY):
 *
 * - every route but the probes: API_RATE_LIMIT requests per API_RATE_LIMIT_WINDOW
 *   (0 turns it off); over it, 429 with Retry-After;
 * - failed authentications: API_AUTH_FAILURE_LIMIT per API_AUTH_FAILURE_WINDOW (0 turns it off).
 *   A client that used it up gets 429 for every authenticated route until its window ends,
 *   even with the right token, so the budget also bounds how fast tokens can be guessed.
 *
 * The request budget is an onRequest hook for the caller to add before authentication, so a
 * flood is refused before any other work, on every path (unknown ones too).
 */
export async function registerRateLimits(
  app: FastifyInstance,
  config: Pick<
    Config,
    'API_RATE_LIMIT' | 'API_RATE_LIMIT_WINDOW' | 'API_AUTH_FAILURE_LIMIT' | 'API_AUTH_FAILURE_WINDOW'
  >,
  isExempt: (request: FastifyRequest) => boolean,
): Promise<{ failures?: FailureBudget; requestBudget?: onRequestHookHandler }> {
  const requests = config.API_RATE_LIMIT;
  await app.register(rateLimit, {
    global: false,
    max: Math.max(1, requests),
    timeWindow: config.API_RATE_LIMIT_WINDOW,
    allowList: (request) => isExempt(request),
    errorResponseBuilder: (_request, context) =>
      tooManyRequests(
        `too many requests: at most ${context.max} per ${span(config.API_RATE_LIMIT_WINDOW)} from one client; retry in ${context.after}`,
        Math.ceil(context.ttl / 1000),
      ),
  });
  const requestBudget = requests > 0 ? app.rateLimit() : undefined;

  const max = config.API_AUTH_FAILURE_LIMIT;
  if (max === 0) return requestBudget ? { requestBudget } : {};
  const check = app.createRateLimit({
    max,
    timeWindow: config.API_AUTH_FAILURE_WINDOW,
    allowList: () => false,
  });
  const failures: FailureBudget = {
    async fail(request) {
      const r = await check(request);
      return { over: !r.isAllowed && r.isExceeded, retryAfterSeconds: r.isAllowed ? 0 : r.ttlInSeconds };
    },
    async exhausted(request) {
      const r = await check(request, { increment: false });
      return { over: !r.isAllowed && r.remaining === 0, retryAfterSeconds: r.isAllowed ? 0 : r.ttlInSeconds };
    },
  };
  return requestBudget ? { failures, requestBudget } : { failures };
}

export const failureBudgetMessage = (
  config: Pick<Config, 'API_AUTH_FAILURE_LIMIT' | 'API_AUTH_FAILURE_WINDOW'>,
) =>
  `too many failed authentications: at most ${config.API_AUTH_FAILURE_LIMIT} per ${span(config.API_AUTH_FAILURE_WINDOW)} from one client`;
