import http from 'node:http';
import net from 'node:net';

/** One cloud request as it passed the proxy, timed on the test's wall clock. */
export interface CloudCall {
  /** When the request arrived (wall-clock ms). */
  at: number;
  service: 'ec2' | 'secretsmanager' | 'tagging' | 'cloudflare';
  operation: string;
  mutating: boolean;
  status: number;
  /** The simulator answered with an injected fault (5xx or throttle). */
  fault: 'error' | 'throttle' | undefined;
}

const READ = /^(Describe|Get|List|BatchGet)/;
const THROTTLE = /Throttl|RequestLimitExceeded|"code":\s*971|TooManyRequests/;

function classify(method: string, path: string, headers: http.IncomingHttpHeaders, body: string) {
  if (path.startsWith('/client/v4')) {
    const op = `${method} ${path
      .replace(/^\/client\/v4/, '')
      .replace(/\/[0-9a-f]{32}|\/[0-9a-f-]{36}/g, '/:id')
      .replace(/\?.*$/, '')}`;
    return { service: 'cloudflare' as const, operation: op, mutating: method !== 'GET' };
  }
  const target = headers['x-amz-target'];
  if (typeof target === 'string') {
    const op = target.slice(target.indexOf('.') + 1);
    const service = target.startsWith('secretsmanager') ? ('secretsmanager' as const) : ('tagging' as const);
    return { service, operation: op, mutating: !READ.test(op) };
  }
  const action = /(?:^|&)Action=([A-Za-z]+)/.exec(body)?.[1] ?? '?';
  return { service: 'ec2' as const, operation: action, mutating: !READ.test(action) };
}

/**
 * An HTTP proxy in front of the simulator that records every AWS and Cloudflare request of
 * one operator replica: which replica mutated what, and when, on the test's own clock.
 */
export interface RecordingProxy {
  url: string;
  calls: CloudCall[];
  close(): Promise<void>;
}

export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const calls: CloudCall[] = [];
  const server = http.createServer((req, res) => {
    const at = Date.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = req.url ?? '/';
      const kind = classify(req.method ?? 'GET', path, req.headers, body.toString('utf8'));
      const out = http.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path,
          headers: { ...req.headers, host: upstream.host },
          agent,
        },
        (up) => {
          const back: Buffer[] = [];
          up.on('data', (c: Buffer) => back.push(c));
          up.on('end', () => {
            const payload = Buffer.concat(back);
            const status = up.statusCode ?? 0;
            let fault: CloudCall['fault'];
            if (status === 429 || (status >= 400 && THROTTLE.test(payload.toString('utf8'))))
              fault = 'throttle';
            else if (status >= 500) fault = 'error';
            calls.push({ at, ...kind, status, fault });
            res.writeHead(status, up.headers);
            res.end(payload);
          });
        },
      );
      out.on('error', () => res.destroy());
      out.end(body);
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    async close() {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      agent.destroy();
    },
  };
}

/**
 * A TCP proxy in front of PostgreSQL that the test can cut: `down()` drops every connection
 * and refuses new ones (connection refused), `up()` listens again on the same port.
 */
export interface TcpProxy {
  port: number;
  readonly isUp: boolean;
  /**
   * Writes (INSERT/UPDATE/DELETE) seen in the client's SQL text, with the table and arrival time;
   * `fenced` when the statement carries the lease fence (src/db/fence.ts) and so commits nothing
   * unless the lease is still held at the writer's epoch.
   */
  writes: { at: number; table: string; fenced: boolean }[];
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

const WRITE_SQL = /\b(insert\s+into|update|delete\s+from)\s+"?([a-z_]+)"?/gi;
/** The fence's CTE (fenceCte in src/db/fence.ts): the write and the lease check are one statement. */
const FENCED_SQL = /\bWITH fence AS \(SELECT 1 FROM leases WHERE /;

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  const writes: TcpProxy['writes'] = [];
  let server: net.Server | undefined;
  let port = 0;
  const listen = async () => {
    const s = net.createServer((client) => {
      const upstream = net.connect(targetPort, targetHost);
      sockets.add(client);
      sockets.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.on('data', (chunk: Buffer) => {
        // Query text travels in the clear in Parse ('P') and Query ('Q') messages.
        const at = Date.now();
        const text = chunk.toString('latin1');
        const fenced = FENCED_SQL.test(text);
        for (const m of text.matchAll(WRITE_SQL)) writes.push({ at, table: m[2]!, fenced });
      });
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    port = (s.address() as net.AddressInfo).port;
    server = s;
  };
  const down = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };
  await listen();
  return {
    get port() {
      return port;
    },
    get isUp() {
      return server !== undefined;
    },
    writes,
    down,
    async up() {
      if (!server) await listen();
    },
    close: down,
  };
}
