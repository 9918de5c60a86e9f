import { CreateTagsCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import Cloudflare from 'cloudflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, failure, type Harness, launch, startHarness } from './helpers.js';

let h: Harness;
let account: { account_id: string };
let zone: { zone_id: string };
let n = 0;
beforeAll(async () => {
  h = await startHarness();
  account = { account_id: h.sim.seed.cloudflareAccountId };
  zone = { zone_id: h.sim.seed.cloudflareZoneId };
});
afterAll(async () => {
  await h.close();
});

const tunnels = () => h.cf.zeroTrust.tunnels.cloudflared;

async function createTunnel(name = `molecule-test-${++n}`) {
  return tunnels().create({ ...account, name, config_src: 'cloudflare' });
}

describe('cfd_tunnel', () => {
  it('creates a remotely managed tunnel with credentials and a token', async () => {
    const t = await createTunnel('molecule-dev-org-1');
    expect(t.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(t).toMatchObject({
      name: 'molecule-dev-org-1',
      config_src: 'cloudflare',
      deleted_at: null,
      tun_type: 'cfd_tunnel',
      status: 'inactive',
    });
    expect(t.account_tag).toBe(h.sim.seed.cloudflareAccountId);
    const extra = t as unknown as { token: string; credentials_file: { TunnelSecret: string } };
    const decoded = JSON.parse(Buffer.from(extra.token, 'base64').toString()) as {
      a: string;
      t: string;
      s: string;
    };
    expect(decoded).toEqual({
      a: h.sim.seed.cloudflareAccountId,
      t: t.id,
      s: extra.credentials_file.TunnelSecret,
    });
    expect(Buffer.from(decoded.s, 'base64').length).toBeGreaterThanOrEqual(32);
  });

  it('answers a live name conflict with 409 code 1013', async () => {
    const t = await createTunnel();
    const e = await failure(createTunnel(t.name));
    expect(e).toBeInstanceOf(Cloudflare.ConflictError);
    expect(e.status).toBe(409);
    expect(e.errors![0]!.code).toBe(1013);
  });

  it('is retried twice by the SDK on 409 before ConflictError surfaces', async () => {
    const t = await createTunnel();
    const retrying = new Cloudflare({ apiToken: 'sim-cloudflare-token', baseURL: h.sim.cloudflareBaseUrl });
    h.sim.resetCalls();
    const e = await failure(
      retrying.zeroTrust.tunnels.cloudflared.create({ ...account, name: t.name!, config_src: 'cloudflare' }),
    );
    expect(e).toBeInstanceOf(Cloudflare.ConflictError);
    expect(h.sim.calls()).toEqual([
      { service: 'cloudflare', operation: 'POST cfd_tunnel', status: 409, count: 3 },
    ]);
  });

  it('gets a tunnel and its token as a plain string; unknown ids are 404', async () => {
    const t = await createTunnel();
    expect((await tunnels().get(t.id!, account)).name).toBe(t.name);
    const token = await tunnels().token.get(t.id!, account);
    expect(typeof token).toBe('string');
    expect(JSON.parse(Buffer.from(token as string, 'base64').toString()).t).toBe(t.id);
    const e = await failure(tunnels().get('00000000-0000-4000-8000-000000000000', account));
    expect(e).toBeInstanceOf(Cloudflare.NotFoundError);
  });

  it('soft-deletes: deleted_at is set, the tunnel stays readable and its name is free again', async () => {
    const t = await createTunnel();
    const deleted = await tunnels().delete(t.id!, account);
    expect(deleted.deleted_at).not.toBeNull();
    expect((await tunnels().get(t.id!, account)).deleted_at).toBe(deleted.deleted_at);
    const again = await createTunnel(t.name);
    expect(again.id).not.toBe(t.id);
  });

  it('lists by exact name; without is_deleted the deleted tunnels are included', async () => {
    const t = await createTunnel('same-name-listing');
    await tunnels().delete(t.id!, account);
    const live = await createTunnel('same-name-listing');
    const ids = async (q: { is_deleted?: boolean }) => {
      const out: string[] = [];
      for await (const x of tunnels().list({ ...account, name: 'same-name-listing', ...q })) out.push(x.id!);
      return out;
    };
    expect(await ids({})).toEqual([t.id, live.id]);
    expect(await ids({ is_deleted: false })).toEqual([live.id]);
    expect(await ids({ is_deleted: true })).toEqual([t.id]);
  });

  it('walks every page with for await and answers pages past the end with an empty result', async () => {
    for (let k = 0; k < 23; k++) await createTunnel(`paged-${k}`);
    const names: string[] = [];
    for await (const x of tunnels().list({ ...account, include_prefix: 'paged-', per_page: 10 }))
      names.push(x.name!);
    expect(names).toHaveLength(23);
    const past = await tunnels().list({ ...account, include_prefix: 'paged-', per_page: 10, page: 9 });
    expect(past.result).toEqual([]);
    expect(past.result_info).toMatchObject({
      page: 9,
      per_page: 10,
      count: 0,
      total_count: 23,
      total_pages: 3,
    });
  });

  it('refuses to delete a tunnel with active connections (1022) until its instance is gone', async () => {
    const t = await createTunnel();
    const i = await launch(h, { TunnelID: t.id! });
    await eventually(async () => (await tunnels().get(t.id!, account)).status === 'healthy');
    const e = await failure(tunnels().delete(t.id!, account));
    expect(e).toBeInstanceOf(Cloudflare.BadRequestError);
    expect(e.errors![0]).toMatchObject({
      code: 1022,
      message: 'Cannot delete tunnel because it has active connections',
    });
    await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [i.InstanceId!] }));
    expect((await tunnels().delete(t.id!, account)).deleted_at).not.toBeNull();
  });

  it('counts a TunnelID tag added later through CreateTags', async () => {
    const t = await createTunnel();
    const i = await launch(h);
    await h.ec2.send(
      new CreateTagsCommand({ Resources: [i.InstanceId!], Tags: [{ Key: 'TunnelID', Value: t.id! }] }),
    );
    await eventually(async () => (await tunnels().get(t.id!, account)).status === 'healthy');
    const e = await failure(tunnels().delete(t.id!, account));
    expect(e.errors![0]!.code).toBe(1022);
  });
});

