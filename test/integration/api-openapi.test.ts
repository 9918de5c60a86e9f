import { readFileSync } from 'node:fs';
import { compileErrors, validate } from '@readme/openapi-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routesOf } from '../../src/api/server.js';
import { SLUG_PATTERN } from '../../src/api/slugs.js';
import { KNOWN_RUNTIMES } from '../../src/provisioning/runtimes.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

// biome-ignore lint/suspicious/noExplicitAny: the document is walked as plain JSON
type Json = any;

let tdb: TestDatabase;
let api: TestApi;
let doc: Json;

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

beforeAll(async () => {
  tdb = await createTestDatabase();
  api = await startApi(tdb.database, {
    RESERVED_SLUGS: 'partners',
    CP_BASE_URL: 'https://cp-east.example.com',
  });
  const res = await fetch(`${api.url}/openapi.json`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  doc = await res.json();
});

afterAll(async () => {
  await api?.close();
  await tdb?.drop();
});

const operations = () =>
  Object.entries(doc.paths as Record<string, Json>).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((m) => ({ method: m.toUpperCase(), path, op: item[m] })),
  );
const asOpenApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');
const component = (name: string) => doc.components.schemas[name];

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document, served without a token', async () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: expect.any(String), version: pkg.version });
    const result = await validate(structuredClone(doc));
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true);
  });

  it('describes every registered route, and nothing else', () => {
    const registered = routesOf(api.app)
      .map((r) => `${r.method} ${asOpenApiPath(r.url)}`)
      .sort();
    const documented = operations()
      .map((o) => `${o.method} ${o.path}`)
      .sort();
    expect(documented).toEqual(registered);
    expect(registered).toEqual(
      expect.arrayContaining(['POST /cp/orgs', 'GET /cp/orgs/{slug}', 'GET /openapi.json', 'GET /healthz']),
    );
    expect(registered.some((r) => r.endsWith('/metrics'))).toBe(false);
    const ids = operations().map((o) => o.op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('says which routes need the bearer token, and what a missing token and a flood answer', () => {
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    for (const { method, path, op } of operations()) {
      const where = `${method} ${path}`;
      const error = { $ref: '#/components/schemas/Error' };
      if (path.startsWith('/cp/')) {
        expect(op.security, where).toBeUndefined();
        expect(op.responses['401'], where).toMatchObject({
          headers: { 'www-authenticate': expect.any(Object) },
          content: { 'application/json': { schema: error } },
        });
      } else {
        expect(op.security, where).toEqual([]);
        expect(op.responses['401'], where).toBeUndefined();
      }
      if (path === '/healthz' || path === '/readyz') expect(op.responses['429'], where).toBeUndefined();
      else {
        expect(op.responses['429'], where).toMatchObject({
          headers: { 'retry-after': expect.any(Object) },
          content: { 'application/json': { schema: error } },
        });
      }
      for (const [status, response] of Object.entries(op.responses as Record<string, Json>)) {
        expect(response.description, `${where} ${status}`).toMatch(/\w{3,}/);
        // Every error is the Error shape; /readyz answers its own shape when it is not ready.
        if (Number(status) >= 400 && path !== '/readyz') {
          expect(response.content['application/json'].schema, `${where} ${status}`).toEqual(error);
        }
      }
    }
  });

  it('documents the errors each route answers: 404 for unknown owners, 409 for conflicts', () => {
    const responses = (method: string, path: string) => Object.keys(doc.paths[path][method].responses);
    expect(responses('post', '/cp/orgs')).toEqual(
      expect.arrayContaining(['201', '400', '401', '409', '413', '415', '429']),
    );
    expect(doc.paths['/cp/orgs'].post.responses['409'].description).toMatch(/SlugBeingReleased/);
    expect(responses('get', '/cp/orgs/{slug}')).toEqual(expect.arrayContaining(['200', '404']));
    expect(responses('post', '/cp/orgs/{slug}/workspaces')).toEqual(
      expect.arrayContaining(['201', '400', '404', '409']),
    );
    expect(responses('delete', '/cp/workspaces/{id}')).toEqual(expect.arrayContaining(['202', '404']));
    expect(component('Error')).toMatchObject({
      required: ['error'],
      properties: { error: { required: ['code', 'message'] } },
    });
  });

  it('carries the request schemas that validate requests', () => {
    const body = doc.paths['/cp/orgs'].post.requestBody.content['application/json'].schema;
    expect(body.additionalProperties).toBe(false);
    expect(body.required).toEqual(['slug']);
    expect(body.properties.slug.pattern).toBe(SLUG_PATTERN.source);
    const [reserved, encoded] = body.properties.slug.not.anyOf;
    expect(reserved.enum).toEqual(expect.arrayContaining(['api', 'www', 'status', 'partners', 'cp-east']));
    expect(encoded).toEqual({ pattern: '^..--' });
    const ws = doc.paths['/cp/orgs/{slug}/workspaces'].post.requestBody.content['application/json'].schema;
    expect(ws.properties.runtime.enum).toEqual([...KNOWN_RUNTIMES]);
    expect(ws.properties.tier).toMatchObject({ type: 'integer', minimum: 1, maximum: 10 });
    expect(doc.paths['/cp/workspaces/{id}'].get.parameters).toEqual([
      expect.objectContaining({
        in: 'path',
        name: 'id',
        required: true,
        schema: expect.objectContaining({ format: 'uuid' }),
      }),
    ]);
    expect(doc.paths['/cp/orgs'].get.parameters.map((p: Json) => p.name).sort()).toEqual(['cursor', 'limit']);
  });

  it('describes the bodies the API really answers', async () => {
    const keys = (o: object) => Object.keys(o).sort();
    const props = (name: string) => Object.keys(component(name).properties).sort();
    const org = await api.request('POST', '/cp/orgs', { json: { slug: 'documented' } });
    expect(org.status).toBe(201);
    const ws = await api.request('POST', '/cp/orgs/documented/workspaces', {
      json: { runtime: 'hermes', tier: 3 },
    });
    expect(ws.status).toBe(201);
    const read = await api.request('GET', '/cp/orgs/documented');
    expect(keys(read.body)).toEqual(props('Org'));
    expect(keys(read.body.workspaces[0])).toEqual(props('Workspace'));
    expect(keys(read.body.status)).toEqual(props('Status'));
    expect(keys((await api.request('GET', '/cp/orgs')).body)).toEqual(props('OrgPage'));
    expect(keys((await api.request('GET', '/cp/admin/stats')).body)).toEqual(props('Stats'));
    expect(keys((await api.request('GET', '/cp/admin/orphans')).body)).toEqual(props('OrphanPage'));
    const bad = await api.request('POST', '/cp/orgs', { json: { slug: 'www' } });
    expect(bad.status).toBe(400);
    expect(keys(bad.body)).toEqual(props('Error'));
    expect(keys(bad.body.error)).toEqual(Object.keys(component('Error').properties.error.properties).sort());
  });

  it('has every route in the README API reference', () => {
    const section = readme.slice(readme.indexOf('## HTTP API'), readme.indexOf('## Configuration'));
    const missing = routesOf(api.app).filter((r) => !section.includes(`\`${r.method} ${r.url}\``));
    expect(missing).toEqual([]);
  });
});
