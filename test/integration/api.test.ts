import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { buildApiServer } from '../../src/api/server.js';
import { loadConfig } from '../../src/config.js';
import type { Database } from '../../src/db/client.js';
import { DesiredStateRepository } from '../../src/db/desired.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { startProbeServer } from '../../src/observability/server.js';
import { KNOWN_RUNTIMES } from '../../src/provisioning/runtimes.js';
import { type ApiResponse, AUTH, startApi, TEST_TOKEN, type TestApi } from '../helpers/api.js';

type Json = ApiResponse['body'];

import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;
let api: TestApi;
let desired: DesiredStateRepository;

beforeAll(async () => {
  tdb = await createTestDatabase();
  desired = new DesiredStateRepository(tdb.database.db);
  api = await startApi(tdb.database);
});

afterAll(async () => {
  await api?.close();
  await tdb?.drop();
});

const createOrg = async (slug: string, extra: Record<string, unknown> = {}) => {
  const res = await api.request('POST', '/cp/orgs', { json: { slug, ...extra } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
};

const createWorkspace = async (
  slug: string,
  json: Record<string, unknown> = { runtime: 'hermes', tier: 3 },
) => {
  const res = await api.request('POST', `/cp/orgs/${slug}/workspaces`, { json });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
};

const orgRow = async (id: string): Promise<Record<string, unknown>> =>
  (await tdb.database.query<Record<string, unknown>>('SELECT * FROM orgs WHERE id = $1', [id]))[0]!;
const workspaceRow = async (id: string): Promise<Record<string, unknown>> =>
  (await tdb.database.query<Record<string, unknown>>('SELECT * FROM workspaces WHERE id = $1', [id]))[0]!;

const setStatus = (row: {
  controller: string;
  ownerId: string;
  ownerKind: 'org' | 'workspace';
  orgId: string;
  ready: boolean;
  reason: string;
  externalIds?: Record<string, string>;
}) =>
  tdb.database.query(
    `INSERT INTO reconcile_status (controller, owner_id, owner_kind, org_id, ready, reason, message, observed_generation, external_ids, last_reconciled_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, now())
     ON CONFLICT (controller, owner_id) DO UPDATE SET ready = EXCLUDED.ready, reason = EXCLUDED.reason`,
    [
      row.controller,
      row.ownerId,
      row.ownerKind,
      row.orgId,
      row.ready,
      row.reason,
      `${row.controller} says ${row.reason}`,
      JSON.stringify(row.externalIds ?? {}),
    ],
  );

describe('orgs', () => {
  it('creates an org with defaults and stores it', async () => {
    const res = await api.request('POST', '/cp/orgs', { json: { slug: 'acme' } });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe('/cp/orgs/acme');
    expect(res.body).toMatchObject({
      slug: 'acme',
      name: 'acme',
      isCanary: false,
      powerState: 'running',
      generation: 1,
      deletionRequestedAt: null,
      status: { ready: false, reason: 'Pending', conditions: [], resources: {} },
      workspaces: [],
    });
    expect(Date.parse(res.body.createdAt)).not.toBeNaN();
    const row = await orgRow(res.body.id);
    expect(row).toMatchObject({ slug: 'acme', name: 'acme', is_canary: false, power_state: 'running' });
  });

  it('accepts a name and the canary flag', async () => {
    const org = await createOrg('canary-co', { name: 'Canary Co.', isCanary: true });
    expect(org).toMatchObject({ name: 'Canary Co.', isCanary: true });
    expect(await orgRow(org.id)).toMatchObject({ name: 'Canary Co.', is_canary: true });
  });

  it('reads an org by slug and 404s an unknown one', async () => {
    const created = await createOrg('read-me');
    const res = await api.request('GET', '/cp/orgs/read-me');
    expect(res.status).toBe(200);
    expect(res.body).toEqual(created);
    const missing = await api.request('GET', '/cp/orgs/no-such-org');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('NotFound');
  });

  it('lists every live org exactly once across pages, in creation order', async () => {
    for (let i = 0; i < 7; i++) await createOrg(`page-${i}`);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: ApiResponse = await api.request(
        'GET',
        `/cp/orgs?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(3);
      seen.push(...res.body.items.map((o: { slug: string }) => o.slug));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor && pages < 50);
    const live = await tdb.database.query<{ slug: string }>(
      'SELECT slug FROM orgs WHERE purged_at IS NULL ORDER BY created_at, id',
    );
    expect(seen).toEqual(live.map((r) => r.slug));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(expect.arrayContaining(['page-0', 'page-6']));
  });

  it('pages correctly through orgs created within the same millisecond', async () => {
    // Microseconds apart and equal timestamps: a millisecond cursor would repeat or skip these.
    const stamps = ['.000100', '.000200', '.000200', '.000300', '.000900'];
    for (const [i, s] of stamps.entries()) {
      await tdb.database.query(`INSERT INTO orgs (slug, name, created_at) VALUES ($1, $1, $2)`, [
        `same-ms-${i}`,
        `2000-01-01 00:00:00${s}+00`,
      ]);
    }
    const slugs: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const res: ApiResponse = await api.request(
        'GET',
        `/cp/orgs?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      slugs.push(
        ...res.body.items.map((o: { slug: string }) => o.slug).filter((s: string) => s.startsWith('same-ms')),
      );
      cursor = res.body.nextCursor;
      if (!cursor) break;
    }
    expect(slugs.sort()).toEqual(['same-ms-0', 'same-ms-1', 'same-ms-2', 'same-ms-3', 'same-ms-4']);
  });

  it('defaults the page size to 50 and answers an empty last page with no cursor', async () => {
    const res = await api.request('GET', '/cp/orgs');
    expect(res.status).toBe(200);
    const live = await tdb.database.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM orgs WHERE purged_at IS NULL',
    );
    expect(res.body.items).toHaveLength(Math.min(50, live[0]!.n));
    expect(res.body.nextCursor).toBeNull();
  });
});

describe('workspaces', () => {
  it('creates a workspace in an org, readable alone and inside its org', async () => {
    const org = await createOrg('ws-home');
    const res = await api.request('POST', '/cp/orgs/ws-home/workspaces', {
      json: { runtime: 'langgraph', tier: 4 },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/cp/workspaces/${res.body.id}`);
    expect(res.body).toMatchObject({
      orgId: org.id,
      name: 'langgraph',
      runtime: 'langgraph',
      tier: 4,
      powerState: 'running',
      generation: 1,
      status: { ready: false, reason: 'Pending', conditions: [] },
    });
    expect(await workspaceRow(res.body.id)).toMatchObject({ org_id: org.id, runtime: 'langgraph', tier: 4 });

    const one = await api.request('GET', `/cp/workspaces/${res.body.id}`);
    expect(one.status).toBe(200);
    expect(one.body).toEqual(res.body);
    const parent = await api.request('GET', '/cp/orgs/ws-home');
    expect(parent.body.workspaces).toEqual([res.body]);
  });

  it('accepts every known runtime and any tier from 1 to 10 as requested', async () => {
    await createOrg('runtimes');
    for (const [i, runtime] of KNOWN_RUNTIMES.entries()) {
      const ws = await createWorkspace('runtimes', { runtime, tier: (i % 10) + 1, name: `ws ${i}` });
      expect(ws).toMatchObject({ runtime, tier: (i % 10) + 1, name: `ws ${i}` });
    }
    const ten = await createWorkspace('runtimes', { runtime: 'hermes', tier: 10 });
    expect((await workspaceRow(ten.id)).tier).toBe(10);
  });

  it('404s a workspace for an unknown org and an unknown workspace id', async () => {
    const res = await api.request('POST', '/cp/orgs/nobody-here/workspaces', {
      json: { runtime: 'hermes', tier: 3 },
    });
    expect(res.status).toBe(404);
    const ws = await api.request('GET', '/cp/workspaces/00000000-0000-4000-8000-000000000000');
    expect(ws.status).toBe(404);
    expect(ws.body.error.code).toBe('NotFound');
  });

  it('changes tier and power state in one generation; stop/start are idempotent', async () => {
    await createOrg('spec-change');
    const ws = await createWorkspace('spec-change');
    const patched = await api.request('PATCH', `/cp/workspaces/${ws.id}`, {
      json: { tier: 2, powerState: 'stopped' },
    });
    expect(patched.status).toBe(202);
    expect(patched.body).toMatchObject({ tier: 2, powerState: 'stopped', generation: 2 });
    expect(await workspaceRow(ws.id)).toMatchObject({ tier: 2, power_state: 'stopped', generation: 2 });

    const stopAgain = await api.request('POST', `/cp/workspaces/${ws.id}/stop`);
    expect(stopAgain.status).toBe(202);
    expect(stopAgain.body).toMatchObject({ powerState: 'stopped', generation: 2 });

    const start = await api.request('POST', `/cp/workspaces/${ws.id}/start`, {
      headers: { 'content-type': 'application/json' },
    });
    expect(start.status).toBe(202);
    expect(await workspaceRow(ws.id)).toMatchObject({ power_state: 'running', generation: 3 });
  });

  it('deletes a workspace: 202 twice, frozen spec, then 404 once purged', async () => {
    const org = await createOrg('ws-delete');
    const ws = await createWorkspace('ws-delete');
    const first = await api.request('DELETE', `/cp/workspaces/${ws.id}`);
    expect(first.status).toBe(202);
    expect(first.body.deletionRequestedAt).not.toBeNull();
    expect(first.body.status).toMatchObject({ ready: false, reason: 'Deleting' });
    const second = await api.request('DELETE', `/cp/workspaces/${ws.id}`);
    expect(second.status).toBe(202);
    expect(second.body.deletionRequestedAt).toBe(first.body.deletionRequestedAt);

    const patch = await api.request('PATCH', `/cp/workspaces/${ws.id}`, { json: { tier: 4 } });
    expect(patch.status).toBe(409);
    expect(patch.body.error.code).toBe('WorkspaceDeleting');
    expect((await workspaceRow(ws.id)).tier).toBe(3);

    await desired.purge({ kind: 'workspace', id: ws.id });
    expect((await api.request('GET', `/cp/workspaces/${ws.id}`)).status).toBe(404);
    expect((await api.request('DELETE', `/cp/workspaces/${ws.id}`)).status).toBe(404);
    const parent = await api.request('GET', `/cp/orgs/${org.slug}`);
    expect(parent.body.workspaces).toEqual([]);
  });
});

describe('org deletion', () => {
  it('202 → purge → 404 → the slug is reusable', async () => {
    const org = await createOrg('doomed');
    const ws = await createWorkspace('doomed');

    const first = await api.request('DELETE', '/cp/orgs/doomed');
    expect(first.status).toBe(202);
    expect(first.body.deletionRequestedAt).not.toBeNull();
    expect(first.body.status.reason).toBe('Deleting');
    expect(first.body.workspaces[0]).toMatchObject({ id: ws.id, status: { reason: 'Deleting' } });
    expect((await workspaceRow(ws.id)).deletion_requested_at).not.toBeNull();

    const again = await api.request('DELETE', '/cp/orgs/doomed');
    expect(again.status).toBe(202);
    expect(again.body.deletionRequestedAt).toBe(first.body.deletionRequestedAt);
    expect(again.body.generation).toBe(first.body.generation);

    // While deleting: no new workspaces, no power changes, and the slug is still held.
    const addWs = await api.request('POST', '/cp/orgs/doomed/workspaces', {
      json: { runtime: 'hermes', tier: 3 },
    });
    expect(addWs.status).toBe(409);
    expect(addWs.body.error.code).toBe('OrgDeleting');
    const stop = await api.request('POST', '/cp/admin/tenants/doomed/stop');
    expect(stop.status).toBe(409);
    const dup = await api.request('POST', '/cp/orgs', { json: { slug: 'doomed' } });
    expect(dup.status).toBe(409);
    expect(dup.body.error).toEqual({
      code: 'SlugBeingReleased',
      message: expect.stringMatching(/being deleted/),
    });
    expect(dup.body.error.message).not.toMatch(/live org/);

    await desired.purge({ kind: 'org', id: org.id });
    expect((await api.request('GET', '/cp/orgs/doomed')).status).toBe(404);
    expect((await api.request('DELETE', '/cp/orgs/doomed')).status).toBe(404);
    expect((await api.request('GET', `/cp/workspaces/${ws.id}`)).status).toBe(404);

    const reborn = await createOrg('doomed');
    expect(reborn.id).not.toBe(org.id);
    expect(reborn.workspaces).toEqual([]);
    const rows = await tdb.database.query<{ id: string; purged_at: Date | null }>(
      'SELECT id, purged_at FROM orgs WHERE slug = $1 ORDER BY created_at',
      ['doomed'],
    );
    expect(rows.map((r) => [r.id, r.purged_at !== null])).toEqual([
      [org.id, true],
      [reborn.id, false],
    ]);
  });
});

describe('tenant power', () => {
  it('stop and start set the desired power state; repeating one is a no-op', async () => {
    const org = await createOrg('sleepy');
    const stop = await api.request('POST', '/cp/admin/tenants/sleepy/stop');
    expect(stop.status).toBe(202);
    expect(stop.body).toMatchObject({ slug: 'sleepy', powerState: 'stopped', generation: 2 });
    expect(await orgRow(org.id)).toMatchObject({ power_state: 'stopped', generation: 2 });

    const stopAgain = await api.request('POST', '/cp/admin/tenants/sleepy/stop');
    expect(stopAgain.body).toMatchObject({ powerState: 'stopped', generation: 2 });

    const start = await api.request('POST', '/cp/admin/tenants/sleepy/start');
    expect(start.status).toBe(202);
    expect(await orgRow(org.id)).toMatchObject({ power_state: 'running', generation: 3 });
    expect((await api.request('POST', '/cp/admin/tenants/nobody/start')).status).toBe(404);
  });
});

describe('status composition', () => {
  it('shows per-controller conditions in dependency order, resource ids, and overall readiness', async () => {
    const org = await createOrg('composed');
    const ws = await createWorkspace('composed');
    const base = { ownerId: org.id, ownerKind: 'org' as const, orgId: org.id };
    await setStatus({ ...base, controller: 'secrets', ready: false, reason: 'WaitingForTunnel' });
    await setStatus({
      ...base,
      controller: 'tunnel',
      ready: true,
      reason: 'Available',
      externalIds: { tunnelId: 't-1' },
    });

    let res = await api.request('GET', '/cp/orgs/composed');
    expect(res.body.status).toMatchObject({ ready: false, reason: 'WaitingForTunnel' });
    expect(res.body.status.conditions.map((c: { controller: string }) => c.controller)).toEqual([
      'tunnel',
      'secrets',
    ]);
    expect(res.body.status.conditions[0]).toMatchObject({
      controller: 'tunnel',
      ready: true,
      reason: 'Available',
      message: 'tunnel says Available',
      observedGeneration: 1,
    });
    expect(Date.parse(res.body.status.conditions[0].lastReconciledAt)).not.toBeNaN();
    expect(res.body.status.resources.tunnel).toEqual({ tunnelId: 't-1' });
    expect(res.body.workspaces[0].status).toMatchObject({ ready: false, reason: 'Pending' });

    await setStatus({ ...base, controller: 'secrets', ready: true, reason: 'Available' });
    await setStatus({
      ownerId: ws.id,
      ownerKind: 'workspace',
      orgId: org.id,
      controller: 'instance',
      ready: true,
      reason: 'Running',
    });
    res = await api.request('GET', '/cp/orgs/composed');
    expect(res.body.status).toMatchObject({ ready: true, reason: 'Ready' });
    expect(res.body.workspaces[0].status).toMatchObject({ ready: true, reason: 'Ready' });
    const one = await api.request('GET', `/cp/workspaces/${ws.id}`);
    expect(one.body.status.conditions).toHaveLength(1);
  });
});

describe('admin', () => {
  it('stats count orgs, workspaces, ready, deleting and open orphans by kind', async () => {
    const before = (await api.request('GET', '/cp/admin/stats')).body;
    const ready = await createOrg('stats-ready');
    await createWorkspace('stats-ready');
    await createOrg('stats-doomed');
    await createWorkspace('stats-doomed');
    await api.request('DELETE', '/cp/orgs/stats-doomed');
    await setStatus({
      controller: 'tunnel',
      ownerId: ready.id,
      ownerKind: 'org',
      orgId: ready.id,
      ready: true,
      reason: 'Available',
    });
    await insertOrphan('ec2_instance', 'i-stats1');
    await insertOrphan('ec2_instance', 'i-stats2');
    await insertOrphan('cf_tunnel', 'tun-stats');
    await insertOrphan('route_table', 'rtb-stats');
    await insertOrphan('secret', 'sec-resolved', { resolved: true });

    const res = await api.request('GET', '/cp/admin/stats');
    expect(res.status).toBe(200);
    const after = res.body;
    expect(after.orgs - before.orgs).toBe(2);
    expect(after.workspaces - before.workspaces).toBe(2);
    expect(after.ready.orgs - before.ready.orgs).toBe(1);
    expect(after.ready.workspaces - before.ready.workspaces).toBe(0);
    expect(after.deleting.orgs - before.deleting.orgs).toBe(1);
    expect(after.deleting.workspaces - before.deleting.workspaces).toBe(1);
    expect(Object.keys(after.orphans).sort()).toEqual(
      ['cf_dns_record', 'cf_tunnel', 'ec2_instance', 'other', 'secret', 'security_group'].sort(),
    );
    const delta = (k: string) => after.orphans[k] - before.orphans[k];
    expect([delta('ec2_instance'), delta('cf_tunnel'), delta('other'), delta('secret')]).toEqual([
      2, 1, 1, 0,
    ]);
  });

  it('lists the orphan ledger: open rows by default, all with ?all=true, paginated', async () => {
    await insertOrphan('security_group', 'sg-ledger-open');
    await insertOrphan('secret', 'sec-ledger-deleted', { deleted: true });
    const open = await walk('/cp/admin/orphans?limit=2');
    const all = await walk('/cp/admin/orphans?limit=2&all=true');
    const ids = (rows: Json[]) => rows.map((r) => r.externalId);
    expect(ids(open)).toContain('sg-ledger-open');
    expect(ids(open)).not.toContain('sec-ledger-deleted');
    expect(ids(all)).toEqual(expect.arrayContaining(['sg-ledger-open', 'sec-ledger-deleted']));
    const dbOpen = await tdb.database.query<{ external_id: string }>(
      'SELECT external_id FROM orphans WHERE resolved_at IS NULL AND deleted_at IS NULL ORDER BY id',
    );
    expect(ids(open)).toEqual(dbOpen.map((r) => r.external_id));
    expect(all.find((r) => r.externalId === 'sec-ledger-deleted')).toMatchObject({
      kind: 'secret',
      env: 'test',
      reason: 'OwnerGone',
      resolvedAt: null,
    });
    expect(all.find((r) => r.externalId === 'sec-ledger-deleted').deletedAt).not.toBeNull();
  });
});

describe('health and metrics', () => {
  it('answers /healthz and /readyz without a token', async () => {
    const health = await fetch(`${api.url}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
    const ready = await fetch(`${api.url}/readyz`);
    expect([ready.status, await ready.json()]).toEqual([200, { status: 'ok', checks: { database: 'ok' } }]);
  });

  it('/readyz is 503 when the database does not answer', async () => {
    const broken = await startApi({
      ...tdb.database,
      ping: () => Promise.reject(new Error('connection refused')),
    });
    try {
      const res = await fetch(`${broken.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ status: 'unavailable', checks: { database: 'unreachable' } });
    } finally {
      await broken.close();
    }
  });

  it('serves no /metrics to API clients; its metrics listener exports counts that match the stats', async () => {
    expect((await api.request('GET', '/metrics')).status).toBe(404);
    // As `molecule-operator api` serves them: on METRICS_PORT, apart from the client port.
    const listener = await startProbeServer(
      {
        database: tdb.database,
        metrics: createMetrics({ defaults: false }),
        logger: createLogger({ level: 'silent' }),
        readiness: () => ({ ready: true, details: {} }),
      },
      0,
      '127.0.0.1',
    );
    onTestFinished(() => listener.close());
    const res = await fetch(`http://127.0.0.1:${listener.port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    const stats = (await api.request('GET', '/cp/admin/stats')).body;
    const gauge = (kind: string, state: string) => {
      const m = new RegExp(
        `^molecule_desired_objects\\{kind="${kind}",state="${state}"\\} (\\d+)$`,
        'm',
      ).exec(text);
      return m ? Number(m[1]) : undefined;
    };
    expect(gauge('org', 'total')).toBe(stats.orgs);
    expect(gauge('workspace', 'total')).toBe(stats.workspaces);
    expect(gauge('org', 'ready')).toBe(stats.ready.orgs);
    expect(gauge('org', 'deleting')).toBe(stats.deleting.orgs);
    expect(gauge('workspace', 'deleting')).toBe(stats.deleting.workspaces);
    expect(text).toContain('molecule_orphan_resources');
  });
});

describe('server hygiene', () => {
  it('refuses to build without CP_ADMIN_API_TOKEN', async () => {
    await expect(
      buildApiServer({
        config: loadConfig({}),
        database: tdb.database,
        metrics: createMetrics({ defaults: false }),
        logger: createLogger({ level: 'silent' }),
      }),
    ).rejects.toThrow(/CP_ADMIN_API_TOKEN/);
  });

  it('answers an unexpected failure with a bare 500 and logs it', async () => {
    // Every query fails inside the handler, with internals in the message.
    const internals = 'connect ECONNREFUSED 10.0.0.5:5432 (pool exhausted)';
    const db = new Proxy({} as Database['db'], {
      get() {
        throw new Error(internals);
      },
    });
    const broken = await startApi({ ...tdb.database, db });
    try {
      const res = await broken.request('GET', '/cp/orgs');
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: { code: 'Internal', message: 'internal error' } });
      const errors = broken.logs.map((l) => JSON.parse(l)).filter((l) => l.level === 50);
      expect(errors.map((l) => l.err?.message)).toEqual([internals]);
    } finally {
      await broken.close();
    }
  });

  it('never logs the token, a wrong token, or request bodies', async () => {
    const marker = 'body-marker-5d1e';
    await api.request('POST', '/cp/orgs', { json: { slug: 'logged', name: marker } });
    await api.request('POST', '/cp/orgs', { json: { slug: 'x', name: marker } });
    await api.request('GET', '/cp/orgs', { headers: { authorization: 'Bearer wrong-token-9b2c4a' } });
    const logs = api.logs.join('\n');
    expect(api.logs.length).toBeGreaterThan(10);
    expect(logs).toContain('/cp/orgs');
    expect(logs).not.toContain(TEST_TOKEN);
    expect(logs).not.toContain('wrong-token-9b2c4a');
    expect(logs).not.toContain(marker);
    expect(AUTH.authorization).toContain(TEST_TOKEN);
  });
});

async function insertOrphan(
  kind: string,
  externalId: string,
  close: { resolved?: boolean; deleted?: boolean } = {},
) {
  await tdb.database.query(
    `INSERT INTO orphans (kind, external_id, env, reason, first_seen, last_seen, resolved_at, deleted_at)
     VALUES ($1, $2, 'test', 'OwnerGone', now(), now(), $3, $4)`,
    [kind, externalId, close.resolved ? new Date() : null, close.deleted ? new Date() : null],
  );
}

async function walk(path: string): Promise<Json[]> {
  const items: Json[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const res: ApiResponse = await api.request('GET', cursor ? `${path}&cursor=${cursor}` : path);
    expect(res.status).toBe(200);
    items.push(...res.body.items);
    cursor = res.body.nextCursor;
    if (!cursor) return items;
  }
  throw new Error('pagination did not end');
}
