import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;
const CHALLENGE = { 'www-authenticate': 'Bearer realm="molecule-operator"' };

/**
 * Bearer-token check for every route that is not public.
 *
 * - no `Authorization` header, or not `Bearer <token>` → 401 `Unauthorized` (with a challenge);
 * - a well-formed but wrong token → 403 `Forbidden`.
 *
 * Tokens are compared as SHA-256 digests with `timingSafeEqual`: equal-length inputs, so
 * neither the token's content nor its length leaks through timing.
 */
export function createAuthHook(token: string, isPublic: (request: FastifyRequest) => boolean) {
  const expected = digest(token);
  return async (request: FastifyRequest): Promise<void> => {
    if (isPublic(request)) return;
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? BEARER.exec(header) : null;
    if (!match) {
      throw new ApiError(
        401,
        'Unauthorized',
        'missing or malformed Authorization header: expected "Bearer <CP_ADMIN_API_TOKEN>"',
        undefined,
        CHALLENGE,
      );
    }
    if (!timingSafeEqual(digest(match[1]!), expected)) {
      throw new ApiError(403, 'Forbidden', 'the bearer token is not valid');
    }
  };
}
