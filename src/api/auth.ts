import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

const BEARER = /^Bearer +(\S+) *$/i;
const REALM = 'realm="molecule-operator"';

/** Looks up (without counting) and counts a client's failed authentications. */
export interface FailureLimiter {
  /** Seconds until the client may try again, or undefined while it is under its budget. */
  blockedFor(request: FastifyRequest): Promise<number | undefined>;
  record(request: FastifyRequest): Promise<void>;
}

/**
 * Bearer-token check for every route that is not public (RFC 6750 §3):
 *
 * - no `Authorization` header, or another scheme → 401 with `WWW-Authenticate: Bearer realm=…`
 *   and no error code (the client did not try);
 * - a wrong bearer token → 401 with `error="invalid_token"`;
 * - a client with too many failed attempts in the window → 429 with `Retry-After`, before its
 *   token is even compared (so guessing gains nothing).
 *
 * 403 is kept for a valid token that lacks a right (there is one token and it has every right).
 * Tokens are compared as SHA-256 digests with `timingSafeEqual`: equal-length inputs, so
 * neither the token's content nor its length leaks through timing.
 */
export function createAuthHook(
  token: string,
  isPublic: (request: FastifyRequest) => boolean,
  failures: FailureLimiter,
) {
  const expected = digest(token);
  const refuse = async (request: FastifyRequest, err: ApiError) => {
    await failures.record(request);
    throw err;
  };
  return async (request: FastifyRequest): Promise<void> => {
    if (isPublic(request)) return;
    const retryAfter = await failures.blockedFor(request);
    if (retryAfter !== undefined) {
      throw new ApiError(
        429,
        'TooManyRequests',
        `too many failed authentications from this client: retry in ${retryAfter} s`,
        undefined,
        { 'retry-after': String(retryAfter) },
      );
    }
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? BEARER.exec(header) : null;
    if (!match) {
      await refuse(
        request,
        new ApiError(
          401,
          'Unauthorized',
          'missing Authorization header: expected "Bearer <CP_ADMIN_API_TOKEN>"',
          undefined,
          { 'www-authenticate': `Bearer ${REALM}` },
        ),
      );
      return;
    }
    const sent = match[1]!;
    if (!timingSafeEqual(digest(sent), expected)) {
      await refuse(
        request,
        new ApiError(401, 'Unauthorized', 'the bearer token is not valid', undefined, {
          'www-authenticate': `Bearer ${REALM}, error="invalid_token", error_description="the bearer token is not valid"`,
        }),
      );
    }
  };
}
