import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, TEST_TOKEN, type TestApi } from '../helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { snapshotTables } from '../helpers/tables.js';

/**
 * Per-client budgets: failed authentications and requests. Clients are told apart by address;
 * behind a trusted proxy (API_TRUST_PROXY, here the loopback the tests connect from) by
 * X-Forwarded-For, which lets one test play several clients.
 */

let tdb: TestDatabase;
const servers: TestApi[] = [];

beforeAll(async () => {
  tdb = await createTestDatabase();
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await tdb?.drop();
});

async function server(env: Record<string, string>): Promise<TestApi> {
  const api = await startApi(tdb.database, env);
  servers.push(api);
  return api;
}

const WRONG = { authorization: 'Bearer not-the-token-at-all' };
const from = (address: string, headers: Record<string, string> = {}) => ({
  ...headers,
  'x-forwarded-for': address,
});

describe('failed authentications', () => {
  it('answer 401 up to the budget, then 429 with Retry-After for everything that needs the token, right token included', async () => {
    const api = await server({
      API_AUTH_FAILURE_LIMIT: '3',
      API_AUTH_FAILURE_WINDOW: '1h',
      API_TRUST_PROXY: '127.0.0.1',
    });
    const before = await snapshotTables(tdb.database);
    const attacker = '203.0.113.7';
    const attempts = [];
    for (const headers of [WRONG, { authorization: '' }, WRONG, WRONG, { authorization: '' }]) {
      attempts.push(
        await api.request('POST', '/cp/orgs', { json: { slug: 'guess' }, headers: from(attacker, headers) }),
      );
    }
    expect(attempts.map((r) => r.status)).toEqual([401, 401, 401, 429, 429]);
    const [, , , locked] = attempts;
    expect(locked!.body.error).toEqual({
      code: 'TooManyRequests',
      message: expect.stringMatching(/failed authentications/),
    });
    const retryAfter = Number(locked!.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(3500);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    expect(locked!.headers.get('www-authenticate')).toBeNull();

    // Guessing right now is no better than guessing wrong: the answer does not tell them apart.
    const right = await api.request('GET', '/cp/admin/stats', { headers: from(attacker) });
    expect(right.status).toBe(429);
    expect(right.body.error.code).toBe('TooManyRequests');
    // The probes and the API description stay open; other clients are not affected.
    expect((await api.request('GET', '/healthz', { headers: from(attacker) })).status).toBe(200);
    expect((await api.request('GET', '/openapi.json', { headers: from(attacker) })).status).toBe(200);
    expect((await api.request('GET', '/cp/admin/stats', { headers: from('198.51.100.20') })).status).toBe(
      200,
    );
    expect(
      (await api.request('GET', '/cp/admin/stats', { headers: from('198.51.100.21', WRONG) })).status,
    ).toBe(401);
    expect(await snapshotTables(tdb.database)).toEqual(before);
  });

  it('count again once the window has passed', async () => {
    const api = await server({
      API_AUTH_FAILURE_LIMIT: '1',
      API_AUTH_FAILURE_WINDOW: '2s',
      API_TRUST_PROXY: '127.0.0.1',
    });
    const client = '203.0.113.8';
    expect((await api.request('GET', '/cp/orgs', { headers: from(client, WRONG) })).status).toBe(401);
    const locked = await api.request('GET', '/cp/orgs', { headers: from(client) });
    expect(locked.status).toBe(429);
    const retryAfter = Number(locked.headers.get('retry-after'));
    expect([1, 2]).toContain(retryAfter);
    // Retry-After is what a client needs: after it, the client is heard again.
    await new Promise((r) => setTimeout(r, retryAfter * 1000 + 100));
    expect((await api.request('GET', '/cp/orgs', { headers: from(client) })).status).toBe(200);
  });

  it('belong to the connecting address unless a trusted proxy says otherwise', async () => {
    // Without API_TRUST_PROXY a forged X-Forwarded-For does not make a new client.
    const api = await server({ API_AUTH_FAILURE_LIMIT: '2' });
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await api.request('GET', '/cp/orgs', { headers: from(`192.0.2.${i}`, WRONG) })).status);
    }
    expect(statuses).toEqual([401, 401, 429, 429]);
  });

  it('are not limited with API_AUTH_FAILURE_LIMIT=0', async () => {
    const api = await server({ API_AUTH_FAILURE_LIMIT: '0' });
    const statuses = new Set<number>();
    for (let i = 0; i < 30; i++)
      statuses.add((await api.request('GET', '/cp/orgs', { headers: WRONG })).status);
    expect([...statuses]).toEqual([401]);
    expect((await api.request('GET', '/cp/orgs')).status).toBe(200);
  });
});

describe('request rate', () => {
  it('refuses a client over API_RATE_LIMIT with 429 and Retry-After, counting unknown paths and failures too', async () => {
    const api = await server({
      API_RATE_LIMIT: '4',
      API_RATE_LIMIT_WINDOW: '1h',
      API_TRUST_PROXY: '127.0.0.1',
    });
    const before = await snapshotTables(tdb.database);
    const busy = '203.0.113.9';
    const first = await api.request('GET', '/cp/orgs', { headers: from(busy) });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-limit')).toBe('4');
    expect(first.headers.get('x-ratelimit-remaining')).toBe('3');
    expect((await api.request('GET', '/cp/nothing-here', { headers: from(busy) })).status).toBe(404);
    expect((await api.request('GET', '/cp/orgs', { headers: from(busy, WRONG) })).status).toBe(401);
    expect((await api.request('GET', '/openapi.json', { headers: from(busy) })).status).toBe(200);

    const over = await api.request('POST', '/cp/orgs', { json: { slug: 'flood' }, headers: from(busy) });
    expect(over.status).toBe(429);
    expect(over.headers.get('content-type')).toMatch(/^application\/json/);
    expect(over.body.error).toEqual({
      code: 'TooManyRequests',
      message: expect.stringMatching(/at most 4 per 1 h from one client/),
    });
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(3500);
    expect((await api.request('GET', '/cp/nothing-here', { headers: from(busy) })).status).toBe(429);
    expect(await snapshotTables(tdb.database)).toEqual(before);

    // Probes are never limited; another client has its own budget.
    for (let i = 0; i < 5; i++) {
      expect((await api.request('GET', '/readyz', { headers: from(busy) })).status).toBe(200);
      expect((await api.request('GET', '/healthz', { headers: from(busy) })).status).toBe(200);
    }
    expect((await api.request('GET', '/cp/orgs', { headers: from('198.51.100.30') })).status).toBe(200);
  });

  it('by default lets a client poll several times a second and create orgs back to back', async () => {
    const api = await server({});
    const statuses = new Set<number>();
    for (let i = 0; i < 150; i++) statuses.add((await api.request('GET', '/cp/orgs?limit=1')).status);
    for (let i = 0; i < 50; i++) {
      statuses.add((await api.request('POST', '/cp/orgs', { json: { slug: `burst-${i}` } })).status);
    }
    expect([...statuses].sort()).toEqual([200, 201]);
    expect((await api.request('GET', '/cp/orgs')).headers.get('x-ratelimit-limit')).toBe('6000');
  });
});

describe('the token itself', () => {
  it('is accepted in any case of the scheme and with extra spaces, per RFC 6750 practice', async () => {
    const api = await server({});
    for (const authorization of [
      `bearer ${TEST_TOKEN}`,
      `Bearer   ${TEST_TOKEN}  `,
      `BEARER ${TEST_TOKEN}`,
    ]) {
      expect((await api.request('GET', '/cp/admin/stats', { headers: { authorization } })).status).toBe(200);
    }
  });
});
