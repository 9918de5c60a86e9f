import { CLOUDFLARE_BUCKET } from './limits.js';
import { CfError, type Prepared, type SimContext, type SimRequest, type SimResponse } from './protocol.js';
import { SEED, SEED_ZONE_CREATED } from './seed.js';
import { type DnsRecord, dnsKey, type Instance, settle, type Tunnel } from './state.js';
import { iso } from './xml.js';

/**
 * Cloudflare API v4 under `/client/v4` (reference E): cfd_tunnel, tunnel configurations and
 * token, DNS records, plus zone lookup and token verify. Operation names in the call log and
 * fault keys are `<METHOD> <route>`, e.g. `POST cfd_tunnel`, `GET dns_records/:id`.
 */

interface Route {
  operation: string;
  mutating: boolean;
  target?: string;
  run(): unknown;
}

type Envelope = { result: unknown; result_info?: ResultInfo };
interface ResultInfo {
  page: number;
  per_page: number;
  count: number;
  total_count: number;
  total_pages: number;
}

function envelope(
  status: number,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): SimResponse {
  return { status, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}

function ok(result: unknown, resultInfo?: ResultInfo): SimResponse {
  return envelope(200, {
    success: true,
    errors: [],
    messages: [],
    result,
    ...(resultInfo ? { result_info: resultInfo } : {}),
  });
}

/**
 * Over Cloudflare's window (fault setting `cloudflareRateLimit`): 429 code 971 with only the
 * standard `retry-after` (whole seconds to the end of the window), no `retry-after-ms`.
 */
export function cfRateLimited(retryAfterSeconds: number): SimResponse {
  return cfErrorResponse(
    new CfError(429, { code: 971, message: 'Please wait and consider throttling your request speed' }),
    { 'retry-after': String(Math.max(1, Math.ceil(retryAfterSeconds))) },
  );
}

export function cfErrorResponse(e: CfError, headers: Record<string, string> = {}): SimResponse {
  return envelope(e.status, { success: false, errors: e.errors, messages: [], result: null }, headers);
}

const noRoute = (path: string) =>
  new CfError(
    404,
    { code: 7003, message: `Could not route to ${path}, perhaps your object identifier is invalid?` },
    { code: 7000, message: 'No route for that URI' },
  );

export function prepareCloudflare(ctx: SimContext, req: SimRequest): Prepared {
  let route: Route | CfError;
  try {
    route = routeFor(ctx, req);
  } catch (e) {
    route = e instanceof CfError ? e : new CfError(500, { code: 10_001, message: String(e) });
  }
  const method = req.method.toUpperCase();
  return {
    service: 'cloudflare',
    operation: route instanceof CfError ? `${method} unknown` : route.operation,
    mutating: route instanceof CfError ? false : route.mutating,
    target: route instanceof CfError ? undefined : route.target,
    bucket: { key: 'cloudflare', spec: CLOUDFLARE_BUCKET },
    run() {
      if (route instanceof CfError) return cfErrorResponse(route);
      try {
        checkAuth(req);
        const out = route.run() as Envelope;
        return ok(out.result, out.result_info);
      } catch (e) {
        if (e instanceof CfError) return cfErrorResponse(e);
        return cfErrorResponse(new CfError(500, { code: 10_001, message: `Internal error: ${String(e)}` }));
      }
    },
    throttled(retryAfterRealMs) {
      const ms = Math.max(1, Math.ceil(retryAfterRealMs));
      // NOTE: `retry-after-ms` is not sent by Cloudflare; the SDK prefers it, which keeps
      // simulated waits short while `retry-after` stays a real whole-second value.
      return cfErrorResponse(
        new CfError(429, { code: 971, message: 'Please wait and consider throttling your request speed' }),
        { 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))), 'retry-after-ms': String(ms) },
      );
    },
    failed: () => cfErrorResponse(new CfError(500, { code: 10_001, message: 'Internal server error' })),
  };
}

function checkAuth(req: SimRequest): void {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    if (/^Bearer\s+\S+/i.test(auth)) return;
    throw new CfError(400, {
      code: 6003,
      message: 'Invalid request headers',
      error_chain: [{ code: 6111, message: 'Invalid format for Authorization header' }],
    });
  }
  if (req.headers['x-auth-key'] && req.headers['x-auth-email']) return;
  if (req.headers['x-auth-user-service-key']) return;
  throw new CfError(400, {
    code: 9106,
    message: 'Missing X-Auth-Key, X-Auth-Email or Authorization headers',
  });
}

const HEX32 = /^[0-9a-f]{32}$/;

/**
 * NOTE: a malformed account/zone id answers 400 (7003 + 7000) and a well-formed unknown one
 * 404 with the same errors; real Cloudflare may answer 403 for ids the token cannot see.
 */
