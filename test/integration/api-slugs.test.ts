import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILT_IN_RESERVED_SLUGS, reservedSlugs } from '../../src/api/slugs.js';
import { loadConfig } from '../../src/config.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { snapshotTables } from '../helpers/tables.js';

/** Slugs that are, or look like, someone else's hostname (DESIGN §12), with a configured server. */

let tdb: TestDatabase;
let api: TestApi;

beforeAll(async () => {
  tdb = await createTestDatabase();
  api = await startApi(tdb.database, {
    CP_BASE_URL: 'https://cp-east.example.com/v1',
    RESERVED_SLUGS: ' Partners , acme-internal,partners',
  });
});

afterAll(async () => {
  await api?.close();
  await tdb?.drop();
});

const refused = (message: RegExp) => ({ status: 400, message });
const RESERVED = /is reserved/;

describe('POST /cp/orgs refuses slugs that name the service, and nothing else', () => {
  it.each([
    { reason: 'a built-in reserved name', given: 'www', want: refused(RESERVED) },
    { reason: 'another built-in one', given: 'status', want: refused(RESERVED) },
    { reason: "the first label of CP_BASE_URL's host", given: 'cp-east', want: refused(RESERVED) },
    { reason: 'a RESERVED_SLUGS entry, listed in upper case', given: 'partners', want: refused(RESERVED) },
    { reason: 'another RESERVED_SLUGS entry', given: 'acme-internal', want: refused(RESERVED) },
    { reason: 'punycode', given: 'xn--nxasmq6b', want: refused(/punycode/) },
    { reason: '"--" in positions 3–4', given: 'ab--cd', want: refused(/positions 3–4/) },
    { reason: '"--" in positions 3–4 of a digit label', given: '12--3', want: refused(/positions 3–4/) },
    { reason: '"--" elsewhere', given: 'abc--d', want: { status: 201 } },
    { reason: '"--" in positions 2–3', given: 'a--bc', want: { status: 201 } },
    { reason: 'a reserved name inside a longer label', given: 'api-co', want: { status: 201 } },
    { reason: 'a reserved name with a suffix', given: 'wwww', want: { status: 201 } },
    { reason: 'a longer label starting like CP_BASE_URL', given: 'cp-east-2', want: { status: 201 } },
  ])('$given: $reason → $want.status', async ({ given, want }) => {
    const before = await snapshotTables(tdb.database);
    const res = await api.request('POST', '/cp/orgs', { json: { slug: given } });
    expect(res.status, JSON.stringify(res.body)).toBe(want.status);
    if ('message' in want) {
      expect(res.body.error.code).toBe('ValidationFailed');
      expect(res.body.error.details).toEqual([
        { path: 'body.slug', message: expect.stringMatching(want.message) },
      ]);
      expect(await snapshotTables(tdb.database)).toEqual(before);
    } else {
      const rows = await tdb.database.query<{ slug: string }>('SELECT slug FROM orgs WHERE slug = $1', [
        given,
      ]);
      expect(rows).toEqual([{ slug: given }]);
    }
  });

  it('still serves an org whose slug became reserved later', async () => {
    // Reads and deletes look the org up as it is; only new slugs are checked.
    const other = await startApi(tdb.database, { RESERVED_SLUGS: 'api-co' });
    try {
      expect((await other.request('GET', '/cp/orgs/api-co')).status).toBe(200);
      expect((await other.request('POST', '/cp/orgs', { json: { slug: 'api-co' } })).status).toBe(400);
    } finally {
      await other.close();
    }
  });
});

describe('reservedSlugs', () => {
  it.each([
    {
      reason: 'the built-in list and the control plane host',
      given: { CP_BASE_URL: 'https://control-plane.example.com' },
      want: { has: ['api', 'www', 'mail', 'control-plane'], hasNot: ['example'] },
    },
    {
      reason: 'an address is no hostname: nothing is added for it',
      given: { CP_BASE_URL: 'http://10.0.0.1:8080' },
      want: { has: ['api'], hasNot: ['10'] },
    },
    {
      reason: 'RESERVED_SLUGS, trimmed and lowercased',
      given: { RESERVED_SLUGS: 'Billing2, partners ,' },
      want: { has: ['billing2', 'partners'], hasNot: [''] },
    },
  ])('$reason', ({ given, want }) => {
    const reserved = reservedSlugs(loadConfig(given));
    for (const slug of want.has) expect(reserved.has(slug), slug).toBe(true);
    for (const slug of want.hasNot) expect(reserved.has(slug), slug).toBe(false);
  });

  it('lists only labels a slug could take', () => {
    for (const slug of BUILT_IN_RESERVED_SLUGS) expect(slug).toMatch(/^[a-z0-9]([a-z0-9-]{1,30})[a-z0-9]$/);
    expect(BUILT_IN_RESERVED_SLUGS).toEqual(
      expect.arrayContaining(['api', 'www', 'app', 'admin', 'status', 'mail']),
    );
  });
});
