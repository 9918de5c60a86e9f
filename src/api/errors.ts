import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { OrgDeletingError, SlugTakenError } from '../db/desired.js';

export type ErrorCode =
  | 'BadRequest'
  | 'ValidationFailed'
  | 'InvalidJson'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'SlugTaken'
  | 'SlugBeingReleased'
  | 'OrgDeleting'
  | 'WorkspaceDeleting'
  | 'TargetChangeRequiresRecreate'
  | 'PayloadTooLarge'
  | 'UnsupportedMediaType'
  | 'TooManyRequests'
  | 'Internal';

export interface FieldError {
  /** Where the problem is: `body.slug`, `query.limit`, `params.id`; `body` for the body as a whole. */
  path: string;
  message: string;
}

export interface ErrorBody {
  error: { code: ErrorCode | string; message: string; details?: FieldError[] };
}

/** An error the API answers as-is: status, stable code, a message meant for the caller. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: ErrorCode,
    message: string,
    readonly details?: FieldError[],
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Largest request body accepted: desired-state requests are a few hundred bytes. */
export const BODY_LIMIT_BYTES = 16 * 1024;

export const notFound = (what: string) => new ApiError(404, 'NotFound', `${what} not found`);

// Fastify's own errors, by code, in our vocabulary. Their messages are written for clients.
const FASTIFY_ERRORS: Record<string, { status: number; code: ErrorCode; message?: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: {
    status: 400,
    code: 'InvalidJson',
    message: 'request body is not valid JSON',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'InvalidJson', message: 'request body is empty' },
  FST_ERR_CTP_BODY_TOO_LARGE: {
    status: 413,
    code: 'PayloadTooLarge',
    message: `request body is larger than ${BODY_LIMIT_BYTES} bytes`,
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'UnsupportedMediaType',
    message: 'request bodies must be sent as Content-Type: application/json',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'BadRequest' },
};

const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  413: 'PayloadTooLarge',
  415: 'UnsupportedMediaType',
  429: 'TooManyRequests',
};

/**
 * Maps anything thrown while serving a request to a status and JSON body. Domain errors from
 * the repository become their API codes; any other error is a 500 that says nothing about
 * internals (the caller logs it).
 */
export function toErrorResponse(error: unknown): {
  status: number;
  body: ErrorBody;
  headers?: Record<string, string>;
} {
  if (error instanceof ApiError) {
    const body: ErrorBody = { error: { code: error.code, message: error.message } };
    if (error.details) body.error.details = error.details;
    return { status: error.statusCode, body, ...(error.headers ? { headers: error.headers } : {}) };
  }
  if (error instanceof SlugTakenError) {
    return { status: 409, body: { error: { code: 'SlugTaken', message: error.message } } };
  }
  if (error instanceof OrgDeletingError) {
    return { status: 409, body: { error: { code: 'OrgDeleting', message: 'the org is being deleted' } } };
  }
  const e = error as { code?: unknown; statusCode?: unknown; message?: unknown };
  const known = typeof e.code === 'string' ? FASTIFY_ERRORS[e.code] : undefined;
  if (known) {
    return {
      status: known.status,
      body: { error: { code: known.code, message: known.message ?? String(e.message) } },
    };
  }
  // Other fastify client errors (bad URL encoding, …) carry a 4xx statusCode and a client-facing message.
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const code = CODE_BY_STATUS[e.statusCode] ?? 'BadRequest';
    return { status: e.statusCode, body: { error: { code, message: String(e.message) } } };
  }
  return { status: 500, body: { error: { code: 'Internal', message: 'internal error' } } };
}

/**
 * Requests Node's HTTP parser rejects never reach fastify's error handler; answer them in the
 * same JSON shape (mirrors fastify's default client error handler).
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const status =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const body = JSON.stringify({
    error: {
      code: status === 400 ? 'BadRequest' : (STATUS_CODES[status] ?? 'Error').replace(/\s/g, ''),
      message: 'malformed HTTP request',
    },
  });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Content-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
