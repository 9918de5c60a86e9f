import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PinRepository } from '../../src/db/pins.js';
import { KNOWN_RUNTIMES } from '../../src/provisioning/runtimes.js';
import { startApi, type TestApi } from '../helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { snapshotTables } from '../helpers/tables.js';

let tdb: TestDatabase;
let api: TestApi;

const IMAGE = 'ghcr.io/molecule-ai/hermes:1.4.2';
const IMAGE_2 = `ghcr.io/molecule-ai/hermes:1.5.0@sha256:${'ab'.repeat(32)}`;
const AMI = 'ami-0123456789abcdef0';
const AMI_2 = 'ami-0a1b2c3d';

beforeAll(async () => {
  tdb = await createTestDatabase();
  api = await startApi(tdb.database);
});

afterAll(async () => {
  await api?.close();
  await tdb?.drop();
});

beforeEach(async () => {
  await tdb.database.query('TRUNCATE runtime_image_pins, ami_pins, pin_changes');
});

const audit = async () =>
  (await tdb.database.query<Record<string, unknown>>(
    'SELECT pin, runtime, region, action, old_value, new_value, actor FROM pin_changes ORDER BY id',
  )) as Record<string, unknown>[];

describe('runtime image pins', () => {
  it('sets, changes, lists and removes a pin, each change audited with its before and after', async () => {
    const created = await api.request('PUT', '/cp/admin/pins/runtime-images/hermes', {
      json: { image: IMAGE },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ runtime: 'hermes', image: IMAGE, changed: true, previous: null });

    const changed = await api.request('PUT', '/cp/admin/pins/runtime-images/hermes', {
      json: { image: IMAGE_2 },
    });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ image: IMAGE_2, changed: true, previous: IMAGE });

    // The same value again: nothing written, nothing audited.
    const same = await api.request('PUT', '/cp/admin/pins/runtime-images/hermes', {
      json: { image: IMAGE_2 },
    });
    expect(same.status).toBe(200);
    expect(same.body).toMatchObject({ changed: false, previous: IMAGE_2 });

    const tenant = await api.request('PUT', '/cp/admin/pins/runtime-images/tenant', {
      json: { image: 'ghcr.io/molecule-ai/platform-tenant:2026.12.1' },
    });
    expect(tenant.status).toBe(201);

    const list = await api.request('GET', '/cp/admin/pins');
    expect(list.status).toBe(200);
    expect(list.body.amis).toEqual([]);
    expect(
      list.body.runtimeImages.map((p: { runtime: string; image: string }) => [p.runtime, p.image]),
    ).toEqual([
      ['hermes', IMAGE_2],
      ['tenant', 'ghcr.io/molecule-ai/platform-tenant:2026.12.1'],
    ]);
    expect(
      await tdb.database.query('SELECT runtime, image FROM runtime_image_pins ORDER BY runtime'),
    ).toEqual([
      { runtime: 'hermes', image: IMAGE_2 },
      { runtime: 'tenant', image: 'ghcr.io/molecule-ai/platform-tenant:2026.12.1' },
    ]);

    const removed = await api.request('DELETE', '/cp/admin/pins/runtime-images/hermes');
    expect(removed.status).toBe(200);
    expect(removed.body).toEqual({ runtime: 'hermes', previous: IMAGE_2 });
    expect((await api.request('DELETE', '/cp/admin/pins/runtime-images/hermes')).status).toBe(404);

    expect(await audit()).toEqual([
      row('runtime_image', 'hermes', null, 'set', null, IMAGE),
      row('runtime_image', 'hermes', null, 'set', IMAGE, IMAGE_2),
      row('runtime_image', 'tenant', null, 'set', null, 'ghcr.io/molecule-ai/platform-tenant:2026.12.1'),
      row('runtime_image', 'hermes', null, 'unset', IMAGE_2, null),
    ]);
  });
});