/** NOTE: the SDK types require `hostname` on every rule, but the catch-all must not have one. */
const CATCH_ALL = { service: 'http_status:404' } as { hostname: string; service: string };

describe('tunnel configurations', () => {
  it('replaces the configuration on PUT and increments the version', async () => {
    const t = await createTunnel();
    const first = await tunnels().configurations.update(t.id!, {
      ...account,
      config: {
        ingress: [{ hostname: 'a.moleculesai.app', service: 'http://localhost:8080' }, CATCH_ALL],
      },
    });
    expect(first.version).toBe(1);
    const second = await tunnels().configurations.update(t.id!, {
      ...account,
      config: { ingress: [CATCH_ALL] },
    });
    expect(second.version).toBe(2);
    const got = await tunnels().configurations.get(t.id!, account);
    expect(got.version).toBe(2);
    expect(got.config?.ingress).toEqual([{ service: 'http_status:404' }]);
  });

  it('rejects a last ingress rule that is not a catch-all with 400 code 1056', async () => {
    const t = await createTunnel();
    const e = await failure(
      tunnels().configurations.update(t.id!, {
        ...account,
        config: { ingress: [{ hostname: 'a.moleculesai.app', service: 'http://localhost:8080' }] },
      }),
    );
    expect(e).toBeInstanceOf(Cloudflare.BadRequestError);
    expect(e.errors![0]).toEqual({
      code: 1056,
      message:
        'Bad Configuration: Validation failed: The last ingress rule must match all URLs (i.e. it should not have a hostname or path filter)',
    });
  });
});

