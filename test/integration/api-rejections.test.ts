import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCursor } from '../../src/api/cursor.js';
import { startApi, TEST_TOKEN, type TestApi } from '../helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { snapshotTables } from '../helpers/tables.js';

let tdb: TestDatabase;
let api: TestApi;
let wsId: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  api = await startApi(tdb.database);
  // Fixtures the rejected requests aim at, so each one fails for the reason under test.
  expect((await api.request('POST', '/cp/orgs', { json: { slug: 'acme' } })).status).toBe(201);
  const ws = await api.request('POST', '/cp/orgs/acme/workspaces', { json: { runtime: 'hermes', tier: 3 } });
  wsId = ws.body.id;
  expect((await api.request('POST', '/cp/orgs', { json: { slug: 'leaving' } })).status).toBe(201);
  const gone = await api.request('POST', '/cp/orgs/leaving/workspaces', {
    json: { runtime: 'hermes', tier: 3 },
  });
  expect((await api.request('DELETE', '/cp/orgs/leaving')).status).toBe(202);
  goneWsId = gone.body.id;
});

let goneWsId: string;

afterAll(async () => {
  await api?.close();
  await tdb?.drop();
});

interface Case {
  reason: string;
  method: string;
  path: string | (() => string);
  json?: unknown;
  raw?: string | Uint8Array;
  headers?: Record<string, string>;
  status: number;
  code: string;
  /** A field error expected in details. */
  field?: string;
  /** The WWW-Authenticate challenge of a 401 (RFC 6750 §3). */
  challenge?: string;
}

const REALM = 'Bearer realm="molecule-operator"';
const INVALID_TOKEN = `${REALM}, error="invalid_token"`;

const org = (json: unknown): Pick<Case, 'method' | 'path' | 'json'> => ({
  method: 'POST',
  path: '/cp/orgs',
  json,
});
const ws = (json: unknown): Pick<Case, 'method' | 'path' | 'json'> => ({
  method: 'POST',
  path: '/cp/orgs/acme/workspaces',
  json,
});
const JSON_CT = { 'content-type': 'application/json' };
const badSlug = (reason: string, slug: unknown): Case => ({
  reason: `slug ${reason}`,
  ...org({ slug }),
  status: 400,
  code: 'ValidationFailed',
  field: 'body.slug',
});
const badName = (reason: string, name: string): Case => ({
  reason: `name ${reason}`,
  ...org({ slug: 'named', name }),
  status: 400,
  code: 'ValidationFailed',
  field: 'body.name',
});
const badTier = (tier: unknown): Case => ({
  reason: `tier ${JSON.stringify(tier)}`,
  ...ws({ runtime: 'hermes', tier }),
  status: 400,
  code: 'ValidationFailed',
  field: 'body.tier',
});

