import type Cloudflare from 'cloudflare';
import {
  type CloudError,
  ConflictError,
  NotFoundError,
  TerminalError,
  ThrottledError,
  TransientError,
} from '../../runtime/errors.js';
import { type CallContext, call } from '../instrument.js';
import { PageMemo } from '../pages.js';
import type { DnsPort, DnsRecord, IngressConfigRule, Tunnel, TunnelConfig, TunnelPort } from '../ports.js';

const PER_PAGE = 1000;

/** "Cannot delete tunnel because it has active connections". */
const ACTIVE_CONNECTIONS = '1022';
/** Cloudflare error codes that mean "wait and try again". */
const TRANSIENT_CODES = new Set([ACTIVE_CONNECTIONS]);
/** Codes that mean "it already exists". */
const CONFLICT_CODES = new Set(['1013', '81053', '81054', '81057']);
const NOT_FOUND_CODES = new Set(['81044', '1002']);

/** Translates a `cloudflare` SDK error (APIError and its subclasses) into one of our classes. */
export function translateCloudflareError(err: unknown, service: string, operation: string): CloudError {
  const e = (err ?? {}) as { status?: number; errors?: { code?: number | string }[]; name?: string };
  const status = e.status;
  const code = e.errors?.[0]?.code !== undefined ? String(e.errors[0].code) : undefined;
  const details = { service, operation, ...(code ? { code } : {}), cause: err };
  const message = `${service} ${operation}: ${status ?? 'connection error'}${code ? ` (code ${code})` : ''}`;
  if (code && TRANSIENT_CODES.has(code)) return new TransientError(message, details);
  if (status === 404 || (code && NOT_FOUND_CODES.has(code))) return new NotFoundError(message, details);
  if (status === 409 || (code && CONFLICT_CODES.has(code))) return new ConflictError(message, details);
  if (status === 429)
    return new ThrottledError(`${message}: over the rate limit; no call until its window ends`, {
      ...details,
      code: 'RateLimited',
    });
  if (status === undefined || status >= 500 || status === 408) return new TransientError(message, details);
  if (status === 401 || status === 403)
    return new TerminalError(message, { ...details, reason: 'PermissionDenied' });
  return new TerminalError(message, { ...details, reason: 'CloudRejected' });
}

export interface CloudflareTarget {
  accountId: string;
  zoneId: string;
}

export class CloudflareAdapter implements TunnelPort, DnsPort {
  /** The fleet-wide listings' pages (cloud/pages.ts): one listing of each. */
  private readonly tunnelPages = new PageMemo<ListPage<Tunnel>>(1);
  private readonly recordPages = new PageMemo<ListPage<DnsRecord>>(1);

  constructor(
    private readonly client: Cloudflare,
    private readonly target: CloudflareTarget,
    private readonly ctx: CallContext,
    private readonly perPage = PER_PAGE,
  ) {}