describe('AMI pins', () => {
  it('are keyed by runtime and region, audited like image pins', async () => {
    const a = await api.request('PUT', '/cp/admin/pins/amis/langgraph/us-east-1', { json: { amiId: AMI } });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({ runtime: 'langgraph', region: 'us-east-1', amiId: AMI, previous: null });
    const b = await api.request('PUT', '/cp/admin/pins/amis/langgraph/eu-west-1', { json: { amiId: AMI_2 } });
    expect(b.status).toBe(201);
    const c = await api.request('PUT', '/cp/admin/pins/amis/langgraph/us-east-1', { json: { amiId: AMI_2 } });
    expect(c.status).toBe(200);
    expect(c.body).toMatchObject({ amiId: AMI_2, changed: true, previous: AMI });

    const list = await api.request('GET', '/cp/admin/pins');
    expect(list.body.amis.map((p: Record<string, string>) => [p.runtime, p.region, p.amiId])).toEqual([
      ['langgraph', 'eu-west-1', AMI_2],
      ['langgraph', 'us-east-1', AMI_2],
    ]);

    const removed = await api.request('DELETE', '/cp/admin/pins/amis/langgraph/eu-west-1');
    expect(removed.status).toBe(200);
    expect(removed.body).toEqual({ runtime: 'langgraph', region: 'eu-west-1', previous: AMI_2 });
    expect((await api.request('DELETE', '/cp/admin/pins/amis/langgraph/eu-west-1')).status).toBe(404);
    expect(await audit()).toEqual([
      row('ami', 'langgraph', 'us-east-1', 'set', null, AMI),
      row('ami', 'langgraph', 'eu-west-1', 'set', null, AMI_2),
      row('ami', 'langgraph', 'us-east-1', 'set', AMI, AMI_2),
      row('ami', 'langgraph', 'eu-west-1', 'unset', AMI_2, null),
    ]);
  });
});

describe('bad input is a 400 with field errors, and writes nothing', () => {
  it.each([
    {
      reason: 'unknown runtime',
      method: 'PUT',
      path: '/cp/admin/pins/runtime-images/python',
      json: { image: IMAGE },
      field: 'params.runtime',
    },
    {
      reason: 'no registry',
      method: 'PUT',
      path: '/cp/admin/pins/runtime-images/hermes',
      json: { image: 'hermes:1' },
      field: 'body.image',
    },
    {
      reason: 'no version',
      method: 'PUT',
      path: '/cp/admin/pins/runtime-images/hermes',
      json: { image: 'ghcr.io/a/hermes' },
      field: 'body.image',
    },
    {
      reason: 'shell in the tag',
      method: 'PUT',
      path: '/cp/admin/pins/runtime-images/hermes',
      json: { image: 'ghcr.io/a/b:1;reboot' },
      field: 'body.image',
    },
    {
      reason: 'bad digest',
      method: 'PUT',
      path: '/cp/admin/pins/runtime-images/hermes',
      json: { image: 'ghcr.io/a/b@sha256:abc' },
      field: 'body.image',
    },
    {
      reason: 'image not a string',
      method: 'PUT',
      path: '/cp/admin/pins/runtime-images/hermes',
      json: { image: 7 },
      field: 'body.image',
    },
    {
      reason: 'image missing',
      method: 'PUT',
      path: '/cp/admin/pins/runtime-images/hermes',
      json: {},
      field: 'body.image',
    },
    {
      reason: 'unknown field',
      method: 'PUT',
      path: '/cp/admin/pins/runtime-images/hermes',
      json: { image: IMAGE, tag: 'x' },
      field: 'body.tag',
    },
    {
      reason: 'body not an object',
      method: 'PUT',
      path: '/cp/admin/pins/runtime-images/hermes',
      json: [IMAGE],
      field: 'body',
    },
    {
      reason: 'AMI id too short',
      method: 'PUT',
      path: '/cp/admin/pins/amis/hermes/us-east-1',
      json: { amiId: 'ami-0123' },
      field: 'body.amiId',
    },
    {
      reason: 'AMI id of 12 digits',
      method: 'PUT',
      path: '/cp/admin/pins/amis/hermes/us-east-1',
      json: { amiId: 'ami-0123456789ab' },
      field: 'body.amiId',
    },
    {
      reason: 'not an AMI id',
      method: 'PUT',
      path: '/cp/admin/pins/amis/hermes/us-east-1',
      json: { amiId: 'snap-0123abcd' },
      field: 'body.amiId',
    },
    {
      reason: 'bad region',
      method: 'PUT',
      path: '/cp/admin/pins/amis/hermes/mars-1',
      json: { amiId: AMI },
      field: 'params.region',
    },
    {
      reason: 'AMI of an unknown runtime',
      method: 'PUT',
      path: '/cp/admin/pins/amis/python/us-east-1',
      json: { amiId: AMI },
      field: 'params.runtime',
    },
    {
      reason: 'unset of an unknown runtime',
      method: 'DELETE',
      path: '/cp/admin/pins/runtime-images/Hermes',
      field: 'params.runtime',
    },
    {
      reason: 'unset in a bad region',
      method: 'DELETE',
      path: '/cp/admin/pins/amis/hermes/US-EAST-1',
      field: 'params.region',
    },
    {
      reason: 'bad audit cursor',
      method: 'GET',
      path: '/cp/admin/pins/audit?cursor=nope!',
      field: 'query.cursor',
    },
    { reason: 'bad audit limit', method: 'GET', path: '/cp/admin/pins/audit?limit=0', field: 'query.limit' },
  ])('$reason', async ({ method, path, json, field }) => {
    await api.request('PUT', '/cp/admin/pins/runtime-images/hermes', { json: { image: IMAGE } });
    const before = await snapshotTables(tdb.database);
    const res = await api.request(method, path, json === undefined ? {} : { json });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('ValidationFailed');
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(field);
    expect(await snapshotTables(tdb.database)).toEqual(before);
  });

  it('needs the bearer token', async () => {
    const res = await api.request('PUT', '/cp/admin/pins/runtime-images/hermes', {
      json: { image: IMAGE },
      headers: { authorization: 'Bearer wrong' },
    });
    expect(res.status).toBe(401);
    expect((await api.request('GET', '/cp/admin/pins', { headers: { authorization: '' } })).status).toBe(401);
    expect(await tdb.database.query('SELECT * FROM runtime_image_pins')).toEqual([]);
  });
});