const cases: Case[] = [
  // Body syntax and media type
  {
    reason: 'malformed JSON',
    method: 'POST',
    path: '/cp/orgs',
    raw: '{"slug": "bad',
    headers: JSON_CT,
    status: 400,
    code: 'InvalidJson',
  },
  {
    reason: 'JSON with a __proto__ key',
    method: 'POST',
    path: '/cp/orgs',
    raw: '{"slug":"proto","__proto__":{"x":1}}',
    headers: JSON_CT,
    status: 400,
    code: 'InvalidJson',
  },
  {
    reason: 'empty body',
    method: 'POST',
    path: '/cp/orgs',
    raw: '',
    headers: JSON_CT,
    status: 400,
    code: 'ValidationFailed',
    field: 'body',
  },
  {
    reason: 'JSON array body',
    ...org([{ slug: 'array' }]),
    status: 400,
    code: 'ValidationFailed',
    field: 'body',
  },
  {
    reason: 'JSON string body',
    ...org('just-a-string'),
    status: 400,
    code: 'ValidationFailed',
    field: 'body',
  },
  {
    reason: 'text/plain body',
    method: 'POST',
    path: '/cp/orgs',
    raw: '{"slug":"plain"}',
    headers: { 'content-type': 'text/plain' },
    status: 415,
    code: 'UnsupportedMediaType',
  },
  {
    reason: 'form body',
    method: 'POST',
    path: '/cp/orgs',
    raw: 'slug=form',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    status: 415,
    code: 'UnsupportedMediaType',
  },
  {
    reason: 'body without content type',
    method: 'POST',
    path: '/cp/orgs',
    raw: new TextEncoder().encode('{"slug":"noct"}'),
    status: 415,
    code: 'UnsupportedMediaType',
  },
  {
    reason: 'oversize body',
    ...org({ slug: 'huge', name: 'x'.repeat(17 * 1024) }),
    status: 413,
    code: 'PayloadTooLarge',
  },
  // Org fields
  {
    reason: 'unknown field',
    ...org({ slug: 'extra', owner: 'me' }),
    status: 400,
    code: 'ValidationFailed',
    field: 'body.owner',
  },
  {
    reason: 'missing slug',
    ...org({ name: 'No Slug' }),
    status: 400,
    code: 'ValidationFailed',
    field: 'body.slug',
  },
  badSlug('too short', 'ab'),
  badSlug('too long', 'a'.repeat(33)),
  badSlug('uppercase', 'Acme-Two'),
  badSlug('leading dash', '-acme'),
  badSlug('trailing dash', 'acme-'),
  badSlug('unicode', 'ácme'),
  badSlug('underscore', 'ac_me'),
  badSlug('dot', 'ac.me'),
  badSlug('not a string', 12345),
  // Hostnames people expect to belong to the service (DESIGN §12)
  ...['api', 'www', 'app', 'admin', 'status', 'mail', 'login', 'docs', 'support', 'cdn', 'ns1'].map((slug) =>
    badSlug(`reserved: ${slug}`, slug),
  ),
  badSlug('punycode', 'xn--80ak6aa92e'),
  badSlug('"--" in positions 3–4', 'ab--cd'),
  {
    reason: 'empty name',
    ...org({ slug: 'named', name: '   ' }),
    status: 400,
    code: 'ValidationFailed',
    field: 'body.name',
  },
  badName('with control characters', 'a\u0007b'),
  badName('with a C1 control character', 'a\u0085b'),
  badName('with a line separator', 'a\u2028b'),
  badName('with a right-to-left override', 'invoice\u202Etxt.exe'),
  badName('with a left-to-right embedding', 'a\u202Ab'),
  badName('with a first-strong isolate', 'a\u2068b\u2069'),
  badName('with a right-to-left mark', 'a\u200Fb'),
  badName('with a lone surrogate', 'a\uD800b'),
  badName('too long', 'n'.repeat(101)),
  {
    reason: 'isCanary as a string',
    ...org({ slug: 'canary', isCanary: 'yes' }),
    status: 400,
    code: 'ValidationFailed',
    field: 'body.isCanary',
  },
  { reason: 'duplicate live slug', ...org({ slug: 'acme' }), status: 409, code: 'SlugTaken' },
  {
    reason: 'slug held by an org being deleted',
    ...org({ slug: 'leaving' }),
    status: 409,
    code: 'SlugBeingReleased',
  },
  // Workspace fields
  badTier(1.5),
  badTier('4'),
  badTier(0),
  badTier(11),
  badTier(-3),
  badTier(null),
  {
    reason: 'missing tier',
    ...ws({ runtime: 'hermes' }),
    status: 400,
    code: 'ValidationFailed',
    field: 'body.tier',
  },
  {
    reason: 'unknown runtime',
    ...ws({ runtime: 'docker', tier: 3 }),
    status: 400,
    code: 'ValidationFailed',
    field: 'body.runtime',
  },
  {
    reason: 'runtime in the wrong case',
    ...ws({ runtime: 'Hermes', tier: 3 }),
    status: 400,
    code: 'ValidationFailed',
    field: 'body.runtime',
  },
  {
    reason: 'workspace unknown field',
    ...ws({ runtime: 'hermes', tier: 3, image: 'x' }),
    status: 400,
    code: 'ValidationFailed',
    field: 'body.image',
  },
  {
    reason: 'workspace in an unknown org',
    method: 'POST',
    path: '/cp/orgs/nobody/workspaces',
    json: { runtime: 'hermes', tier: 3 },
    status: 404,
    code: 'NotFound',
  },
  {
    reason: 'workspace in an org being deleted',
    method: 'POST',
    path: '/cp/orgs/leaving/workspaces',
    json: { runtime: 'hermes', tier: 3 },
    status: 409,
    code: 'OrgDeleting',
  },
  // Workspace ids and spec changes
  {
    reason: 'non-uuid workspace id (GET)',
    method: 'GET',
    path: '/cp/workspaces/not-a-uuid',
    status: 400,
    code: 'ValidationFailed',
    field: 'params.id',
  },
  {
    reason: 'non-uuid workspace id (DELETE)',
    method: 'DELETE',
    path: '/cp/workspaces/123',
    status: 400,
    code: 'ValidationFailed',
    field: 'params.id',
  },
  {
    reason: 'non-uuid workspace id (stop)',
    method: 'POST',
    path: "/cp/workspaces/1'%20OR%201=1/stop",
    status: 400,
    code: 'ValidationFailed',
    field: 'params.id',
  },
  {
    reason: 'unknown workspace (DELETE)',
    method: 'DELETE',
    path: '/cp/workspaces/5b0f8a52-33b5-4c9e-9d0b-2f6b0a0e8d11',
    status: 404,
    code: 'NotFound',
  },
  {
    reason: 'empty PATCH',
    method: 'PATCH',
    path: () => `/cp/workspaces/${wsId}`,
    json: {},
    status: 400,
    code: 'ValidationFailed',
    field: 'body',
  },
  {
    reason: 'PATCH with a bad power state',
    method: 'PATCH',
    path: () => `/cp/workspaces/${wsId}`,
    json: { powerState: 'paused' },
    status: 400,
    code: 'ValidationFailed',
    field: 'body.powerState',
  },
  {
    reason: 'PATCH with a fractional tier',
    method: 'PATCH',
    path: () => `/cp/workspaces/${wsId}`,
    json: { tier: 2.5 },
    status: 400,
    code: 'ValidationFailed',
    field: 'body.tier',
  },
  {
    reason: 'PATCH of an immutable field',
    method: 'PATCH',
    path: () => `/cp/workspaces/${wsId}`,
    json: { runtime: 'crewai' },
    status: 400,
    code: 'ValidationFailed',
    field: 'body.runtime',
  },
  {
    reason: 'PATCH of a workspace being deleted',
    method: 'PATCH',
    path: () => `/cp/workspaces/${goneWsId}`,
    json: { tier: 4 },
    status: 409,
    code: 'WorkspaceDeleting',
  },
  {
    reason: 'stop of a workspace being deleted',
    method: 'POST',
    path: () => `/cp/workspaces/${goneWsId}/stop`,
    status: 409,
    code: 'WorkspaceDeleting',
  },
  // Lists
  {
    reason: 'limit 0',
    method: 'GET',
    path: '/cp/orgs?limit=0',
    status: 400,
    code: 'ValidationFailed',
    field: 'query.limit',
  },
  {
    reason: 'limit 201',
    method: 'GET',
    path: '/cp/orgs?limit=201',
    status: 400,
    code: 'ValidationFailed',
    field: 'query.limit',
  },
  {
    reason: 'limit not a number',
    method: 'GET',
    path: '/cp/orgs?limit=ten',
    status: 400,
    code: 'ValidationFailed',
    field: 'query.limit',
  },
  {
    reason: 'cursor not base64url',
    method: 'GET',
    path: '/cp/orgs?cursor=%25%25',
    status: 400,
    code: 'ValidationFailed',
    field: 'query.cursor',
  },
  {
    reason: 'cursor of garbage',
    method: 'GET',
    path: '/cp/orgs?cursor=bm90LWpzb24',
    status: 400,
    code: 'ValidationFailed',
    field: 'query.cursor',
  },
  {
    reason: 'forged cursor with a bad timestamp',
    method: 'GET',
    path: `/cp/orgs?cursor=${encodeCursor(["1'; DROP TABLE orgs; --", '5b0f8a52-33b5-4c9e-9d0b-2f6b0a0e8d11'])}`,
    status: 400,
    code: 'ValidationFailed',
    field: 'query.cursor',
  },
  {
    reason: 'orphan cursor on the org list',
    method: 'GET',
    path: `/cp/orgs?cursor=${encodeCursor([7])}`,
    status: 400,
    code: 'ValidationFailed',
    field: 'query.cursor',
  },
  {
    reason: 'unknown query parameter',
    method: 'GET',
    path: '/cp/orgs?sort=slug',
    status: 400,
    code: 'ValidationFailed',
    field: 'query.sort',
  },
  {
    reason: 'orphans ?all=maybe',
    method: 'GET',
    path: '/cp/admin/orphans?all=maybe',
    status: 400,
    code: 'ValidationFailed',
    field: 'query.all',
  },
  // Auth (RFC 6750 §3): no credentials → a bare challenge; a wrong bearer token → invalid_token
  {
    reason: 'missing Authorization',
    ...org({ slug: 'noauth' }),
    headers: { authorization: '' },
    status: 401,
    code: 'Unauthorized',
    challenge: REALM,
  },
  {
    reason: 'Basic credentials',
    ...org({ slug: 'basic' }),
    headers: { authorization: `Basic ${Buffer.from(`admin:${TEST_TOKEN}`).toString('base64')}` },
    status: 401,
    code: 'Unauthorized',
    challenge: REALM,
  },
  {
    reason: 'Bearer without a token',
    ...org({ slug: 'empty-bearer' }),
    headers: { authorization: 'Bearer ' },
    status: 401,
    code: 'Unauthorized',
    challenge: REALM,
  },
  {
    reason: 'wrong token',
    ...org({ slug: 'wrong' }),
    headers: { authorization: 'Bearer not-the-token' },
    status: 401,
    code: 'Unauthorized',
    challenge: INVALID_TOKEN,
  },
  {
    reason: 'wrong token of the right length',
    ...org({ slug: 'wrong' }),
    headers: { authorization: `Bearer ${'x'.repeat(TEST_TOKEN.length)}` },
    status: 401,
    code: 'Unauthorized',
    challenge: INVALID_TOKEN,
  },
  {
    reason: 'token with a suffix',
    ...org({ slug: 'wrong' }),
    headers: { authorization: `Bearer ${TEST_TOKEN}x` },
    status: 401,
    code: 'Unauthorized',
    challenge: INVALID_TOKEN,
  },
  {
    reason: 'two tokens in one header',
    ...org({ slug: 'wrong' }),
    headers: { authorization: `Bearer ${TEST_TOKEN} forged` },
    status: 401,
    code: 'Unauthorized',
    challenge: INVALID_TOKEN,
  },
  {
    reason: 'missing auth on a read',
    method: 'GET',
    path: '/cp/admin/stats',
    headers: { authorization: '' },
    status: 401,
    code: 'Unauthorized',
    challenge: REALM,
  },
  {
    reason: 'missing auth on an unknown route',
    method: 'GET',
    path: '/cp/secret-route',
    headers: { authorization: '' },
    status: 401,
    code: 'Unauthorized',
    challenge: REALM,
  },
  {
    reason: 'missing auth on /metrics (not served on the API port)',
    method: 'GET',
    path: '/metrics',
    headers: { authorization: '' },
    status: 401,
    code: 'Unauthorized',
    challenge: REALM,
  },
  // Routing
  { reason: 'unknown route', method: 'GET', path: '/cp/nothing-here', status: 404, code: 'NotFound' },
  { reason: '/metrics on the API port', method: 'GET', path: '/metrics', status: 404, code: 'NotFound' },
  { reason: 'unknown org', method: 'DELETE', path: '/cp/orgs/nobody', status: 404, code: 'NotFound' },
  {
    reason: 'unknown tenant',
    method: 'POST',
    path: '/cp/admin/tenants/nobody/stop',
    status: 404,
    code: 'NotFound',
  },
  {
    reason: 'stop a tenant being deleted',
    method: 'POST',
    path: '/cp/admin/tenants/leaving/stop',
    status: 409,
    code: 'OrgDeleting',
  },
  {
    reason: 'method not allowed',
    method: 'PUT',
    path: '/cp/orgs',
    json: { slug: 'put' },
    status: 405,
    code: 'MethodNotAllowed',
  },
  {
    reason: 'bad percent-encoding',
    method: 'GET',
    path: '/cp/orgs/%E0%A4%A',
    status: 400,
    code: 'BadRequest',
  },
];

