import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifySchema, FastifyTypeProvider } from 'fastify';
import { z } from 'zod';
import type { ApiError } from './errors.js';
import { COMPONENTS, errorDescription } from './responses.js';
import { parseInput } from './schemas.js';

/**
 * Routes declare their request and response shapes as zod schemas in fastify's `schema`
 * option. The same schemas validate requests (the validator compiler below), type the
 * handlers (the type provider) and become the OpenAPI description (`GET /openapi.json`), so a
 * new route with schemas is documented without further work.
 */
export interface ZodTypeProvider extends FastifyTypeProvider {
  readonly validator: this['schema'] extends z.ZodType ? z.output<this['schema']> : unknown;
  readonly serializer: this['schema'] extends z.ZodType ? z.input<this['schema']> : unknown;
}

const PART: Record<string, 'body' | 'query' | 'params' | 'headers'> = {
  body: 'body',
  querystring: 'query',
  params: 'params',
  headers: 'headers',
};

const isZod = (value: unknown): value is z.ZodType => value instanceof z.ZodType;

/**
 * Request parts are validated by their zod schema (fastify hands an absent body over as null);
 * responses are serialized as they are: their schemas only document.
 */
export function useZodSchemas(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (!isZod(schema)) throw new Error(`route schemas must be zod schemas (${httpPart})`);
    const where = PART[httpPart ?? 'body'] ?? 'body';
    return (data: unknown) => {
      try {
        return { value: parseInput(schema, data, where) };
      } catch (error) {
        return { error: error as ApiError };
      }
    };
  });
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
}

export interface OpenApiOptions {
  /** Routes that need no bearer token: their operations say `security: []` and no 401. */
  isPublic(url: string): boolean;
  /** Routes under the per-client request budget: their operations list 429. */
  isRateLimited(url: string): boolean;
  version: string;
}

const SCHEMAS = '#/components/schemas/';

const json = (schema: z.ZodType, io: 'input' | 'output') => {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' });
  return rest;
};

/** The named response schemas, referring to each other by `#/components/schemas/<id>`. */
function componentSchemas(): Record<string, unknown> {
  const all = z.toJSONSchema(z.globalRegistry, {
    io: 'output',
    unrepresentable: 'any',
    uri: (id) => `${SCHEMAS}${id}`,
  }).schemas;
  return Object.fromEntries(
    Object.keys(COMPONENTS).map((id) => {
      const { $schema: _, $id: __, ...schema } = all[id] as Record<string, unknown>;
      return [id, schema];
    }),
  );
}

/** A response: a reference when the schema is a named component (or an error), else inline. */
function responseSchema(schema: unknown): unknown {
  if (!isZod(schema)) return schema;
  const error = errorDescription(schema);
  if (error !== undefined) return { $ref: `${SCHEMAS}Error`, description: error };
  const meta = z.globalRegistry.get(schema);
  if (meta?.id && COMPONENTS[meta.id] === schema) {
    return { $ref: `${SCHEMAS}${meta.id}`, description: meta.description ?? meta.id };
  }
  return json(schema, 'output');
}

/**
 * Registers @fastify/swagger over the routes added after it and serves the document at
 * `GET /openapi.json` (no auth). Every operation also lists the errors any route can answer:
 * 401 for the bearer-token routes, 429 for the rate-limited ones.
 */
export async function registerOpenApi(app: FastifyInstance, options: OpenApiOptions): Promise<void> {
  const error = (description: string, headers: Record<string, { type: string; description: string }>) => ({
    $ref: `${SCHEMAS}Error`,
    description,
    headers,
  });
  const unauthorized = error('Missing or wrong bearer token', {
    'www-authenticate': {
      type: 'string',
      description: 'Bearer realm="molecule-operator", with error="invalid_token" when a token was sent',
    },
  });
  const tooMany = error(
    'Too many requests from this client, or too many failed authentications: retry after Retry-After seconds',
    { 'retry-after': { type: 'integer', description: 'Seconds to wait before retrying' } },
  );
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'molecule-operator control-plane API',
        version: options.version,
        description:
          'Writes the desired state of orgs (tenants) and workspaces; the operator converges AWS and Cloudflare to it. Errors are `{"error": {"code", "message", "details"?}}`; a rejected request writes nothing.',
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'CP_ADMIN_API_TOKEN (RFC 6750)' },
        },
      },
      security: [{ bearerAuth: [] }],
    },
    transform: ({ schema, url }) => {
      const given = (schema ?? {}) as FastifySchema & Record<string, unknown>;
      const out: Record<string, unknown> = { ...given };
      for (const part of ['params', 'querystring', 'body', 'headers'] as const) {
        if (isZod(given[part])) out[part] = json(given[part], 'input');
      }
      const responses: Record<string, unknown> = {};
      for (const [status, s] of Object.entries((given.response ?? {}) as Record<string, unknown>)) {
        responses[status] = responseSchema(s);
      }
      if (options.isPublic(url)) out.security = [];
      else responses['401'] ??= unauthorized;
      if (options.isRateLimited(url)) responses['429'] ??= tooMany;
      out.response = responses;
      return { schema: out as FastifySchema, url };
    },
    transformObject: (document) => {
      if (!('openapiObject' in document)) return document.swaggerObject;
      const openapi = document.openapiObject as Record<string, unknown> & {
        components?: Record<string, unknown>;
      };
      const components = { ...openapi.components };
      components.schemas = { ...(components.schemas as object), ...componentSchemas() };
      return { ...openapi, components };
    },
  });
}

/** `GET /openapi.json`: the document, generated once on first request. */
export function registerOpenApiRoute(app: FastifyInstance): void {
  app.get(
    '/openapi.json',
    {
      schema: {
        operationId: 'getOpenApi',
        summary: 'This API as an OpenAPI 3.1 document',
        tags: ['meta'],
        response: {
          200: z.looseObject({ openapi: z.string() }).meta({ description: 'The OpenAPI document' }),
        },
      },
    },
    async () => app.swagger(),
  );
}