  private send<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return call(this.ctx, 'cloudflare', operation, 'cloudflare', fn, translateCloudflareError);
  }

  /**
   * Walks a V4 page-paginated list, one rate-limited call per page. The SDK would ask for pages
   * until one comes back empty; a page shorter than the `per_page` the server says it used is
   * already the last, so that extra call is saved (half the calls of a lookup by name). Without
   * `result_info` the SDK's rule applies.
   *
   * The SDK makes each request (auth, retries, errors); the body is read here (`take` picks and
   * maps the items of a page), and a fleet-wide listing (`memo`: its pages and its key)
   * remembers its pages: one that comes back byte for byte is not parsed again
   * (cloud/pages.ts). A body that is not a list envelope fails the listing (a page that cannot
   * be read is not an empty one).
   */
  private async all<T>(
    operation: string,
    request: (page: number) => { asResponse(): Promise<Response> },
    take: (items: unknown[]) => T[],
    memo?: { pages: PageMemo<ListPage<T>>; key: string },
  ): Promise<T[]> {
    const run = memo?.pages.begin(memo.key);
    const out: T[] = [];
    for (let n = 1; ; n++) {
      const page = await this.send(operation, async () => {
        const body = Buffer.from(await (await request(n).asResponse()).arrayBuffer());
        const decode = () => decodeListPage(body, take);
        const read = run ? run.read(String(n), [body], decode) : decode();
        if (!read)
          throw new TransientError(`cloudflare ${operation}: page ${n} is not a list of results`, {
            service: 'cloudflare',
            operation,
          });
        return read;
      });
      for (const item of page.items) out.push(item);
      if (!page.more) break;
    }
    run?.end();
    return out;
  }

  async listTunnels(filter: { name?: string; namePrefix?: string }): Promise<Tunnel[]> {
    return this.all(
      'ListTunnels',
      (page) =>
        this.client.zeroTrust.tunnels.cloudflared.list({
          account_id: this.target.accountId,
          is_deleted: false,
          per_page: this.perPage,
          page,
          ...(filter.name ? { name: filter.name } : {}),
          ...(filter.namePrefix ? { include_prefix: filter.namePrefix } : {}),
        }),
      (items) =>
        (items as RawTunnel[])
          .filter((t) => !t.deleted_at)
          .filter((t) => (filter.name ? t.name === filter.name : true))
          .filter((t) => (filter.namePrefix ? (t.name ?? '').startsWith(filter.namePrefix) : true))
          .map(toTunnel),
      filter.name === undefined ? { pages: this.tunnelPages, key: filter.namePrefix ?? '' } : undefined,
    );
  }

  async createTunnel(name: string): Promise<Tunnel> {
    const t = await this.send('CreateTunnel', () =>
      this.client.zeroTrust.tunnels.cloudflared.create(
        { account_id: this.target.accountId, name, config_src: 'cloudflare' },
        // A name conflict answers 409, which the SDK would retry twice: it is final, surface it now.
        { maxRetries: 0 },
      ),
    );
    return toTunnel(t as RawTunnel);
  }

  /**
   * Deletes a tunnel. Cloudflare refuses while it has active connections (1022), and
   * connections linger for a while after cloudflared stopped (the instance is terminated before
   * its tunnel is deleted): the stale ones are cleaned up (`DELETE …/connections`) and the
   * delete tried again, then once more with `?cascade=true`, which drops any that are left.
   * Bounded: at most four calls, then the 1022 is passed on (the reconcile backs off with
   * condition WaitingForTunnelConnections) — never retried in a loop here.
   */
  async deleteTunnel(id: string): Promise<void> {
    const account = { account_id: this.target.accountId };
    const attempt = async (operation: string, cascade: boolean) => {
      try {
        await this.send(operation, () =>
          this.client.zeroTrust.tunnels.cloudflared.delete(
            id,
            account,
            cascade ? { query: { cascade: true } } : undefined,
          ),
        );
        return true;
      } catch (e) {
        if ((e as CloudError).errorClass === 'NotFound') return true;
        if ((e as CloudError).code !== ACTIVE_CONNECTIONS) throw e;
        return false;
      }
    };
    if (await attempt('DeleteTunnel', false)) return;
    try {
      await this.send('CleanupTunnelConnections', () =>
        this.client.zeroTrust.tunnels.cloudflared.connections.delete(id, account),
      );
    } catch (e) {
      if ((e as CloudError).errorClass === 'NotFound') return;
      throw e;
    }
    if (await attempt('DeleteTunnel', false)) return;
    if (await attempt('DeleteTunnelCascade', true)) return;
    throw new TransientError(`cloudflare DeleteTunnel: tunnel ${id} still has active connections`, {
      service: 'cloudflare',
      operation: 'DeleteTunnel',
      code: ACTIVE_CONNECTIONS,
    });
  }

  async getTunnelToken(id: string): Promise<string> {
    return this.send('GetTunnelToken', () =>
      this.client.zeroTrust.tunnels.cloudflared.token.get(id, { account_id: this.target.accountId }),
    );
  }

  async getConfiguration(id: string): Promise<TunnelConfig | undefined> {
    const res = await this.send('GetTunnelConfiguration', () =>
      this.client.zeroTrust.tunnels.cloudflared.configurations.get(id, { account_id: this.target.accountId }),
    );
    if (!res?.config) return undefined;
    return {
      version: res.version ?? 0,
      ingress: (res.config.ingress ?? []).map((r) => ({
        service: r.service,
        ...(r.hostname ? { hostname: r.hostname } : {}),
        ...(r.path ? { path: r.path } : {}),
      })),
    };
  }

  async putConfiguration(id: string, ingress: IngressConfigRule[]): Promise<void> {
    await this.send('PutTunnelConfiguration', () =>
      this.client.zeroTrust.tunnels.cloudflared.configurations.update(id, {
        account_id: this.target.accountId,
        // NOTE: the SDK types every rule with a hostname, but the catch-all rule must have none.
        config: { ingress: ingress.map((r) => ({ ...r })) as { hostname: string; service: string }[] },
      }),
    );
  }

  async listRecords(filter: { name?: string; commentContains?: string }): Promise<DnsRecord[]> {
    return this.all(
      'ListDnsRecords',
      (page) =>
        this.client.dns.records.list({
          zone_id: this.target.zoneId,
          per_page: this.perPage,
          page,
          ...(filter.name ? { name: { exact: filter.name } } : {}),
          ...(filter.commentContains ? { comment: { contains: filter.commentContains } } : {}),
        }),
      (items) =>
        (items as RawRecord[])
          .filter((r) => (filter.name ? r.name === filter.name : true))
          .filter((r) => (filter.commentContains ? (r.comment ?? '').includes(filter.commentContains) : true))
          .map(toRecord),
      filter.name === undefined ? { pages: this.recordPages, key: filter.commentContains ?? '' } : undefined,
    );
  }

  async createRecord(input: {
    name: string;
    content: string;
    proxied: boolean;
    comment: string;
  }): Promise<DnsRecord> {
    const r = await this.send('CreateDnsRecord', () =>
      this.client.dns.records.create(
        { zone_id: this.target.zoneId, type: 'CNAME', ttl: 1, ...input },
        { maxRetries: 0 },
      ),
    );
    return toRecord(r as unknown as RawRecord);
  }

  async updateRecord(
    id: string,
    input: { name: string; content: string; proxied: boolean; comment: string },
  ) {
    await this.send('UpdateDnsRecord', () =>
      this.client.dns.records.update(id, { zone_id: this.target.zoneId, type: 'CNAME', ttl: 1, ...input }),
    );
  }

  async deleteRecord(id: string): Promise<void> {
    try {
      await this.send('DeleteDnsRecord', () =>
        this.client.dns.records.delete(id, { zone_id: this.target.zoneId }),
      );
    } catch (e) {
      if ((e as CloudError).errorClass !== 'NotFound') throw e;
    }
  }
}