describe('every rejection answers a JSON 4xx and writes nothing', () => {
  it('snapshots cover every table and see the fixtures', async () => {
    const snapshot = await snapshotTables(tdb.database);
    expect(Object.keys(snapshot)).toEqual(
      expect.arrayContaining([
        'orgs',
        'workspaces',
        'reconcile_status',
        'tenant_resources',
        'ami_pins',
        'runtime_image_pins',
        'leases',
        'orphans',
      ]),
    );
    expect(snapshot.orgs!.rows).toBe(2);
    expect(snapshot.workspaces!.rows).toBe(2);
  });

  it.each(cases)('$reason → $status $code', async (c) => {
    const before = await snapshotTables(tdb.database);
    const path = typeof c.path === 'function' ? c.path() : c.path;
    const res = await api.request(c.method, path, {
      ...(c.json !== undefined ? { json: c.json } : {}),
      ...(c.raw !== undefined ? { raw: c.raw } : {}),
      ...(c.headers ? { headers: c.headers } : {}),
    });
    expect(res.status, JSON.stringify(res.body)).toBe(c.status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.body.error.code).toBe(c.code);
    expect(res.body.error.message).toMatch(/\w{3,}/);
    expect(JSON.stringify(res.body)).not.toMatch(/stack|at .*\.ts|SELECT|FST_/);
    if (c.field) {
      expect(res.body.error.details).toEqual(
        expect.arrayContaining([expect.objectContaining({ path: c.field, message: expect.any(String) })]),
      );
    }
    expect(res.headers.get('www-authenticate')).toBe(c.status === 401 ? c.challenge : null);
    if (c.status === 405) expect(res.headers.get('allow')).toBe('GET, POST');
    expect(await snapshotTables(tdb.database)).toEqual(before);
  });

  it('lists every problem of a request at once', async () => {
    const res = await api.request('POST', '/cp/orgs', { json: { slug: 'A', isCanary: 1, extra: true } });
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(
      ['body.extra', 'body.isCanary', 'body.slug'].sort(),
    );
  });

  it('answers a request the HTTP parser rejects in the same JSON shape', async () => {
    const before = await snapshotTables(tdb.database);
    const { port } = new URL(api.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
      let data = '';
      socket.on('data', (d) => {
        data += d;
      });
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400/);
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toMatchObject({
      error: { code: 'BadRequest' },
    });
    expect(await snapshotTables(tdb.database)).toEqual(before);
  });
});

describe('concurrent creates of one slug', () => {
  it('exactly one 201 and one 409, every time', async () => {
    for (let i = 0; i < 20; i++) {
      const slug = `race-${i}`;
      const results = await Promise.all([
        api.request('POST', '/cp/orgs', { json: { slug } }),
        api.request('POST', '/cp/orgs', { json: { slug, name: 'second' } }),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
      expect(results.find((r) => r.status === 409)!.body.error.code).toBe('SlugTaken');
      const rows = await tdb.database.query<{ id: string }>('SELECT id FROM orgs WHERE slug = $1', [slug]);
      expect(rows.map((r) => r.id)).toEqual([results.find((r) => r.status === 201)!.body.id]);
    }
  });
});