describe('dns_records', () => {
  const records = () => h.cf.dns.records;

  it('expands relative names with the zone and returns the full record', async () => {
    const r = await records().create({
      ...zone,
      type: 'CNAME',
      name: 'acme',
      content: 'abc.cfargotunnel.com',
      proxied: true,
      ttl: 1,
      comment: 'molecule-operator env=dev org=1',
    });
    expect(r).toMatchObject({
      name: 'acme.moleculesai.app',
      type: 'CNAME',
      content: 'abc.cfargotunnel.com',
      proxied: true,
      proxiable: true,
      ttl: 1,
      comment: 'molecule-operator env=dev org=1',
    });
    expect(r.id).toMatch(/^[0-9a-f]{32}$/);
  });

  it('rejects a CNAME on a taken name (81053) and an identical record (81057)', async () => {
    await records().create({
      ...zone,
      type: 'CNAME',
      name: 'taken',
      content: 'one.cfargotunnel.com',
      proxied: true,
      ttl: 1,
    });
    const conflict = await failure(
      records().create({
        ...zone,
        type: 'CNAME',
        name: 'taken',
        content: 'two.cfargotunnel.com',
        proxied: true,
        ttl: 1,
      }),
    );
    expect(conflict.status).toBe(400);
    expect(conflict.errors![0]).toEqual({
      code: 81053,
      message: 'An A, AAAA, or CNAME record with that host already exists.',
    });
    const same = await failure(
      records().create({
        ...zone,
        type: 'CNAME',
        name: 'taken.moleculesai.app',
        content: 'one.cfargotunnel.com',
        proxied: true,
        ttl: 1,
      }),
    );
    expect(same.errors![0]!.code).toBe(81057);
  });

  it('filters lists by name.exact, type, comment and content', async () => {
    await records().create({
      ...zone,
      type: 'CNAME',
      name: 'filt-a',
      content: 'a.cfargotunnel.com',
      proxied: true,
      ttl: 1,
      comment: 'molecule-operator env=dev org=a',
    });
    await records().create({
      ...zone,
      type: 'A',
      name: 'filt-b',
      content: '192.0.2.1',
      proxied: false,
      ttl: 300,
      comment: 'hand made',
    });
    const names = async (q: Record<string, unknown>) => {
      const out: string[] = [];
      for await (const r of records().list({ ...zone, ...q } as Parameters<
        ReturnType<typeof records>['list']
      >[0]))
        out.push(r.name!);
      return out.filter((x) => x.startsWith('filt-'));
    };
    expect(await names({ name: { exact: 'filt-a.moleculesai.app' } })).toEqual(['filt-a.moleculesai.app']);
    expect(await names({ type: 'A' })).toEqual(['filt-b.moleculesai.app']);
    expect(await names({ comment: { startswith: 'molecule-operator env=dev' } })).toEqual([
      'filt-a.moleculesai.app',
    ]);
    expect(await names({ comment: { contains: 'HAND' } })).toEqual(['filt-b.moleculesai.app']);
    expect(await names({ comment: { exact: 'hand made' } })).toEqual(['filt-b.moleculesai.app']);
    expect(await names({ content: { exact: '192.0.2.1' } })).toEqual(['filt-b.moleculesai.app']);
    const legacy = await fetch(
      `${h.sim.cloudflareBaseUrl}/zones/${zone.zone_id}/dns_records?name=filt-a.moleculesai.app`,
      {
        headers: { authorization: 'Bearer anything' },
      },
    );
    const body = (await legacy.json()) as { success: boolean; result: { name: string }[] };
    expect(body.success).toBe(true);
    expect(body.result.map((r) => r.name)).toEqual(['filt-a.moleculesai.app']);
  });

  it('paginates with for await and returns an empty page past the end', async () => {
    for (let k = 0; k < 12; k++) {
      await records().create({
        ...zone,
        type: 'TXT',
        name: `page-${k}`,
        content: 'x',
        ttl: 1,
        comment: 'paging',
      });
    }
    const seen: string[] = [];
    for await (const r of records().list({ ...zone, comment: { exact: 'paging' }, per_page: 5 }))
      seen.push(r.id!);
    expect(new Set(seen).size).toBe(12);
    const past = await records().list({ ...zone, comment: { exact: 'paging' }, per_page: 5, page: 4 });
    expect(past.result).toEqual([]);
  });

  it('gets, updates (PUT), edits (PATCH) and deletes records; unknown ids are 404 code 81044', async () => {
    const r = await records().create({
      ...zone,
      type: 'CNAME',
      name: 'crud',
      content: 'old.cfargotunnel.com',
      proxied: true,
      ttl: 1,
      comment: 'c',
    });
    expect((await records().get(r.id!, zone)).content).toBe('old.cfargotunnel.com');
    const put = await records().update(r.id!, {
      ...zone,
      type: 'CNAME',
      name: 'crud',
      content: 'new.cfargotunnel.com',
      proxied: true,
      ttl: 1,
    });
    expect(put).toMatchObject({ content: 'new.cfargotunnel.com', comment: null });
    const patched = await records().edit(r.id!, {
      ...zone,
      type: 'CNAME',
      name: 'crud',
      comment: 'edited',
    } as Parameters<ReturnType<typeof records>['edit']>[1]);
    expect(patched).toMatchObject({ content: 'new.cfargotunnel.com', comment: 'edited' });
    expect(await records().delete(r.id!, zone)).toEqual({ id: r.id });
    const e = await failure(records().get(r.id!, zone));
    expect(e).toBeInstanceOf(Cloudflare.NotFoundError);
    expect(e.errors![0]).toEqual({ code: 81044, message: 'Record does not exist.' });
  });

  it('validates record content', async () => {
    const e = await failure(
      records().create({ ...zone, type: 'A', name: 'bad-a', content: 'not-an-ip', ttl: 1 }),
    );
    expect(e.status).toBe(400);
    expect(e.errors![0]!.code).toBe(1004);
  });
});

describe('routing and auth', () => {
  it('rejects unknown account and zone ids', async () => {
    const acct = await failure(tunnels().list({ account_id: 'ffffffffffffffffffffffffffffffff' }));
    expect(acct).toBeInstanceOf(Cloudflare.NotFoundError);
    expect(acct.errors![0]!.code).toBe(7003);
    const z = await failure(h.cf.dns.records.list({ zone_id: '00000000000000000000000000000000' }));
    expect(z.status).toBe(404);
    const malformed = await failure(h.cf.dns.records.list({ zone_id: 'nope' }));
    expect(malformed.status).toBe(400);
  });

  it('requires some credentials but accepts any bearer token', async () => {
    const res = await fetch(`${h.sim.cloudflareBaseUrl}/zones/${zone.zone_id}`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { code: number }[] }).errors[0]!.code).toBe(9106);
    const other = new Cloudflare({ apiToken: 'whatever', baseURL: h.sim.cloudflareBaseUrl, maxRetries: 0 });
    expect((await other.zones.get(zone)).name).toBe('moleculesai.app');
  });
});
