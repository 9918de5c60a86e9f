import { existsSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { jsonError } from './awsjson.js';
import { SimClock } from './clock.js';
import { cfErrorResponse, cfRateLimited, prepareCloudflare } from './cloudflare.js';
import { ec2Error, prepareEc2 } from './ec2.js';
import { instanceArn } from './ec2-render.js';
import {
  effectiveFaults,
  FAST_FAULTS,
  type FaultSettings,
  mergeFaults,
  REALISTIC_FAULTS,
  TokenBuckets,
} from './faults.js';
import { CredentialError, Identities, type IssuedCredentials } from './iam.js';
import { CLOUDFLARE_BUCKET, CLOUDFLARE_WINDOW, DURATIONS } from './limits.js';
import {
  AwsError,
  CfError,
  type Prepared,
  type SimContext,
  type SimRequest,
  type SimResponse,
} from './protocol.js';
import { fnv } from './query.js';
import { Rng } from './rng.js';
import { prepareSecrets } from './secrets.js';
import { SEED, SEED_DEFAULT_GROUP_ID, type SeedInfo } from './seed.js';
import { commandsOn, prepareSsm } from './ssm.js';
import {
  defaultNetwork,
  type Instance,
  isDefaultPartition,
  type Partition,
  partitionKey,
  type SerializedState,
  SimState,
  settle,
} from './state.js';
import { prepareSts, stsError } from './sts.js';
import { prepareTagging } from './tagging.js';

/** The HTTP server: routing, the fault layer, call accounting, admin endpoints, persistence. */

export interface SimOptions {
  /** Default 4566; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** `fast` (default): no latency, no buckets, ~20 ms transitions. `realistic`: buckets, 5 ms latency, 15–20 s transitions. */
  profile?: 'fast' | 'realistic';
  /** JSON persistence: loaded at start when present, saved (debounced) on change and on close. */
  stateFile?: string;
  /** Simulated time runs this many times faster than real time. Default 1. */
  timeScale?: number;
  /** Base clock in ms; default Date.now. */
  now?: () => number;
  faults?: Partial<FaultSettings>;
  /** Seed for ids and fault randomness; random when omitted. */
  seed?: number;
}

export interface CallCount {
  service: string;
  operation: string;
  status: number;
  count: number;
}

export interface CallRecord {
  /** Simulated ms. */
  at: number;
  service: string;
  operation: string;
  status: number;
  mutating: boolean;
  target?: string;
  /** For AWS calls: the caller's account and region. */
  account?: string;
  region?: string;
}

export type InstanceDump = SerializedState['instances'][number] & {
  userDataDecoded?: string;
  /** The SSM Run Commands sent to it, oldest first (absent when none). */
  commands?: ReturnType<typeof commandsOn>;
};

export interface SimStateDump extends Omit<SerializedState, 'instances'> {
  /** Simulated now (ms). */
  now: number;
  seed: SeedInfo;
  /** The default account and region's objects (the seeded network) are the top-level fields. */
  instances: InstanceDump[];
  calls: CallCount[];
  /** Every other account and region used so far, with its objects. */
  partitions: (Partition & Omit<SerializedState, 'instances'> & { instances: InstanceDump[] })[];
}

/** A default VPC of an account and region, as a new account has it. */
export interface NetworkInfo extends Partition {
  vpcId: string;
  vpcCidr: string;
  subnetId: string;
  /** The VPC's `default` security group. */
  defaultSecurityGroupId: string;
}

/** What the state file holds: the default partition's state, the others', and issued credentials. */
type SavedState = SerializedState & {
  now?: number;
  partitions?: (Partition & { state: SerializedState })[];
  credentials?: IssuedCredentials[];
};

export interface Simulator {
  readonly url: string;
  readonly awsEndpoint: string;
  readonly cloudflareBaseUrl: string;
  readonly seed: SeedInfo;
  /** The default VPC of an account and region (made on first use, as AWS does for a new account). */
  network(account: string, region?: string): NetworkInfo;
  setFaults(f: Partial<FaultSettings>): void;
  getFaults(): FaultSettings;
  /** Empties every store except the seeded objects (and refills the buckets); calls are kept. */
  reset(): void;
  dump(): SimStateDump;
  calls(): CallCount[];
  callLog(sinceMs?: number): CallRecord[];
  resetCalls(): void;
  /** Moves simulated time forward. */
  advance(ms: number): void;
  /** Simulated now (ms). */
  now(): number;
  /**
   * What the instance's metadata service would hand out: temporary credentials of its instance
   * profile's role, whose requests carry the instance's ARN as `ec2:SourceInstanceARN`. Throws
   * for an unknown instance, one that is not running, or one without an instance profile.
   */
  instanceCredentials(instanceId: string): InstanceCredentials;
  close(): Promise<void>;
}

/** The metadata service's `iam/security-credentials/<role>` document, plus whose they are. */
export interface InstanceCredentials {
  Code: 'Success';
  Type: 'AWS-HMAC';
  LastUpdated: string;
  AccessKeyId: string;
  SecretAccessKey: string;
  Token: string;
  Expiration: string;
  RoleArn: string;
  InstanceArn: string;
  InstanceProfileArn: string;
}

/** Why /_sim/instance-credentials refused, with the status the admin route answers. */
class InstanceCredentialsRefused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Call-log names of the JSON services, whose target prefix differs. */
const LOG_NAMES: Record<string, string> = { ResourceGroupsTaggingAPI_20170126: 'tagging', AmazonSSM: 'ssm' };

const LOG_CAPACITY = 50_000;
const SWEEP_EVERY_REAL_MS = 5_000;
const SAVE_DEBOUNCE_MS = 250;
const MAX_BODY = 16 * 1024 * 1024;

class CallLog {
  private readonly ring: (CallRecord | undefined)[] = new Array(LOG_CAPACITY);
  private next = 0;
  private readonly counts = new Map<string, CallCount>();

  add(r: CallRecord): void {
    this.ring[this.next] = r;
    this.next = (this.next + 1) % LOG_CAPACITY;
    const key = `${r.service}\0${r.operation}\0${r.status}`;
    const c = this.counts.get(key);
    if (c) c.count++;
    else this.counts.set(key, { service: r.service, operation: r.operation, status: r.status, count: 1 });
  }

  records(since = Number.NEGATIVE_INFINITY): CallRecord[] {
    const out: CallRecord[] = [];
    for (let n = 0; n < LOG_CAPACITY; n++) {
      const r = this.ring[(this.next + n) % LOG_CAPACITY];
      if (r && r.at >= since) out.push({ ...r });
    }
    return out;
  }

  totals(): CallCount[] {
    return [...this.counts.values()].map((c) => ({ ...c }));
  }

  clear(): void {
    this.ring.fill(undefined);
    this.next = 0;
    this.counts.clear();
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function regionOf(req: IncomingMessage): string {
  const auth = req.headers.authorization ?? '';
  const m = /Credential=[^/]+\/\d{8}\/([a-z0-9-]+)\//.exec(auth);
  return m?.[1] ?? SEED.region;
}

/** The signing service of a SigV4 request (`…/<region>/<service>/aws4_request`). */
function signingService(req: SimRequest): string | undefined {
  return /Credential=[^/]+\/\d{8}\/[a-z0-9-]+\/([a-z0-9-]+)\//.exec(
    String(req.headers.authorization ?? ''),
  )?.[1];
}

/** Credentials refused, as each protocol says it. */
function credentialError(service: string, e: CredentialError, requestId: string): SimResponse {
  const expired = e.problem === 'expired';
  if (service === 'sts')
    return stsError(
      new AwsError(expired ? 'ExpiredToken' : 'InvalidClientTokenId', e.message, 403),
      requestId,
    );
  if (service === 'ec2')
    return ec2Error(
      new AwsError(
        expired ? 'ExpiredToken' : 'AuthFailure',
        expired ? e.message : 'AWS was not able to validate the provided access credentials',
        expired ? 400 : 401,
      ),
      requestId,
    );
  // NOTE: AWS's JSON services answer both with 400 (STS and IAM, Query services, with 403);
  // 403 is kept here until the tests that assert it read the error name instead.
  return jsonError(
    new AwsError(expired ? 'ExpiredTokenException' : 'UnrecognizedClientException', e.message, 403),
    requestId,
  );
}

/** The operation a request names, for the call log of a request refused before it was parsed. */
function operationOf(req: SimRequest, target: unknown): string {
  if (typeof target === 'string') return target.slice(target.indexOf('.') + 1);
  return (
    new URLSearchParams(req.method === 'GET' ? req.query.toString() : req.body).get('Action') ?? 'Unknown'
  );
}

function jsonAdmin(status: number, body: unknown): SimResponse {
  return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

export async function startSimulator(opts: SimOptions = {}): Promise<Simulator> {
  const profile = opts.profile ?? 'fast';
  const clock = new SimClock(opts.now ?? Date.now, opts.timeScale ?? 1);
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 32);
  const state = new SimState();
  /** The AWS objects of every account and region used so far; the default one is `state`. */
  const partitions = new Map<string, SimState>([[partitionKey(state), state]]);
  const partitionOf = (p: Partition): SimState => {
    let s = partitions.get(partitionKey(p));
    if (!s) {
      s = new SimState(p);
      partitions.set(partitionKey(p), s);
    }
    return s;
  };
  const identities = new Identities();
  const buckets = new TokenBuckets();
  /** Cloudflare's fixed windows per token: when each began and how many calls it took. */
  const cfWindows = new Map<string, { start: number; count: number }>();
  const log = new CallLog();
  const faultRng = new Rng(seed ^ 0x5eed);
  // Request ids have their own generator so resource ids depend only on what was created.
  const requestRng = new Rng(seed ^ 0x1d5);
  let faults = mergeFaults(profile === 'realistic' ? REALISTIC_FAULTS : FAST_FAULTS, opts.faults ?? {});
  const ctx: SimContext = {
    state,
    caller: { account: SEED.accountId, arn: '', userId: '' },
    identities,
    clock,
    rng: new Rng(seed),
    durations: profile === 'realistic' ? DURATIONS.realistic : DURATIONS.fast,
    faults: () => faults,
    chance: () => faultRng.next(),
    states: () => partitions.values(),
  };

  if (opts.stateFile && existsSync(opts.stateFile)) {
    const saved = JSON.parse(readFileSync(opts.stateFile, 'utf8')) as SavedState;
    if (typeof saved.now === 'number') clock.atLeast(saved.now);
    state.load(saved, clock.now());
    for (const p of saved.partitions ?? []) partitionOf(p).load(p.state, clock.now());
    identities.load(saved.credentials);
  }

  // --- persistence -------------------------------------------------------------
  let saveTimer: NodeJS.Timeout | undefined;
  let saving: Promise<void> = Promise.resolve();
  const save = async (): Promise<void> => {
    if (!opts.stateFile) return;
    const file = opts.stateFile;
    const saved: SavedState = {
      ...state.toJSON(),
      now: clock.now(),
      partitions: [...partitions.values()]
        .filter((p) => p !== state)
        .map((p) => ({ account: p.account, region: p.region, state: p.toJSON() })),
      credentials: identities.toJSON(),
    };
    const text = JSON.stringify(saved);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, text);
    await rename(tmp, file);
  };
  const markDirty = (): void => {
    if (!opts.stateFile || saveTimer) return;
    saveTimer = setTimeout(() => {
      saveTimer = undefined;
      saving = saving.then(save, save).catch(() => undefined);
    }, SAVE_DEBOUNCE_MS);
    saveTimer.unref();
  };

  let lastSweep = Date.now();
  const sweep = (): void => {
    lastSweep = Date.now();
    for (const p of partitions.values()) p.sweep(clock.now());
    identities.sweep(clock.now());
  };

  // --- request pipeline -----------------------------------------------------------
  const route = (req: SimRequest): Prepared | SimResponse => {
    // Cloudflare is one account: its objects live in the default state.
    if (req.path === '/client/v4' || req.path.startsWith('/client/v4/')) {
      const cf = prepareCloudflare(ctx, req);
      // Cloudflare's limit is per user: the token (or key) the request carries.
      cf.limitKey = String(req.headers.authorization ?? req.headers['x-auth-key'] ?? 'anonymous');
      return cf;
    }
    const target = req.headers['x-amz-target'];
    const isForm = String(req.headers['content-type'] ?? '').includes('x-www-form-urlencoded');
    const query =
      (req.method === 'POST' && (isForm || req.body.startsWith('Action='))) || req.query.has('Action');
    const service =
      typeof target === 'string'
        ? target.slice(0, target.indexOf('.'))
        : query
          ? signingService(req) === 'sts'
            ? 'sts'
            : 'ec2'
          : undefined;
    if (service === undefined)
      return cfErrorResponse(
        new CfError(404, { code: 7000, message: `No route for ${req.method} ${req.path}` }),
      );
    // AWS: the caller's account (from its credentials) and region (from the signature) decide
    // which objects it sees.
    let caller: SimContext['caller'];
    try {
      caller = identities.resolve(req.headers, clock.now());
    } catch (e) {
      if (!(e instanceof CredentialError)) throw e;
      const resp = credentialError(service, e, req.requestId);
      log.add({
        at: clock.now(),
        service: LOG_NAMES[service] ?? service,
        operation: operationOf(req, target),
        status: resp.status,
        mutating: false,
      });
      return resp;
    }
    const scoped: SimContext = {
      ...ctx,
      caller,
      state: partitionOf({ account: caller.account, region: req.region }),
    };
    // An instance's role has no EC2, tagging or SSM permission (deploy/: the tenant and
    // workspace roles grant nothing of their own); Secrets Manager decides by the secret's policy.
    if (caller.sourceInstanceArn && service !== 'secretsmanager' && service !== 'sts') {
      const op = operationOf(req, target);
      const logged = service === 'ec2' ? 'ec2' : service === 'AmazonSSM' ? 'ssm' : 'tagging';
      log.add({ at: clock.now(), service: logged, operation: op, status: 403, mutating: false });
      return service === 'ec2'
        ? ec2Error(
            new AwsError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403),
            req.requestId,
          )
        : jsonError(
            new AwsError(
              'AccessDeniedException',
              `User: ${caller.arn} is not authorized to perform: ${logged === 'tagging' ? 'tag' : logged}:${op} because no identity-based policy allows it`,
            ),
            req.requestId,
          );
    }
    let prepared: Prepared;
    if (typeof target === 'string') {
      const op = target.slice(target.indexOf('.') + 1);
      if (service === 'secretsmanager') prepared = prepareSecrets(scoped, req, op);
      else if (service === 'ResourceGroupsTaggingAPI_20170126') prepared = prepareTagging(scoped, req, op);
      else if (service === 'AmazonSSM') prepared = prepareSsm(scoped, req, op);
      else
        return jsonError(
          new AwsError('UnknownOperationException', `Unknown target ${target}`),
          req.requestId,
        );
    } else prepared = service === 'sts' ? prepareSts(scoped, req) : prepareEc2(scoped, req);
    prepared.account = caller.account;
    prepared.region = req.region;
    return prepared;
  };

  const execute = async (p: Prepared): Promise<SimResponse> => {
    const eff = effectiveFaults(faults, p.service, p.operation);
    if (eff.latencyMs > 0) await new Promise((r) => setTimeout(r, eff.latencyMs));
    const now = clock.now();
    let resp: SimResponse | undefined;
    const cfWindow = p.service === 'cloudflare' && faults.cloudflareRateLimit === true;
    let window: { start: number; count: number } | undefined;
    if (cfWindow) {
      const key = p.limitKey ?? 'anonymous';
      window = cfWindows.get(key);
      if (!window || now >= window.start + CLOUDFLARE_WINDOW.windowMs) {
        window = { start: now, count: 0 };
        cfWindows.set(key, window);
      }
      window.count++;
      if (window.count > CLOUDFLARE_WINDOW.limit)
        resp = cfRateLimited(clock.toRealMs(window.start + CLOUDFLARE_WINDOW.windowMs - now) / 1000);
    } else if (faults.buckets && p.bucket) {
      const taken = buckets.take(p.bucket.key, p.bucket.spec, now);
      if (!taken.ok) resp = p.throttled(clock.toRealMs(taken.waitMs));
    }
    if (!resp && eff.throttleRate > 0 && faultRng.next() < eff.throttleRate) resp = p.throttled(50);
    if (!resp && eff.errorRate > 0 && faultRng.next() < eff.errorRate) {
      // Some failures happen after the change was made: the caller cannot tell.
      if (p.mutating && faultRng.next() < (faults.errorAfterCommitRatio ?? 0.5)) {
        if (p.run().status < 400) markDirty();
      }
      resp = p.failed();
    }
    if (!resp) {
      resp = p.run();
      if (p.mutating && resp.status < 400) markDirty();
    }
    if (window) {
      const resetSeconds = Math.ceil(
        clock.toRealMs(window.start + CLOUDFLARE_WINDOW.windowMs - clock.now()) / 1000,
      );
      resp.headers.ratelimit = `"default";r=${Math.max(0, CLOUDFLARE_WINDOW.limit - window.count)};t=${Math.max(0, resetSeconds)}`;
      resp.headers['ratelimit-policy'] =
        `"burst";q=${CLOUDFLARE_WINDOW.limit};w=${CLOUDFLARE_WINDOW.windowMs / 1000}`;
    } else if (p.service === 'cloudflare' && faults.buckets) {
      const left = Math.floor(buckets.peek('cloudflare', CLOUDFLARE_BUCKET, clock.now()));
      resp.headers.ratelimit = `"default";r=${left};t=${Math.ceil(clock.toRealMs(((CLOUDFLARE_BUCKET.capacity - left) / CLOUDFLARE_BUCKET.refillPerSecond) * 1000) / 1000)}`;
      resp.headers['ratelimit-policy'] = `"burst";q=${CLOUDFLARE_BUCKET.capacity};w=300`;
    }
    log.add({
      at: clock.now(),
      service: p.service,
      operation: p.operation,
      status: resp.status,
      mutating: p.mutating,
      ...(p.target !== undefined && p.target !== '' ? { target: p.target } : {}),
      ...(p.service !== 'cloudflare' ? { account: p.account, region: p.region } : {}),
    });
    return resp;
  };

  const sim = {} as Simulator;
  const admin = async (
    method: string,
    path: string,
    query: URLSearchParams,
    body: string,
  ): Promise<SimResponse> => {
    const parse = (): Record<string, unknown> =>
      body.trim() === '' ? {} : (JSON.parse(body) as Record<string, unknown>);
    try {
      if (method === 'GET' && (path === '/_sim' || path === '/_sim/')) {
        return jsonAdmin(200, {
          url: sim.url,
          seed: SEED,
          profile,
          timeScale: clock.timeScale,
          now: clock.now(),
        });
      }
      if (method === 'GET' && path === '/_sim/state') return jsonAdmin(200, sim.dump());
      if (method === 'GET' && path === '/_sim/calls') return jsonAdmin(200, sim.calls());
      if (method === 'DELETE' && path === '/_sim/calls') {
        sim.resetCalls();
        return jsonAdmin(200, { ok: true });
      }
      if (method === 'GET' && path === '/_sim/log') {
        const since = query.get('since');
        return jsonAdmin(200, sim.callLog(since === null ? undefined : Number(since)));
      }
      if (method === 'GET' && path === '/_sim/faults') return jsonAdmin(200, sim.getFaults());
      if ((method === 'PUT' || method === 'PATCH' || method === 'POST') && path === '/_sim/faults') {
        sim.setFaults(parse() as Partial<FaultSettings>);
        return jsonAdmin(200, sim.getFaults());
      }
      if (method === 'GET' && path === '/_sim/network') {
        return jsonAdmin(
          200,
          sim.network(query.get('account') ?? SEED.accountId, query.get('region') ?? SEED.region),
        );
      }
      const creds = /^\/_sim\/instance-credentials\/([^/]+)$/.exec(path);
      if (method === 'GET' && creds) {
        try {
          return jsonAdmin(200, sim.instanceCredentials(decodeURIComponent(creds[1]!)));
        } catch (e) {
          if (!(e instanceof InstanceCredentialsRefused)) throw e;
          return jsonAdmin(e.status, { error: e.message });
        }
      }
      if (method === 'POST' && path === '/_sim/reset') {
        sim.reset();
        return jsonAdmin(200, { ok: true });
      }
      if (method === 'POST' && path === '/_sim/advance') {
        const ms = Number(parse().ms);
        sim.advance(ms);
        return jsonAdmin(200, { now: clock.now() });
      }
      return jsonAdmin(404, { error: `no admin route ${method} ${path}` });
    } catch (e) {
      return jsonAdmin(400, { error: e instanceof Error ? e.message : String(e) });
    }
  };

  const send = (res: ServerResponse, r: SimResponse): void => {
    const body = Buffer.from(r.body, 'utf8');
    res.writeHead(r.status, { ...r.headers, 'content-length': body.length });
    res.end(body);
  };

  const onRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      const body = await readBody(req);
      const url = new URL(req.url ?? '/', 'http://sim');
      const method = (req.method ?? 'GET').toUpperCase();
      if (url.pathname === '/_sim' || url.pathname.startsWith('/_sim/')) {
        send(res, await admin(method, url.pathname, url.searchParams, body));
        return;
      }
      if (Date.now() - lastSweep > SWEEP_EVERY_REAL_MS) sweep();
      const requestId = requestRng.uuid();
      const simReq: SimRequest = {
        method,
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body,
        region: regionOf(req),
        requestId,
      };
      const routed = route(simReq);
      send(res, 'run' in routed ? await execute(routed) : routed);
    } catch (e) {
      if (!res.headersSent) send(res, jsonAdmin(500, { error: e instanceof Error ? e.message : String(e) }));
      else res.destroy();
    }
  };

  const server = http.createServer((req, res) => {
    void onRequest(req, res);
  });
  // Longer than client keep-alive pools, so a reused socket is never closed under a request.
  server.keepAliveTimeout = 65_000;
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 4566, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${urlHost}:${port}`;

  let closed = false;
  Object.assign(sim, {
    url,
    awsEndpoint: url,
    cloudflareBaseUrl: `${url}/client/v4`,
    seed: { ...SEED },
    network(account: string, region = SEED.region): NetworkInfo {
      const part = partitionOf({ account, region });
      if (isDefaultPartition(part)) {
        return {
          account,
          region,
          vpcId: SEED.vpcId,
          vpcCidr: SEED.vpcCidr,
          subnetId: SEED.subnetId,
          defaultSecurityGroupId: SEED_DEFAULT_GROUP_ID,
        };
      }
      const net = defaultNetwork(part);
      return {
        account,
        region,
        vpcId: net.vpcId,
        vpcCidr: net.vpcCidr,
        subnetId: net.subnetIds[0]!,
        defaultSecurityGroupId: `sg-${net.vpcId.slice(4)}`,
      };
    },
    setFaults(f: Partial<FaultSettings>) {
      faults = mergeFaults(faults, f);
    },
    getFaults: () => structuredClone(faults),
    reset() {
      state.reset();
      for (const key of [...partitions.keys()]) if (partitions.get(key) !== state) partitions.delete(key);
      buckets.reset();
      cfWindows.clear();
      markDirty();
    },
    dump(): SimStateDump {
      const now = clock.now();
      const dumped = (p: SimState) => {
        for (const i of p.instances.values()) settle(i, now);
        const data = p.toJSON();
        return {
          ...data,
          instances: data.instances.map((i) => ({
            ...i,
            ...(i.userData !== undefined
              ? { userDataDecoded: Buffer.from(i.userData, 'base64').toString('utf8') }
              : {}),
            ...(p.commandsByInstance.has(i.id)
              ? { commands: commandsOn(p.commandsByInstance.get(i.id), i.id, now) }
              : {}),
          })),
        };
      };
      return {
        ...dumped(state),
        now,
        seed: { ...SEED },
        calls: log.totals(),
        partitions: [...partitions.values()]
          .filter((p) => p !== state)
          .map((p) => ({ account: p.account, region: p.region, ...dumped(p) })),
      };
    },
    calls: () => log.totals(),
    callLog: (since?: number) => log.records(since),
    resetCalls: () => log.clear(),
    advance(ms: number) {
      clock.advance(ms);
      sweep();
    },
    now: () => clock.now(),
    instanceCredentials(instanceId: string): InstanceCredentials {
      const now = clock.now();
      let found: Instance | undefined;
      for (const p of partitions.values()) found ??= p.instances.get(instanceId);
      if (!found) throw new InstanceCredentialsRefused(404, `no instance ${instanceId}`);
      settle(found, now);
      if (found.state !== 'running')
        throw new InstanceCredentialsRefused(409, `instance ${instanceId} is ${found.state}, not running`);
      const profile = found.iamInstanceProfile?.arn;
      const m = profile === undefined ? null : /^arn:aws:iam::(\d{12}):instance-profile\/(.+)$/.exec(profile);
      if (!profile || !m)
        throw new InstanceCredentialsRefused(404, `instance ${instanceId} has no instance profile`);
      // NOTE: a profile's role is the role of the same path and name in the profile's account,
      // as the console creates them.
      const roleArn = `arn:aws:iam::${m[1]}:role/${m[2]}`;
      const roleName = m[2]!.slice(m[2]!.lastIndexOf('/') + 1);
      const account = found.ownerId ?? SEED.accountId;
      const roleId = `AROA${fnv(roleArn).toUpperCase()}${fnv(`${roleArn}/id`).toUpperCase().slice(0, 9)}`;
      const issued = identities.issue(
        {
          account,
          arn: `arn:aws:sts::${account}:assumed-role/${roleName}/${instanceId}`,
          userId: `${roleId}:${instanceId}`,
          roleArn,
          sourceInstanceArn: instanceArn(found),
        },
        now,
        DURATIONS.instanceCredentialsMs,
        ctx.rng,
      );
      markDirty();
      return {
        Code: 'Success',
        Type: 'AWS-HMAC',
        LastUpdated: new Date(now).toISOString(),
        AccessKeyId: issued.accessKeyId,
        SecretAccessKey: issued.secretAccessKey,
        Token: issued.sessionToken,
        Expiration: new Date(issued.expiresAt).toISOString(),
        RoleArn: roleArn,
        InstanceArn: instanceArn(found),
        InstanceProfileArn: profile,
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      if (saveTimer) {
        clearTimeout(saveTimer);
        saveTimer = undefined;
      }
      await saving;
      if (opts.stateFile) await save();
    },
  } satisfies Simulator);
  return sim;
}
