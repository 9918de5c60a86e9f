import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';
import { type FailureBudget, tooManyRequests } from './limits.js';

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

const REALM = 'Bearer realm="molecule-operator"';
/** `Bearer <b64token>` (RFC 6750 §2.1), with the leniency real clients need: any case, extra spaces. */
const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;
/** The scheme is Bearer and something follows it: a token was sent, well-formed or not. */
const BEARER_WITH_CREDENTIALS = /^Bearer\s+\S/i;

/**
 * Bearer-token check for every route that is not public (RFC 6750 §3):
 *
 * - no credentials (no `Authorization` header, another scheme, `Bearer` alone) → 401
 *   `Unauthorized` with `WWW-Authenticate: Bearer realm="molecule-operator"`;
 * - a bearer token that is not the one configured (or not a token at all) → 401 with
 *   `error="invalid_token"` in the challenge;
 * - a client that used up its failed-authentication budget → 429 with Retry-After, whatever
 *   it sends, until its window ends.
 *
 * 403 stays for a valid token that lacks a right (there is one token today, holding all rights).
 * Tokens are compared as SHA-256 digests with `timingSafeEqual`: equal-length inputs, so
 * neither the token's content nor its length leaks through timing.
 */
export function createAuthHook(
  token: string,
  isPublic: (request: FastifyRequest) => boolean,
  failures?: FailureBudget,
  failureMessage = 'too many failed authentications',
) {
  const expected = digest(token);
  return async (request: FastifyRequest): Promise<void> => {
    if (isPublic(request)) return;
    const header = request.headers.authorization;
    const sent = typeof header === 'string' && BEARER_WITH_CREDENTIALS.test(header);
    const match = sent ? BEARER.exec(header) : null;
    const valid = timingSafeEqual(digest(match?.[1] ?? ''), expected);
    if (valid) {
      const budget = await failures?.exhausted(request);
      if (budget?.over) throw tooManyRequests(`${failureMessage}; retry later`, budget.retryAfterSeconds);
      return;
    }
    const budget = await failures?.fail(request);
    if (budget?.over) throw tooManyRequests(`${failureMessage}; retry later`, budget.retryAfterSeconds);
    if (!sent) {
      throw new ApiError(
        401,
        'Unauthorized',
        'missing Authorization header: expected "Bearer <CP_ADMIN_API_TOKEN>"',
        undefined,
        { 'www-authenticate': REALM },
      );
    }
    throw new ApiError(401, 'Unauthorized', 'the bearer token is not valid', undefined, {
      'www-authenticate': `${REALM}, error="invalid_token"`,
    });
  };
}