/** One page of a list as {@link CloudflareAdapter.all} keeps it. */
interface ListPage<T> {
  items: T[];
  /** Whether another page may follow (the SDK's rule, less the empty page after a short one). */
  more: boolean;
}

/** A V4 list envelope → its page, or undefined when the body is not one. */
export function decodeListPage<T>(body: Buffer, take: (items: unknown[]) => T[]): ListPage<T> | undefined {
  let envelope: unknown;
  try {
    envelope = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof envelope !== 'object' || envelope === null) return undefined;
  const {
    result,
    result_info: info,
    success,
  } = envelope as {
    result?: unknown;
    result_info?: { per_page?: unknown };
    success?: unknown;
  };
  if (success === false || !Array.isArray(result)) return undefined;
  const perPage = info?.per_page;
  const short = typeof perPage === 'number' && perPage > 0 && result.length < perPage;
  return { items: take(result), more: result.length > 0 && !short };
}

interface RawTunnel {
  id?: string;
  name?: string;
  created_at?: string;
  deleted_at?: string | null;
  status?: string;
}

interface RawRecord {
  id?: string;
  name?: string;
  type?: string;
  content?: string;
  proxied?: boolean;
  comment?: string | null;
}

function toTunnel(t: RawTunnel): Tunnel {
  return {
    id: t.id ?? '',
    name: t.name ?? '',
    createdAt: t.created_at ? new Date(t.created_at) : undefined,
    deletedAt: t.deleted_at ? new Date(t.deleted_at) : undefined,
    status: t.status,
  };
}

function toRecord(r: RawRecord): DnsRecord {
  return {
    id: r.id ?? '',
    name: r.name ?? '',
    type: r.type ?? '',
    content: r.content ?? '',
    proxied: r.proxied ?? false,
    comment: r.comment ?? undefined,
  };
}