describe('notifications', () => {
  it('every change of a pin notifies the controllers once, with what changed; a no-op says nothing', async () => {
    const got: unknown[] = [];
    const sub = await tdb.database.listen('molecule_desired', { onMessage: (p) => got.push(JSON.parse(p)) });
    try {
      await api.request('PUT', '/cp/admin/pins/runtime-images/deepagents', { json: { image: IMAGE } });
      await api.request('PUT', '/cp/admin/pins/runtime-images/deepagents', { json: { image: IMAGE } });
      await api.request('PUT', '/cp/admin/pins/amis/tenant/eu-west-1', { json: { amiId: AMI } });
      await api.request('DELETE', '/cp/admin/pins/runtime-images/deepagents');
      // A change made in SQL (an operator at psql) is announced too.
      await tdb.database.query(`UPDATE ami_pins SET ami_id = $1`, [AMI_2]);
      await tdb.database.query(`UPDATE ami_pins SET updated_at = now()`);
      const want = [
        { kind: 'pin', pin: 'runtime_image', runtime: 'deepagents', op: 'INSERT' },
        { kind: 'pin', pin: 'ami', runtime: 'tenant', region: 'eu-west-1', op: 'INSERT' },
        { kind: 'pin', pin: 'runtime_image', runtime: 'deepagents', op: 'DELETE' },
        { kind: 'pin', pin: 'ami', runtime: 'tenant', region: 'eu-west-1', op: 'UPDATE' },
      ];
      const deadline = Date.now() + 5_000;
      while (got.length < want.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      // One more round trip: a notification that should not exist would have arrived by now.
      await tdb.database.query(`SELECT pg_notify('molecule_desired', '{"kind":"marker"}')`);
      while (!got.some((m) => (m as { kind: string }).kind === 'marker') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      expect(got).toEqual([...want, { kind: 'marker' }]);
    } finally {
      await sub.close();
    }
  });
});

describe('the OpenAPI description', () => {
  it('documents the pin routes from the schemas that validate them', async () => {
    // biome-ignore lint/suspicious/noExplicitAny: the document is walked as plain JSON
    const doc: any = await (await fetch(`${api.url}/openapi.json`)).json();
    const put = doc.paths['/cp/admin/pins/runtime-images/{runtime}'].put;
    expect(put.parameters[0]).toMatchObject({ name: 'runtime', in: 'path', required: true });
    expect(put.parameters[0].schema.enum).toEqual(['tenant', ...KNOWN_RUNTIMES]);
    expect(put.requestBody.content['application/json'].schema.required).toEqual(['image']);
    expect(Object.keys(put.responses).sort()).toEqual(expect.arrayContaining(['200', '201', '400', '401']));
    const ami = doc.paths['/cp/admin/pins/amis/{runtime}/{region}'];
    expect(Object.keys(ami).sort()).toEqual(['delete', 'put']);
    expect(ami.put.requestBody.content['application/json'].schema.required).toEqual(['amiId']);
    expect(doc.paths['/cp/admin/pins'].get.operationId).toBe('listPins');
    expect(
      doc.paths['/cp/admin/pins/audit'].get.parameters.map((p: { name: string }) => p.name).sort(),
    ).toEqual(['cursor', 'limit']);
    const keys = (o: object) => Object.keys(o).sort();
    const props = (name: string) => Object.keys(doc.components.schemas[name].properties).sort();
    await api.request('PUT', '/cp/admin/pins/amis/hermes/us-east-1', { json: { amiId: AMI } });
    const list = await api.request('GET', '/cp/admin/pins');
    expect(keys(list.body)).toEqual(props('PinList'));
    expect(keys(list.body.amis[0])).toEqual(props('AmiPin'));
    expect(keys((await api.request('GET', '/cp/admin/pins/audit')).body.items[0])).toEqual(
      props('PinChange'),
    );
  });
});

describe('GET /cp/admin/pins/audit', () => {
  it('pages through the trail, newest first', async () => {
    for (let i = 1; i <= 5; i++)
      await api.request('PUT', '/cp/admin/pins/runtime-images/crewai', {
        json: { image: `ghcr.io/a/crewai:${i}` },
      });
    const first = await api.request('GET', '/cp/admin/pins/audit?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.items.map((r: { newValue: string }) => r.newValue)).toEqual([
      'ghcr.io/a/crewai:5',
      'ghcr.io/a/crewai:4',
    ]);
    expect(first.body.items[0]).toMatchObject({
      pin: 'runtime_image',
      runtime: 'crewai',
      region: null,
      action: 'set',
      oldValue: 'ghcr.io/a/crewai:4',
      actor: 'api',
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    const seen: string[] = first.body.items.map((r: { newValue: string }) => r.newValue);
    let cursor = first.body.nextCursor;
    while (cursor) {
      const page = await api.request('GET', `/cp/admin/pins/audit?limit=2&cursor=${cursor}`);
      seen.push(...page.body.items.map((r: { newValue: string }) => r.newValue));
      cursor = page.body.nextCursor;
    }
    expect(seen).toEqual([5, 4, 3, 2, 1].map((i) => `ghcr.io/a/crewai:${i}`));
  });
});

describe('concurrent changes of one pin', () => {
  it('are serialised: every audit row names the value it replaced', async () => {
    const repo = new PinRepository(tdb.database.db);
    const values = Array.from({ length: 8 }, (_, i) => `ghcr.io/a/autogen:${i}`);
    await Promise.all(values.map((v) => repo.set({ pin: 'runtime_image', runtime: 'autogen' }, v, 'test')));
    const rows = await tdb.database.query<{ old_value: string | null; new_value: string }>(
      'SELECT old_value, new_value FROM pin_changes ORDER BY id',
    );
    expect(rows).toHaveLength(values.length);
    // A chain: each change starts from the one before it, the first from nothing.
    expect(rows[0]!.old_value).toBeNull();
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.old_value).toBe(rows[i - 1]!.new_value);
    const [pin] = await tdb.database.query<{ image: string }>('SELECT image FROM runtime_image_pins');
    expect(pin!.image).toBe(rows.at(-1)!.new_value);
  });
});

function row(
  pin: string,
  runtime: string,
  region: string | null,
  action: string,
  oldValue: string | null,
  newValue: string | null,
) {
  return { pin, runtime, region, action, old_value: oldValue, new_value: newValue, actor: 'api' };
}
