import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { buildApiServer } from '../../src/api/server.js';
import { loadConfig } from '../../src/config.js';
import type { Database } from '../../src/db/client.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';

export const TEST_TOKEN = 'test-admin-token-7f3a9c1e5b';
export const AUTH = { authorization: `Bearer ${TEST_TOKEN}` };

export interface ApiResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON when the response is JSON, else the raw text. */
  // biome-ignore lint/suspicious/noExplicitAny: tests assert on response fields directly
  body: any;
}

export interface TestApi {
  app: FastifyInstance;
  url: string;
  /** Everything the server logged, one JSON line per entry. */
  logs: string[];
  /** JSON request with the admin token unless headers override it; `raw` sends a body string as-is. */
  request(
    method: string,
    path: string,
    options?: { json?: unknown; raw?: string | Uint8Array; headers?: Record<string, string> },
  ): Promise<ApiResponse>;
  close(): Promise<void>;
}

/**
 * A real API server on an ephemeral port over `database`, configured by `env` alone, logging
 * into memory at `level` (shared with the chaos world).
 */
export async function listenApi(
  database: Database,
  env: Record<string, string | undefined>,
  level = 'info',
): Promise<{ app: FastifyInstance; url: string; logs: string[] }> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const app = await buildApiServer({
    config: loadConfig(env),
    database,
    metrics: createMetrics({ defaults: false }),
    logger: createLogger({ level }, sink),
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url, logs };
}

/** A JSON request with a bearer token, as an operator would make it: the status and the raw body. */
export async function callApi(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, text: await res.text() };
}

/**
 * A real API server on an ephemeral port over the given database, logging into memory;
 * `env` adds configuration to the test token.
 */
export async function startApi(
  database: Database,
  env: Record<string, string | undefined> = {},
): Promise<TestApi> {
  const { app, url, logs } = await listenApi(database, { CP_ADMIN_API_TOKEN: TEST_TOKEN, ...env });
  return {
    app,
    url,
    logs,
    async request(method, path, options = {}) {
      const headers: Record<string, string> = { ...AUTH };
      let body: string | Uint8Array | undefined;
      if (options.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(options.json);
      } else if (options.raw !== undefined) {
        body = options.raw;
      }
      Object.assign(headers, options.headers);
      for (const [k, v] of Object.entries(headers)) if (v === '') delete headers[k];
      const res = await fetch(`${url}${path}`, { method, headers, body });
      const text = await res.text();
      const isJson = (res.headers.get('content-type') ?? '').startsWith('application/json');
      return { status: res.status, headers: res.headers, body: isJson && text ? JSON.parse(text) : text };
    },
    close: () => app.close(),
  };
}