function checkScope(kind: 'account' | 'zone', id: string, path: string): void {
  const known = kind === 'account' ? SEED.cloudflareAccountId : SEED.cloudflareZoneId;
  if (id === known) return;
  const e = noRoute(path);
  throw HEX32.test(id) ? e : new CfError(400, ...e.errors);
}

function parseBody(req: SimRequest): Record<string, unknown> {
  if (req.body.trim() === '') return {};
  try {
    const v = JSON.parse(req.body) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new CfError(400, { code: 6007, message: 'Malformed JSON in request body' });
}

function routeFor(ctx: SimContext, req: SimRequest): Route {
  const method = req.method.toUpperCase();
  const rel = req.path.replace(/^\/client\/v4/, '').replace(/\/+$/, '');
  const parts = rel
    .split('/')
    .filter((x) => x !== '')
    .map(decodeURIComponent);
  const path = `/client/v4${rel}`;
  const is = (m: string, n: number) => method === m && parts.length === n;

  if (parts[0] === 'user' && parts[1] === 'tokens' && parts[2] === 'verify' && is('GET', 3)) {
    return { operation: 'GET tokens/verify', mutating: false, run: () => ({ result: tokenVerify() }) };
  }
  if (parts[0] === 'accounts' && parts[2] === 'tokens' && parts[3] === 'verify' && is('GET', 4)) {
    checkScope('account', parts[1]!, path);
    return { operation: 'GET tokens/verify', mutating: false, run: () => ({ result: tokenVerify() }) };
  }
  if (parts[0] === 'accounts' && parts[2] === 'cfd_tunnel' && parts.length >= 3) {
    checkScope('account', parts[1]!, path);
    const id = parts[3];
    const sub = parts[4];
    if (is('POST', 3)) {
      const body = parseBody(req);
      return {
        operation: 'POST cfd_tunnel',
        mutating: true,
        target: String(body.name ?? ''),
        run: () => createTunnel(ctx, body),
      };
    }
    if (is('GET', 3))
      return { operation: 'GET cfd_tunnel', mutating: false, run: () => listTunnels(ctx, req.query) };
    if (id !== undefined && parts.length === 4) {
      if (method === 'GET')
        return {
          operation: 'GET cfd_tunnel/:id',
          mutating: false,
          target: id,
          run: () => getTunnel(ctx, id),
        };
      if (method === 'DELETE') {
        return {
          operation: 'DELETE cfd_tunnel/:id',
          mutating: true,
          target: id,
          run: () => deleteTunnel(ctx, id, req.query.get('cascade') === 'true'),
        };
      }
      if (method === 'PATCH') {
        const body = parseBody(req);
        return {
          operation: 'PATCH cfd_tunnel/:id',
          mutating: true,
          target: id,
          run: () => editTunnel(ctx, id, body),
        };
      }
    }
    if (id !== undefined && sub === 'token' && is('GET', 5)) {
      return {
        operation: 'GET cfd_tunnel/:id/token',
        mutating: false,
        target: id,
        run: () => tunnelToken(ctx, id),
      };
    }
    if (id !== undefined && sub === 'configurations' && parts.length === 5) {
      if (method === 'GET') {
        return {
          operation: 'GET cfd_tunnel/:id/configurations',
          mutating: false,
          target: id,
          run: () => getConfig(ctx, id),
        };
      }
      if (method === 'PUT') {
        const body = parseBody(req);
        return {
          operation: 'PUT cfd_tunnel/:id/configurations',
          mutating: true,
          target: id,
          run: () => putConfig(ctx, id, body),
        };
      }
    }
    if (id !== undefined && sub === 'connections' && is('DELETE', 5)) {
      return {
        operation: 'DELETE cfd_tunnel/:id/connections',
        mutating: true,
        target: id,
        run: () => clearConnections(ctx, id, req.query.get('client_id')),
      };
    }
    if (id !== undefined && sub === 'connections' && is('GET', 5)) {
      return {
        operation: 'GET cfd_tunnel/:id/connections',
        mutating: false,
        target: id,
        run: () => connections(ctx, id),
      };
    }
  }
  if (parts[0] === 'zones' && parts.length === 1 && method === 'GET') {
    return { operation: 'GET zones', mutating: false, run: () => listZones(req.query) };
  }
  if (parts[0] === 'zones' && parts.length >= 2) {
    checkScope('zone', parts[1]!, path);
    if (is('GET', 2)) return { operation: 'GET zones/:id', mutating: false, run: () => ({ result: zone() }) };
    if (parts[2] === 'dns_records') {
      const id = parts[3];
      if (is('POST', 3)) {
        const body = parseBody(req);
        return {
          operation: 'POST dns_records',
          mutating: true,
          target: typeof body.name === 'string' ? expandName(body.name) : undefined,
          run: () => createRecord(ctx, body),
        };
      }
      if (is('GET', 3))
        return { operation: 'GET dns_records', mutating: false, run: () => listRecords(ctx, req.query) };
      if (id !== undefined && parts.length === 4) {
        if (method === 'GET')
          return {
            operation: 'GET dns_records/:id',
            mutating: false,
            target: id,
            run: () => getRecord(ctx, id),
          };
        if (method === 'DELETE') {
          return {
            operation: 'DELETE dns_records/:id',
            mutating: true,
            target: id,
            run: () => deleteRecord(ctx, id),
          };
        }
        if (method === 'PUT' || method === 'PATCH') {
          const body = parseBody(req);
          return {
            operation: `${method} dns_records/:id`,
            mutating: true,
            target: typeof body.name === 'string' ? expandName(body.name) : id,
            run: () => updateRecord(ctx, id, body, method === 'PUT'),
          };
        }
      }
    }
  }
  throw noRoute(path);
}

function tokenVerify(): unknown {
  return { id: 'c0ffee00c0ffee00c0ffee00c0ffee00', status: 'active' };
}

function zone(): unknown {
  return {
    id: SEED.cloudflareZoneId,
    name: SEED.zoneName,
    status: 'active',
    paused: false,
    type: 'full',
    development_mode: 0,
    name_servers: ['ada.ns.cloudflare.com', 'bob.ns.cloudflare.com'],
    original_name_servers: null,
    created_on: SEED_ZONE_CREATED,
    modified_on: SEED_ZONE_CREATED,
    activated_on: SEED_ZONE_CREATED,
    account: { id: SEED.cloudflareAccountId, name: 'Molecule (simulated)' },
    permissions: [],
    plan: { id: '0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee', name: 'Free Website', is_subscribed: true },
  };
}

function listZones(q: URLSearchParams): Envelope {
  const name = q.get('name');
  const account = q.get('account.id');
  const all = [zone()].filter(
    () =>
      (name === null || name === SEED.zoneName) && (account === null || account === SEED.cloudflareAccountId),
  );
  const { page, perPage } = paging(q, 20, 50);
  return paginate(all, page, perPage);
}

// --- pagination ------------------------------------------------------------------

function badParam(message: string): CfError {
  return new CfError(400, { code: 1001, message });
}

function paging(
  q: URLSearchParams,
  defaultPerPage: number,
  maxPerPage: number,
): { page: number; perPage: number } {
  const page = Number(q.get('page') ?? '1');
  const perPage = Number(q.get('per_page') ?? String(defaultPerPage));
  if (!Number.isInteger(page) || page < 1) throw badParam(`Invalid page: ${q.get('page')}`);
  if (!Number.isInteger(perPage) || perPage < 1 || perPage > maxPerPage) {
    throw badParam(`per_page must be between 1 and ${maxPerPage}`);
  }
  return { page, perPage };
}

/**
 * NOTE: pages past the end answer `success: true, result: []`: the SDK ignores total_pages
 * and keeps asking for page+1 until it sees an empty page.
 */
function paginate<T>(
  items: T[],
  page: number,
  perPage: number,
  total = items.length,
  sliced = false,
): Envelope {
  const result = sliced ? items : items.slice((page - 1) * perPage, page * perPage);
  return {
    result,
    result_info: {
      page,
      per_page: perPage,
      count: result.length,
      total_count: total,
      total_pages: Math.ceil(total / perPage),
    },
  };
}

/** One pass over `source`: counts matches and keeps only the requested page. */
function pageOf<T>(
  source: Iterable<T>,
  accept: (x: T) => boolean,
  page: number,
  perPage: number,
): { items: T[]; total: number } {
  const start = (page - 1) * perPage;
  const end = start + perPage;
  const items: T[] = [];
  let total = 0;
  for (const x of source) {
    if (!accept(x)) continue;
    if (total >= start && total < end) items.push(x);
    total++;
  }
  return { items, total };
}

// --- tunnels -------------------------------------------------------------------------

function tunnelNotFound(): CfError {
  // NOTE: the real code for an unknown tunnel id is unverified; 1002 is our choice.
  return new CfError(404, { code: 1002, message: 'Tunnel not found' });
}

function findTunnel(ctx: SimContext, id: string): Tunnel {
  const t = ctx.state.tunnels.get(id);
  if (!t) throw tunnelNotFound();
  return t;
}

/** The connectors of a tunnel: instances tagged `TunnelID=<id>` in any account and region. */
function connectors(ctx: SimContext, t: Tunnel, now: number): Instance[] {
  const out: Instance[] = [];
  for (const state of ctx.states()) {
    for (const i of state.instancesByTunnel.get(t.id) ?? []) {
      settle(i, now);
      if (i.tags.get('TunnelID') === t.id) out.push(i);
    }
  }
  return out;
}

/**
 * "Active connections": running connectors, plus (fault setting `tunnelConnectionLingerMs`)
 * those that stopped less than the linger ago and were not cleaned up since.
 */
function connectionsOf(
  ctx: SimContext,
  t: Tunnel,
  now: number,
): { running: Instance[]; lingering: Instance[] } {
  const linger = ctx.faults().tunnelConnectionLingerMs ?? 0;
  const running: Instance[] = [];
  const lingering: Instance[] = [];
  if (t.deletedAt !== undefined) return { running, lingering };
  for (const i of connectors(ctx, t, now)) {
    if (i.state === 'running') running.push(i);
    else if (
      i.stoppedRunningAt !== undefined &&
      now < i.stoppedRunningAt + linger &&
      i.stoppedRunningAt > (t.connectionsClearedAt ?? Number.NEGATIVE_INFINITY) &&
      i.stoppedRunningAt > (t.connectorsClearedAt?.[i.id] ?? Number.NEGATIVE_INFINITY)
    )
      lingering.push(i);
  }
  return { running, lingering };
}

/**
 * NOTE: without `tunnelStatusDetail` a tunnel is `healthy` with connections and `inactive`
 * without; with it, `degraded` while only lingering connections remain and `down` once the
 * connectors that had connected are gone.
 */
function renderTunnel(ctx: SimContext, t: Tunnel, now: number): Record<string, unknown> {
  const { running, lingering } = connectionsOf(ctx, t, now);
  const active = [...running, ...lingering];
  const since = active.length > 0 ? Math.min(...active.map((i) => i.launchTime)) : undefined;
  const stopped =
    t.deletedAt === undefined
      ? connectors(ctx, t, now)
          .map((i) => i.stoppedRunningAt)
          .filter((x) => x !== undefined)
      : [];
  let status = active.length > 0 ? 'healthy' : 'inactive';
  if (ctx.faults().tunnelStatusDetail) {
    if (running.length === 0 && lingering.length > 0) status = 'degraded';
    else if (active.length === 0 && stopped.length > 0) status = 'down';
  }
  return {
    id: t.id,
    account_tag: t.accountId,
    created_at: iso(t.createdAt),
    deleted_at: t.deletedAt === undefined ? null : iso(t.deletedAt),
    name: t.name,
    connections: [],
    conns_active_at: since === undefined ? null : iso(since),
    conns_inactive_at: active.length === 0 && stopped.length > 0 ? iso(Math.max(...stopped)) : null,
    tun_type: 'cfd_tunnel',
    metadata: {},
    status,
    remote_config: t.configSrc === 'cloudflare',
    config_src: t.configSrc,
  };
}

function tokenFor(t: Tunnel): string {
  return Buffer.from(JSON.stringify({ a: t.accountId, t: t.id, s: t.secret })).toString('base64');
}

function liveNamed(ctx: SimContext, name: string): Tunnel | undefined {
  return ctx.state.tunnelsByName.get(name)?.find((t) => t.deletedAt === undefined);
}

function nameConflict(): CfError {
  return new CfError(409, {
    code: 1013,
    message:
      'You already have a tunnel with this name. Delete the existing tunnel, or choose a different name for your new tunnel',
  });
}

function checkSecret(secret: unknown): string | undefined {
  if (secret === undefined || secret === null) return undefined;
  if (typeof secret !== 'string' || Buffer.from(secret, 'base64').length < 32) {
    throw badParam('tunnel_secret must be base64 encoding of at least 32 bytes');
  }
  return secret;
}

function createTunnel(ctx: SimContext, body: Record<string, unknown>): Envelope {
  const now = ctx.clock.now();
  const name = body.name;
  if (typeof name !== 'string' || name.trim() === '') throw badParam('Tunnel name is required');
  if (name.length > 255) throw badParam('Tunnel name is too long');
  const configSrc = body.config_src ?? 'local';
  if (configSrc !== 'local' && configSrc !== 'cloudflare')
    throw badParam(`Invalid config_src: ${String(configSrc)}`);
  const secret = checkSecret(body.tunnel_secret) ?? ctx.rng.bytesBase64(32);
  // NOTE: only live tunnels block a name; a deleted tunnel's name can be reused.
  if (liveNamed(ctx, name)) throw nameConflict();
  const t: Tunnel = {
    seq: ctx.state.nextSeq(),
    id: ctx.rng.uuid(),
    accountId: SEED.cloudflareAccountId,
    name,
    configSrc,
    secret,
    createdAt: now,
    config: { version: 0, config: null, createdAt: now },
  };
  ctx.state.addTunnel(t);
  return {
    result: {
      ...renderTunnel(ctx, t, now),
      credentials_file: {
        AccountTag: t.accountId,
        TunnelID: t.id,
        TunnelName: t.name,
        TunnelSecret: t.secret,
      },
      token: tokenFor(t),
    },
  };
}

function listTunnels(ctx: SimContext, q: URLSearchParams): Envelope {
  const now = ctx.clock.now();
  const { page, perPage } = paging(q, 20, 1000);
  const name = q.get('name');
  const isDeleted = q.get('is_deleted');
  const uuid = q.get('uuid');
  const include = q.get('include_prefix');
  const exclude = q.get('exclude_prefix');
  const existedAt = q.get('existed_at');
  const status = q.get('status');
  const existedMs = existedAt === null ? undefined : Date.parse(existedAt);
  const accept = (t: Tunnel): boolean =>
    (name === null || t.name === name) &&
    // NOTE: without is_deleted, deleted tunnels are included.
    (isDeleted === null || (isDeleted === 'true') === (t.deletedAt !== undefined)) &&
    (uuid === null || t.id === uuid) &&
    (include === null || t.name.startsWith(include)) &&
    (exclude === null || !t.name.startsWith(exclude)) &&
    (existedMs === undefined ||
      (t.createdAt <= existedMs && (t.deletedAt === undefined || t.deletedAt > existedMs))) &&
    (status === null || renderTunnel(ctx, t, now).status === status);
  const source: Iterable<Tunnel> =
    name !== null ? (ctx.state.tunnelsByName.get(name) ?? []) : ctx.state.tunnels.values();
  const { items, total } = pageOf(source, accept, page, perPage);
  return paginate(
    items.map((t) => renderTunnel(ctx, t, now)),
    page,
    perPage,
    total,
    true,
  );
}

function getTunnel(ctx: SimContext, id: string): Envelope {
  return { result: renderTunnel(ctx, findTunnel(ctx, id), ctx.clock.now()) };
}

function deleteTunnel(ctx: SimContext, id: string, cascade: boolean): Envelope {
  const now = ctx.clock.now();
  const t = findTunnel(ctx, id);
  if (t.deletedAt === undefined) {
    // NOTE: `?cascade=true` drops the tunnel's connections first, running connectors included.
    if (cascade) t.connectionsClearedAt = now;
    const { running, lingering } = connectionsOf(ctx, t, now);
    if (lingering.length > 0 || (running.length > 0 && !cascade)) {
      throw new CfError(400, {
        code: 1022,
        message: 'Cannot delete tunnel because it has active connections',
      });
    }
    t.deletedAt = now;
  }
  return { result: renderTunnel(ctx, t, now) };
}

function editTunnel(ctx: SimContext, id: string, body: Record<string, unknown>): Envelope {
  const t = findTunnel(ctx, id);
  if (t.deletedAt !== undefined) throw tunnelNotFound();
  if (body.name !== undefined) {
    if (typeof body.name !== 'string' || body.name.trim() === '') throw badParam('Tunnel name is required');
    const other = liveNamed(ctx, body.name);
    if (other && other !== t) throw nameConflict();
    if (body.name !== t.name) {
      const list = ctx.state.tunnelsByName.get(t.name)?.filter((x) => x !== t) ?? [];
      if (list.length > 0) ctx.state.tunnelsByName.set(t.name, list);
      else ctx.state.tunnelsByName.delete(t.name);
      t.name = body.name;
      const next = ctx.state.tunnelsByName.get(t.name);
      if (next) next.push(t);
      else ctx.state.tunnelsByName.set(t.name, [t]);
    }
  }
  const secret = checkSecret(body.tunnel_secret);
  if (secret !== undefined) t.secret = secret;
  return { result: renderTunnel(ctx, t, ctx.clock.now()) };
}

function tunnelToken(ctx: SimContext, id: string): Envelope {
  const t = findTunnel(ctx, id);
  if (t.deletedAt !== undefined) throw tunnelNotFound();
  // NOTE: the result is a bare string, not an object.
  return { result: tokenFor(t) };
}

function renderConfig(t: Tunnel): unknown {
  return {
    tunnel_id: t.id,
    account_id: t.accountId,
    version: t.config.version,
    config: t.config.config,
    source: t.configSrc,
    created_at: iso(t.config.createdAt),
  };
}

function getConfig(ctx: SimContext, id: string): Envelope {
  const t = findTunnel(ctx, id);
  if (t.deletedAt !== undefined) throw tunnelNotFound();
  return { result: renderConfig(t) };
}

function badConfig(detail: string): CfError {
  return new CfError(400, { code: 1056, message: `Bad Configuration: Validation failed: ${detail}` });
}

function putConfig(ctx: SimContext, id: string, body: Record<string, unknown>): Envelope {
  const t = findTunnel(ctx, id);
  if (t.deletedAt !== undefined) throw tunnelNotFound();
  if (t.configSrc !== 'cloudflare')
    throw new CfError(400, { code: 1056, message: 'Tunnel is locally configured' });
  const config = body.config;
  if (!config || typeof config !== 'object' || Array.isArray(config)) throw badConfig('config is required');
  const ingress = (config as Record<string, unknown>).ingress;
  if (ingress !== undefined) {
    if (!Array.isArray(ingress) || ingress.length === 0)
      throw badConfig('ingress must be a non-empty list of rules');
    ingress.forEach((rule, n) => {
      const r = (rule ?? {}) as Record<string, unknown>;
      if (typeof r.service !== 'string' || r.service === '')
        throw badConfig(`ingress rule #${n + 1} is missing a service`);
    });
    const last = ingress[ingress.length - 1] as Record<string, unknown>;
    if (
      (last.hostname !== undefined && last.hostname !== '') ||
      (last.path !== undefined && last.path !== '')
    ) {
      throw badConfig(
        'The last ingress rule must match all URLs (i.e. it should not have a hostname or path filter)',
      );
    }
  }
  // A PUT replaces the whole configuration and bumps the version.
  t.config = {
    version: t.config.version + 1,
    config: JSON.parse(JSON.stringify(config)) as Record<string, unknown>,
    createdAt: ctx.clock.now(),
  };
  return { result: renderConfig(t) };
}

/**
 * NOTE: cleanup removes stale connections (all, or one connector's with `client_id`); a running
 * connector reconnects at once, so its connections stay.
 */
function clearConnections(ctx: SimContext, id: string, clientId: string | null): Envelope {
  const t = findTunnel(ctx, id);
  if (t.deletedAt !== undefined) throw tunnelNotFound();
  const now = ctx.clock.now();
  if (clientId === null) t.connectionsClearedAt = now;
  else t.connectorsClearedAt = { ...(t.connectorsClearedAt ?? {}), [clientId]: now };
  return { result: null };
}

function connections(ctx: SimContext, id: string): Envelope {
  const now = ctx.clock.now();
  const t = findTunnel(ctx, id);
  const { running, lingering } = connectionsOf(ctx, t, now);
  const active = [...running, ...lingering];
  return {
    result: active.map((i) => ({
      id: i.id,
      arch: 'linux_amd64',
      version: '2025.1.0',
      run_at: iso(i.launchTime),
      features: [],
      conns: [
        {
          colo_name: 'iad01',
          id: i.id,
          is_pending_reconnect: false,
          opened_at: iso(i.launchTime),
          origin_ip: i.privateIp,
          uuid: i.id,
        },
      ],
    })),
  };
}

// --- DNS records -------------------------------------------------------------------------

const PROXIABLE = new Set(['A', 'AAAA', 'CNAME']);
const TYPES = new Set(['A', 'AAAA', 'CNAME', 'TXT', 'MX', 'NS', 'SRV', 'CAA', 'PTR', 'HTTPS', 'SVCB']);
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HOSTNAME =
  /^(?=.{1,253}$)([a-z0-9_*]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i;

/** A relative name gets the zone appended; `@` is the apex. Names are lower-case FQDNs. */
export function expandName(raw: string): string {
  const name = raw.trim().toLowerCase().replace(/\.$/, '');
  if (name === '@' || name === '') return SEED.zoneName;
  if (name === SEED.zoneName || name.endsWith(`.${SEED.zoneName}`)) return name;
  return `${name}.${SEED.zoneName}`;
}

function dnsInvalid(code: number, message: string): CfError {
  return new CfError(400, { code: 1004, message: 'DNS Validation Error', error_chain: [{ code, message }] });
}

function recordNotFound(): CfError {
  return new CfError(404, { code: 81044, message: 'Record does not exist.' });
}

interface RecordInput {
  type: string;
  name: string;
  content: string;
  proxied: boolean;
  ttl: number;
  comment: string | null;
  tags: string[];
}

function validateRecord(r: RecordInput): void {
  if (!TYPES.has(r.type)) throw dnsInvalid(9000, 'DNS record type is invalid.');
  if (!HOSTNAME.test(r.name)) throw dnsInvalid(9021, 'DNS name is invalid.');
  if (r.content === '') throw dnsInvalid(9001, 'Content is required.');
  if (r.type === 'A' && !IPV4.test(r.content))
    throw dnsInvalid(9005, 'Content for A record must be a valid IPv4 address.');
  if (r.type === 'AAAA' && !/^[0-9a-f:]+$/i.test(r.content)) {
    throw dnsInvalid(9006, 'Content for AAAA record must be a valid IPv6 address.');
  }
  if (r.type === 'CNAME' && !HOSTNAME.test(r.content))
    throw dnsInvalid(9007, 'Content for CNAME record is invalid.');
  if (r.proxied && !PROXIABLE.has(r.type)) throw dnsInvalid(9004, 'This record type cannot be proxied.');
  if (r.ttl !== 1 && (r.ttl < 30 || r.ttl > 86_400)) {
    throw dnsInvalid(9011, 'TTL must be between 30 and 86400 seconds, or 1 for Automatic.');
  }
}

/**
 * NOTE: 81057 for an identical record, 81053 for a CNAME next to any record of the name (or
 * an A/AAAA next to a CNAME), 81054 for another type next to a CNAME.
 */
function checkConflicts(ctx: SimContext, r: RecordInput, self?: DnsRecord): void {
  const others = (ctx.state.dnsByName.get(dnsKey(SEED.cloudflareZoneId, r.name)) ?? []).filter(
    (x) => x !== self,
  );
  if (others.length === 0) return;
  if (others.some((x) => x.type === r.type && x.content.toLowerCase() === r.content.toLowerCase())) {
    throw new CfError(400, { code: 81057, message: 'The record already exists.' });
  }
  const hasCname = others.some((x) => x.type === 'CNAME');
  if (r.type === 'CNAME' || ((r.type === 'A' || r.type === 'AAAA') && hasCname)) {
    throw new CfError(400, {
      code: 81053,
      message: 'An A, AAAA, or CNAME record with that host already exists.',
    });
  }
  if (hasCname)
    throw new CfError(400, { code: 81054, message: 'A CNAME record with that host already exists.' });
}

function readInput(body: Record<string, unknown>, base?: DnsRecord): RecordInput {
  const str = (k: string, fallback: string | undefined): string | undefined => {
    const v = body[k];
    if (v === undefined) return fallback;
    if (typeof v !== 'string') throw badParam(`${k} must be a string`);
    return v;
  };
  const type = str('type', base?.type);
  const name = str('name', base?.name);
  if (type === undefined) throw dnsInvalid(9000, 'DNS record type is invalid.');
  if (name === undefined) throw dnsInvalid(9021, 'DNS name is invalid.');
  const proxied = body.proxied === undefined ? (base?.proxied ?? false) : body.proxied;
  if (typeof proxied !== 'boolean') throw badParam('proxied must be a boolean');
  const ttl = body.ttl === undefined ? (base?.ttl ?? 1) : body.ttl;
  if (typeof ttl !== 'number') throw badParam('ttl must be a number');
  const comment = body.comment === undefined ? (base?.comment ?? null) : body.comment;
  if (comment !== null && typeof comment !== 'string') throw badParam('comment must be a string');
  const tags = body.tags === undefined ? (base?.tags ?? []) : body.tags;
  if (!Array.isArray(tags)) throw badParam('tags must be a list');
  return {
    type: type.toUpperCase(),
    name: expandName(name),
    content: str('content', base?.content) ?? '',
    // Proxied records always have automatic TTL.
    proxied,
    ttl: proxied ? 1 : ttl,
    comment: comment === '' ? null : comment,
    tags: tags.map(String),
  };
}

function renderRecord(r: DnsRecord): Record<string, unknown> {
  return {
    id: r.id,
    name: r.name,
    type: r.type,
    content: r.content,
    proxiable: PROXIABLE.has(r.type),
    proxied: r.proxied,
    ttl: r.ttl,
    settings: {},
    meta: {},
    comment: r.comment,
    tags: [...r.tags],
    created_on: iso(r.createdAt),
    modified_on: iso(r.modifiedAt),
    ...(r.commentModifiedAt !== undefined ? { comment_modified_on: iso(r.commentModifiedAt) } : {}),
    ...(r.tagsModifiedAt !== undefined ? { tags_modified_on: iso(r.tagsModifiedAt) } : {}),
  };
}

function createRecord(ctx: SimContext, body: Record<string, unknown>): Envelope {
  const now = ctx.clock.now();
  const input = readInput(body);
  validateRecord(input);
  checkConflicts(ctx, input);
  const r: DnsRecord = {
    seq: ctx.state.nextSeq(),
    id: ctx.rng.hex(32),
    zoneId: SEED.cloudflareZoneId,
    ...input,
    createdAt: now,
    modifiedAt: now,
    ...(input.comment !== null ? { commentModifiedAt: now } : {}),
    ...(input.tags.length > 0 ? { tagsModifiedAt: now } : {}),
  };
  ctx.state.addDnsRecord(r);
  return { result: renderRecord(r) };
}

function findRecord(ctx: SimContext, id: string): DnsRecord {
  const r = ctx.state.dnsRecords.get(id);
  if (!r || r.zoneId !== SEED.cloudflareZoneId) throw recordNotFound();
  return r;
}

function getRecord(ctx: SimContext, id: string): Envelope {
  return { result: renderRecord(findRecord(ctx, id)) };
}

function deleteRecord(ctx: SimContext, id: string): Envelope {
  const r = findRecord(ctx, id);
  ctx.state.removeDnsRecord(r);
  return { result: { id: r.id } };
}

/** PUT replaces the record (omitted optional fields reset); PATCH merges. */
function updateRecord(
  ctx: SimContext,
  id: string,
  body: Record<string, unknown>,
  replace: boolean,
): Envelope {
  const now = ctx.clock.now();
  const r = findRecord(ctx, id);
  const input = readInput(body, replace ? undefined : r);
  if (replace && body.content === undefined) throw dnsInvalid(9001, 'Content is required.');
  validateRecord(input);
  checkConflicts(ctx, input, r);
  if (input.comment !== r.comment) r.commentModifiedAt = now;
  if (input.tags.join('\0') !== r.tags.join('\0')) r.tagsModifiedAt = now;
  if (input.name !== r.name) ctx.state.renameDnsRecord(r, input.name);
  r.type = input.type;
  r.content = input.content;
  r.proxied = input.proxied;
  r.ttl = input.ttl;
  r.comment = input.comment;
  r.tags = input.tags;
  r.modifiedAt = now;
  return { result: renderRecord(r) };
}

type StringTest = (v: string | null) => boolean;

/** `<field>` / `<field>.exact|contains|startswith|endswith|present|absent` query filters. */
function stringFilters(
  q: URLSearchParams,
  field: string,
  normalise: (s: string) => string = (s) => s,
): StringTest[] {
  const tests: StringTest[] = [];
  const exact = q.get(`${field}.exact`) ?? q.get(field);
  if (exact !== null) tests.push((v) => v !== null && v === normalise(exact));
  const contains = q.get(`${field}.contains`);
  if (contains !== null) tests.push((v) => v?.toLowerCase().includes(contains.toLowerCase()) ?? false);
  const starts = q.get(`${field}.startswith`);
  if (starts !== null) tests.push((v) => v?.toLowerCase().startsWith(starts.toLowerCase()) ?? false);
  const ends = q.get(`${field}.endswith`);
  if (ends !== null) tests.push((v) => v?.toLowerCase().endsWith(ends.toLowerCase()) ?? false);
  if (q.has(`${field}.present`)) tests.push((v) => v !== null && v !== '');
  if (q.has(`${field}.absent`)) tests.push((v) => v === null || v === '');
  return tests;
}

const ORDER_FIELDS: Record<string, (r: DnsRecord) => string | number> = {
  type: (r) => r.type,
  name: (r) => r.name,
  content: (r) => r.content,
  ttl: (r) => r.ttl,
  proxied: (r) => (r.proxied ? 1 : 0),
};

function listRecords(ctx: SimContext, q: URLSearchParams): Envelope {
  const { page, perPage } = paging(q, 100, 50_000);
  const tests: ((r: DnsRecord) => boolean)[] = [];
  for (const t of stringFilters(q, 'name', expandName)) tests.push((r) => t(r.name));
  for (const t of stringFilters(q, 'content')) tests.push((r) => t(r.content));
  for (const t of stringFilters(q, 'comment')) tests.push((r) => t(r.comment));
  const type = q.get('type');
  if (type !== null) tests.push((r) => r.type === type.toUpperCase());
  const proxied = q.get('proxied');
  if (proxied !== null) tests.push((r) => r.proxied === (proxied === 'true'));
  const tags = q.getAll('tag');
  for (const tag of tags) tests.push((r) => r.tags.includes(tag));
  const any = q.get('match') === 'any';
  const accept = (r: DnsRecord): boolean =>
    tests.length === 0 || (any ? tests.some((t) => t(r)) : tests.every((t) => t(r)));

  const exactName = q.get('name.exact') ?? q.get('name');
  let source: Iterable<DnsRecord> =
    exactName !== null && !any
      ? (ctx.state.dnsByName.get(dnsKey(SEED.cloudflareZoneId, expandName(exactName))) ?? [])
      : ctx.state.dnsRecords.values();
  const order = q.get('order');
  if (order !== null && ORDER_FIELDS[order]) {
    const key = ORDER_FIELDS[order];
    const dir = q.get('direction') === 'desc' ? -1 : 1;
    source = [...source].sort((a, b) => {
      const x = key(a);
      const y = key(b);
      return (x < y ? -1 : x > y ? 1 : a.seq - b.seq) * dir;
    });
  }
  const { items, total } = pageOf(source, accept, page, perPage);
  return paginate(items.map(renderRecord), page, perPage, total, true);
}
