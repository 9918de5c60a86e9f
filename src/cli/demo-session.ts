import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createWriteStream, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import type { OrphanScanner } from '../../controllers/orphan.js';
import { buildApiServer } from '../api/server.js';
import { type Config, loadConfig } from '../config.js';
import type { Database } from '../db/client.js';
import { DesiredStateRepository } from '../db/desired.js';
import { createLogger } from '../observability/logger.js';
import { type Operator, startOperator } from '../operator.js';
import { effectiveTier } from '../provisioning/tiers.js';
import { type Simulator, startSimulator } from '../sim/index.js';
import { listening } from './args.js';
import { describeDatabase, openForCommand } from './database.js';
import { type DemoLockHandle, LOCK_FILE } from './lock.js';
import { runOrphansCommand } from './orphans.js';
import { planReport } from './plan.js';
import type { waitForShutdownSignal } from './signals.js';
import { loadAllOrgs } from './status.js';
import { type CliContext, CliError } from './types.js';

const SAMPLE_ORGS = [
  {
    slug: 'acme',
    name: 'Acme Corp',
    workspaces: [
      { runtime: 'hermes', tier: 3 },
      { runtime: 'langgraph', tier: 4 },
    ],
  },
  { slug: 'globex', name: 'Globex', isCanary: true, workspaces: [{ runtime: 'claude-code', tier: 4 }] },
  {
    slug: 'initech',
    name: 'Initech',
    workspaces: [
      { runtime: 'crewai', tier: 5 },
      { runtime: 'langgraph', tier: 3 },
    ],
  },
];

/** The demo's stand-in credentials for the simulator (it accepts any). */
const SIM_CREDENTIALS = { accessKeyId: 'AKIDMOLECULEDEMO', secretAccessKey: 'molecule-demo-simulator' };
const DEMO_ORPHAN_TAG = 'molecule-demo-orphan';
const DEMO_CANARY_ACCOUNT = '222222222222';
const DEMO_CANARY_REGION = 'us-west-2';
/** The tenant image the demo rolls out once the fleet is Ready. */
const DEMO_ROLLOUT_IMAGE = 'ghcr.io/molecule-ai/platform-tenant:demo-2';

/** The demo, once its folder is locked: loaded after the first line is out (it pulls in everything). */
export async function runDemo(
  flags: { reset?: boolean; 'sim-port'?: string; 'no-samples'?: boolean; 'database-url'?: string },
  dataDir: string,
  lock: DemoLockHandle,
  shutdown: ReturnType<typeof waitForShutdownSignal>,
  ctx: CliContext,
): Promise<number> {
  const out = (line = '') => ctx.stdout(`${line}\n`);
  if (flags.reset) out(reset(dataDir, flags['database-url']));

  const simPort = Number(flags['sim-port'] ?? 4566);
  const sim = await listening('--sim-port', simPort, () =>
    startSimulator({ port: simPort, profile: 'fast', stateFile: join(dataDir, 'sim-state.json') }),
  );
  const generated = loadOrCreateGenerated(dataDir);
  // Canary orgs live in a second simulated account, in another region, as in production.
  const canaryNet = sim.network(DEMO_CANARY_ACCOUNT, DEMO_CANARY_REGION);
  const demoEnv: Record<string, string | undefined> = {
    MOLECULE_ENV: 'demo',
    PGLITE_DIR: join(dataDir, 'pglite'),
    AWS_ENDPOINT_URL: sim.awsEndpoint,
    AWS_REGION: sim.seed.region,
    EC2_VPC_ID: sim.seed.vpcId,
    EC2_SUBNET_ID: sim.seed.subnetId,
    EIC_ENDPOINT_SG_ID: sim.seed.eicSecurityGroupId,
    EC2_TENANT_IAM_PROFILE: 'molecule-tenant-demo',
    CANARY_ROLE_ARN: `arn:aws:iam::${DEMO_CANARY_ACCOUNT}:role/molecule-operator-canary`,
    CANARY_REGION: canaryNet.region,
    CANARY_VPC_ID: canaryNet.vpcId,
    CANARY_SUBNET_ID: canaryNet.subnetId,
    // The simulator seeds no Instance Connect endpoint in a new account: the VPC's default group stands in.
    CANARY_EIC_ENDPOINT_SG_ID: canaryNet.defaultSecurityGroupId,
    CLOUDFLARE_BASE_URL: sim.cloudflareBaseUrl,
    CLOUDFLARE_API_TOKEN: sim.seed.apiToken,
    CLOUDFLARE_ACCOUNT_ID: sim.seed.cloudflareAccountId,
    CLOUDFLARE_ZONE_ID: sim.seed.cloudflareZoneId,
    RESYNC_CRON: '* * * * *',
    ORPHAN_SCAN_CRON: '* * * * *',
    CREATE_GRACE: '5s',
    // The canary soak of the demo's image rollout: long enough to see, short enough to wait for.
    ROLLOUT_CANARY_SOAK: '5s',
    ...generated,
    // The demo's database is its own (in the folder it locked) unless --database-url says otherwise:
    // a DATABASE_URL exported for other work would mix the demo's fleet into that database.
    ...withoutKeys(definedOnly(ctx.env), ['DATABASE_URL', 'DATABASE_URL_FILE', 'PGLITE_DIR']),
    ...(flags['database-url'] ? { DATABASE_URL: flags['database-url'] } : {}),
  };
  const config = loadConfig(demoEnv);
  const logFile = join(dataDir, 'demo.log');
  const logger = createLogger(
    { level: config.LOG_LEVEL, name: 'molecule-operator.demo' },
    createWriteStream(logFile, { flags: 'a' }),
  );
  const database = await openForCommand(config, { migrate: true, owner: true });
  try {
    const operator = await startOperator({
      config,
      database,
      logger,
      cloud: { awsCredentials: SIM_CREDENTIALS },
      manager: { pollIntervalMs: 250, resyncJitterMs: 1_000 },
    });
    const metrics = operator.metrics;
    const app = await buildApiServer({ config, database, metrics, logger });
    await listening('PORT', config.PORT, () => app.listen({ port: config.PORT, host: '127.0.0.1' }));
    const apiUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const control = await startControl(operator, database, config, demoEnv);
    lock.update({ apiUrl, ...control.info });
    const probes = await listening('METRICS_PORT', config.METRICS_PORT, () =>
      operator.serveProbes(config.METRICS_PORT, '127.0.0.1'),
    );
    const metricsUrl = `http://127.0.0.1:${probes.port}/metrics`;
    printBanner(out, {
      apiUrl,
      metricsUrl,
      sim,
      config,
      dataDir,
      logFile,
      ignoredDatabaseUrl: !flags['database-url'] && !!ctx.env.DATABASE_URL?.trim(),
    });

    const api = apiClient(apiUrl, config.CP_ADMIN_API_TOKEN!, shutdown.abort);
    const stopped = shutdown.signal.then(() => 'stop' as const);
    let samplesMade = false;
    const demo = (async () => {
      if (!flags['no-samples']) await createSamples(api, out, dataDir);
      samplesMade = true;
      await watchProgress(api, out, ctx, shutdown.abort);
      if (shutdown.abort.aborted) return;
      await demonstrateOrphan(
        sim,
        config,
        out,
        operator.scanner,
        operator.manager.isLeader.bind(operator.manager),
        shutdown.abort,
      );
      if (!shutdown.abort.aborted) await demonstrateRollout(api, out, dataDir, shutdown.abort);
      if (!shutdown.abort.aborted) {
        out();
        out(`The operator keeps running: try the API (see above), watch ${metricsUrl}, or Ctrl-C to stop.`);
      }
    })().catch((e) => {
      // A request cut short by Ctrl-C is not a failure: the next start finishes what is missing.
      if (shutdown.abort.aborted) return;
      logger.error({ err: String(e) }, 'demo narration failed');
      out(`demo: ${String(e)}`);
    });
    await Promise.race([stopped, demo.then(() => stopped)]);
    // The narration stops at the signal; the API must outlive its last request.
    await demo;
    out();
    out('Stopping: finishing in-flight work and releasing the leader lease…');
    await operator.stop();
    await app.close();
    await probes.close();
    await control.close();
    out(`Stopped cleanly. State is kept in ${dataDir} (run with --reset to start over).`);
    // Interrupted before the sample fleet was made (the next start finishes it): 128 + SIGINT, as
    // shells report it. Stopping a running demo is its normal end.
    if (samplesMade) return 0;
    out('Interrupted before the sample orgs were all created; the next start finishes them.');
    return 130;
  } finally {
    await database.close();
    await sim.close();
  }
}

/** What the folder holds besides the lock, for people. */
const DATA_FILES: [string, string][] = [
  ['pglite', 'the embedded database (orgs, workspaces, status, ledger)'],
  ['sim-state.json', 'the simulated cloud (instances, security groups, secrets, tunnels, DNS)'],
  ['generated.json', 'the generated CP_ADMIN_API_TOKEN and secrets'],
  ['samples.json', 'the record that the sample orgs were made'],
  ['demo.log', 'the log'],
];

/** Empties the folder (the lock stays: this process holds it) and says what went. */
function reset(dataDir: string, databaseUrl: string | undefined): string {
  const present = readdirSync(dataDir).filter((e) => e !== LOCK_FILE);
  for (const entry of present) rmSync(join(dataDir, entry), { recursive: true, force: true });
  const known = DATA_FILES.filter(([f]) => present.includes(f)).map(
    ([f, what]) => `  ${f.padEnd(15)} ${what}`,
  );
  const other = present.filter((e) => !DATA_FILES.some(([f]) => f === e));
  const lines = [
    present.length === 0 ? `Reset: ${dataDir} was already empty.` : `Reset: removed from ${dataDir}:`,
    ...known,
    ...(other.length ? [`  ${other.join(', ')}`] : []),
  ];
  if (databaseUrl)
    lines.push('  (the PostgreSQL database given by --database-url is not reset: its orgs stay)');
  return lines.join('\n');
}

const withoutKeys = (env: Record<string, string>, keys: string[]) =>
  Object.fromEntries(Object.entries(env).filter(([k]) => !keys.includes(k)));

/** Generated values persist in the data dir so a restarted demo keeps its token. */
function loadOrCreateGenerated(dataDir: string): Record<string, string> {
  const file = join(dataDir, 'generated.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8'));
  const values = {
    CP_ADMIN_API_TOKEN: `demo-${randomBytes(18).toString('base64url')}`,
    PROVISION_SHARED_SECRET: randomBytes(24).toString('base64url'),
    GHCR_PULL_TOKEN: `ghp_demo${randomBytes(12).toString('hex')}`,
  };
  writeFileSync(file, JSON.stringify(values, null, 2), { mode: 0o600 });
  return values;
}

function definedOnly(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => !!e[1] && e[1].trim() !== ''),
  );
}

function printBanner(
  out: (l?: string) => void,
  i: {
    apiUrl: string;
    metricsUrl: string;
    sim: Simulator;
    config: Config;
    dataDir: string;
    logFile: string;
    ignoredDatabaseUrl: boolean;
  },
) {
  out('molecule-operator demo');
  out('======================');
  out(`API          ${i.apiUrl}   (Authorization: Bearer ${i.config.CP_ADMIN_API_TOKEN})`);
  out(`Metrics      ${i.metricsUrl}`);
  out(`Simulator    ${i.sim.url}   (state dump: ${i.sim.url}/_sim/state)`);
  out(
    `Database     ${describeDatabase(i.config)}${i.config.DATABASE_URL ? ' (--database-url)' : ' (embedded)'}${i.ignoredDatabaseUrl ? '; DATABASE_URL in this shell is not used (pass --database-url "$DATABASE_URL" to use it)' : ''}`,
  );
  out(`Environment  MOLECULE_ENV=${i.config.MOLECULE_ENV}; data in ${i.dataDir}; logs in ${i.logFile}`);
  out(`Targets      primary: account ${i.sim.seed.accountId}, ${i.config.AWS_REGION}`);
  out(
    `             canary:  account ${DEMO_CANARY_ACCOUNT}, ${i.config.CANARY_REGION} (role ${i.config.CANARY_ROLE_ARN}; canary orgs live here)`,
  );
  out();
  out('In another shell, this sets up the CLI, the AWS CLI and curl for this demo:');
  for (const line of exportBlock(i)) out(`  ${line}`);
  out(
    'Then:  npx molecule-operator status   (plan and orphans, too: they ask this demo, which owns the folder)',
  );
  out('       aws ec2 describe-instances --filters Name=tag:ManagedBy,Values=molecule-operator');
  out('       curl -H "Authorization: Bearer $CP_ADMIN_API_TOKEN" $MOLECULE_API_URL/cp/orgs');
  out();
}

/**
 * Every variable the demo runs with that differs from the defaults, as `export` lines: with them a
 * second shell plans and lists against this demo (not MOLECULE_ENV=dev, not real AWS).
 */
export function exportBlock(i: { apiUrl: string; sim: Simulator; config: Config }): string[] {
  const c = i.config;
  const vars: [string, string | undefined][][] = [
    [
      ['MOLECULE_ENV', c.MOLECULE_ENV],
      c.DATABASE_URL ? ['DATABASE_URL', '<as exported>'] : ['PGLITE_DIR', c.PGLITE_DIR],
    ],
    [
      ['MOLECULE_API_URL', i.apiUrl],
      ['CP_ADMIN_API_TOKEN', c.CP_ADMIN_API_TOKEN],
    ],
    [
      ['AWS_ENDPOINT_URL', c.AWS_ENDPOINT_URL],
      ['AWS_REGION', c.AWS_REGION],
      ['AWS_ACCESS_KEY_ID', SIM_CREDENTIALS.accessKeyId],
      ['AWS_SECRET_ACCESS_KEY', SIM_CREDENTIALS.secretAccessKey],
    ],
    [
      ['EC2_VPC_ID', c.EC2_VPC_ID],
      ['EC2_SUBNET_ID', c.EC2_SUBNET_ID],
      ['EIC_ENDPOINT_SG_ID', c.EIC_ENDPOINT_SG_ID],
      ['EC2_TENANT_IAM_PROFILE', c.EC2_TENANT_IAM_PROFILE],
    ],
    [
      ['CANARY_ROLE_ARN', c.CANARY_ROLE_ARN],
      ['CANARY_REGION', c.CANARY_REGION],
      ['CANARY_VPC_ID', c.CANARY_VPC_ID],
      ['CANARY_SUBNET_ID', c.CANARY_SUBNET_ID],
      ['CANARY_EIC_ENDPOINT_SG_ID', c.CANARY_EIC_ENDPOINT_SG_ID],
    ],
    [
      ['CLOUDFLARE_BASE_URL', c.CLOUDFLARE_BASE_URL],
      ['CLOUDFLARE_API_TOKEN', c.CLOUDFLARE_API_TOKEN],
      ['CLOUDFLARE_ACCOUNT_ID', c.CLOUDFLARE_ACCOUNT_ID],
      ['CLOUDFLARE_ZONE_ID', c.CLOUDFLARE_ZONE_ID],
    ],
  ];
  return vars
    .map((group) => group.filter((v): v is [string, string] => !!v[1]))
    .filter((group) => group.length > 0)
    .map((group) => `export ${group.map(([k, v]) => `${k}=${shellQuote(v)}`).join(' ')}`);
}

const shellQuote = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replaceAll("'", "'\\''")}'`);

/**
 * A loopback endpoint for what the API does not offer: `plan` and `status` from another shell
 * while this process owns the embedded database. Its bearer token is in demo.lock (mode 0600).
 */
async function startControl(
  operator: Operator,
  database: Database,
  config: Config,
  env: Record<string, string | undefined>,
) {
  const token = randomBytes(18).toString('base64url');
  const expected = Buffer.from(`Bearer ${token}`);
  const server = createServer((req, res) => {
    const given = Buffer.from(req.headers.authorization ?? '');
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return send(401, { error: 'unauthorized' });
    const url = new URL(req.url ?? '/', 'http://control');
    const org = url.searchParams.get('org') ?? undefined;
    const answer =
      url.pathname === '/plan'
        ? planReport(operator, describeDatabase(config), org)
        : url.pathname === '/status'
          ? loadAllOrgs(new DesiredStateRepository(database.db))
          : url.pathname === '/orphans'
            ? orphansHere(JSON.parse(url.searchParams.get('args') ?? '[]'), database, env)
            : undefined;
    if (!answer) return send(404, { error: 'not found' });
    answer.then(
      (body) => send(200, body),
      (e: Error) => send(e instanceof CliError ? 404 : 500, { error: e.message, hint: (e as CliError).hint }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    info: { controlUrl: `http://127.0.0.1:${port}`, controlToken: token },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** `orphans` as this process runs it, with its database and the simulator's credentials. */
async function orphansHere(args: string[], database: Database, env: Record<string, string | undefined>) {
  let stdout = '';
  let stderr = '';
  const ctx = {
    env,
    stdout: (t: string) => {
      stdout += t;
    },
    stderr: (t: string) => {
      stderr += t;
    },
  };
  const code = await runOrphansCommand(args, ctx, { database, cloud: { awsCredentials: SIM_CREDENTIALS } });
  return { code, stdout, stderr };
}

type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>;

function apiClient(base: string, token: string, signal: AbortSignal): Api {
  return async (method, path, body) => {
    const res = await fetch(`${base}${path}`, {
      method,
      signal,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
}

/**
 * Creates the sample orgs and workspaces that are missing. An interrupted first start leaves some:
 * the next one finishes them. Once complete (samples.json), orgs deleted on purpose stay deleted.
 */
async function createSamples(api: Api, out: (l?: string) => void, dataDir: string): Promise<void> {
  const marker = join(dataDir, 'samples.json');
  if (existsSync(marker)) {
    out('Resuming: the sample orgs were created by an earlier run.');
    return;
  }
  const existing = await Promise.all(SAMPLE_ORGS.map((o) => api('GET', `/cp/orgs/${o.slug}`)));
  const made = existing.filter((r) => r.status === 200).length;
  const any = await api('GET', '/cp/orgs?limit=1');
  if (made === 0 && any.body?.items?.length > 0) {
    out('Resuming: the store already holds orgs, so no samples are created.');
    return;
  }
  out(
    made > 0
      ? 'Finishing the sample orgs an interrupted run left half-made:'
      : 'Creating sample orgs through the API:',
  );
  for (const [i, o] of SAMPLE_ORGS.entries()) {
    let have: { runtime: string; tier: number }[] = [];
    if (existing[i]!.status === 200) {
      have = existing[i]!.body.workspaces ?? [];
    } else {
      const res = await api('POST', '/cp/orgs', {
        slug: o.slug,
        name: o.name,
        ...(o.isCanary ? { isCanary: true } : {}),
      });
      if (res.status !== 201)
        throw new Error(`POST /cp/orgs ${o.slug}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    for (const w of o.workspaces) {
      const at = have.findIndex((h) => h.runtime === w.runtime);
      if (at >= 0) {
        have.splice(at, 1);
        continue;
      }
      const ws = await api('POST', `/cp/orgs/${o.slug}/workspaces`, w);
      if (ws.status !== 201) throw new Error(`POST workspace for ${o.slug}: ${ws.status}`);
    }
    out(
      `  ${o.slug.padEnd(8)} ${o.workspaces.map((w) => `${w.runtime} (tier ${w.tier}${effectiveTier(w.tier) === w.tier ? '' : `, runs as ${effectiveTier(w.tier)}`})`).join(', ')}${o.isCanary ? `  [canary: account ${DEMO_CANARY_ACCOUNT}, ${DEMO_CANARY_REGION}]` : ''}`,
    );
  }
  writeFileSync(marker, `${JSON.stringify({ createdAt: new Date().toISOString() })}\n`);
  out();
}

/** Polls the API until every owner is Ready; a progress bar on a TTY, plain lines otherwise. */
async function watchProgress(
  api: Api,
  out: (l?: string) => void,
  ctx: CliContext,
  abort: AbortSignal,
): Promise<void> {
  const tty = process.stdout.isTTY === true;
  const started = Date.now();
  let last = '';
  while (!abort.aborted) {
    const res = await api('GET', '/cp/orgs?limit=200');
    const orgs = (res.body?.items ?? []) as {
      slug: string;
      status: { ready: boolean; reason: string };
      workspaces: { status: { ready: boolean } }[];
    }[];
    const owners = orgs.flatMap((o) => [o.status.ready, ...o.workspaces.map((w) => w.status.ready)]);
    const ready = owners.filter(Boolean).length;
    const total = owners.length;
    const waiting = orgs.find((o) => !o.status.ready)?.status.reason;
    const line = `${bar(ready, total)} ${ready}/${total} owners Ready${waiting && ready < total ? `  (next: ${waiting})` : ''}`;
    if (tty) ctx.stdout(`\r${line.padEnd(80)}`);
    else if (line !== last) out(line);
    last = line;
    if (total > 0 && ready === total) {
      if (tty) out();
      out(
        `All Ready in ${((Date.now() - started) / 1000).toFixed(1)} s: every org has a tunnel, DNS record, bootstrap secret, security groups and instances.`,
      );
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function bar(done: number, total: number, width = 24): string {
  const filled = total === 0 ? 0 : Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

/** Leaks an instance on purpose, with our tags and an owner that does not exist, and shows the scan finding it. */
async function demonstrateOrphan(
  sim: Simulator,
  config: Config,
  out: (l?: string) => void,
  scanner: OrphanScanner,
  isLeader: () => boolean,
  abort: AbortSignal,
): Promise<void> {
  const ec2 = new EC2Client({
    endpoint: sim.awsEndpoint,
    region: config.AWS_REGION,
    credentials: SIM_CREDENTIALS,
    maxAttempts: 3,
  });
  const existing = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: `tag:${DEMO_ORPHAN_TAG}`, Values: ['true'] },
        { Name: 'instance-state-name', Values: ['pending', 'running'] },
      ],
    }),
  );
  const made = (existing.Reservations ?? []).flatMap((r) => r.Instances ?? []).length > 0;
  out();
  if (!made) {
    const fakeOrg = '00000000-0000-4000-8000-00000000dead';
    const res = await ec2.send(
      new RunInstancesCommand({
        ImageId: config.EC2_AMI,
        InstanceType: 't3.small',
        MinCount: 1,
        MaxCount: 1,
        SubnetId: config.EC2_SUBNET_ID,
        TagSpecifications: [
          {
            ResourceType: 'instance',
            Tags: [
              { Key: 'ManagedBy', Value: 'molecule-operator' },
              { Key: 'MOLECULE_ENV', Value: config.MOLECULE_ENV },
              { Key: 'OrgID', Value: fakeOrg },
              { Key: 'Role', Value: 'tenant' },
              { Key: DEMO_ORPHAN_TAG, Value: 'true' },
            ],
          },
        ],
      }),
    );
    out(
      `Leaking one instance out of band (${res.Instances?.[0]?.InstanceId}) tagged as ours with OrgID ${fakeOrg}, which no org has…`,
    );
  } else {
    out('The leaked demo instance from an earlier run is still there.');
  }
  const deadline = Date.now() + 30_000;
  while (!abort.aborted && !isLeader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (abort.aborted) return;
  const result = await scanner.scan();
  if (!result.ok) {
    out(`Orphan scan failed: ${result.errors.join('; ')}`);
    return;
  }
  const found = Object.entries(result.counts).filter(([, n]) => n > 0);
  out(
    `Orphan scan: ${found.map(([k, n]) => `${n} ${k}`).join(', ') || 'nothing'} orphaned, out of ${Object.values(result.managed).reduce((a, b) => a + b, 0)} managed resources.`,
  );
  out(
    '  molecule_orphan_resources{kind="ec2_instance"} now says so on /metrics; ORPHAN_POLICY=report only counts it.',
  );
}

/**
 * Rolls a new tenant image out by SSM, as an operator would: a pin through the API, then the
 * rollout as `GET /cp/admin/rollouts` reports it, stage by stage (the canary org in its own
 * account first, the soak, then the rest). Once per data folder.
 */
async function demonstrateRollout(
  api: Api,
  out: (l?: string) => void,
  dataDir: string,
  abort: AbortSignal,
): Promise<void> {
  const marker = join(dataDir, 'rollout.json');
  out();
  if (existsSync(marker)) {
    out(
      `The image rollout ran in an earlier run: GET /cp/admin/rollouts (or molecule-operator rollout status) shows it.`,
    );
    return;
  }
  const pin = await api('PUT', '/cp/admin/pins/runtime-images/tenant', { image: DEMO_ROLLOUT_IMAGE });
  if (pin.status >= 300) throw new Error(`PUT tenant image pin: ${pin.status} ${JSON.stringify(pin.body)}`);
  out(`Rolling out a new tenant image: PUT /cp/admin/pins/runtime-images/tenant → ${DEMO_ROLLOUT_IMAGE}`);
  out('  by SSM Run Command on each running instance (nothing is stopped or replaced), canary org first:');
  const started = Date.now();
  let last = '';
  while (!abort.aborted && Date.now() - started < 120_000) {
    const res = await api('GET', '/cp/admin/rollouts');
    const r = (res.body?.rollouts ?? []).find((x: { image: string }) => x.image === DEMO_ROLLOUT_IMAGE);
    if (r) {
      const c = r.counts as Record<string, number>;
      const total = Object.values(c).reduce((a, b) => a + b, 0);
      const line =
        r.stage === 'soaking'
          ? `  soaking: the canary runs it; the others wait until ${r.soakEndsAt} (ROLLOUT_CANARY_SOAK)`
          : r.stage === 'paused'
            ? `  paused after ${r.failures} failed redeploys: POST /cp/admin/rollouts/resume`
            : `  ${r.stage}: ${c.done} of ${total} tenants run it, ${c.in_flight} in flight`;
      if (line !== last) out(line);
      last = line;
      if (r.stage === 'done' || r.stage === 'paused') break;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  if (abort.aborted) return;
  if (!last.includes('done')) {
    out('  still rolling: molecule-operator rollout status --watch follows it.');
    return;
  }
  out(
    `Rollout done in ${((Date.now() - started) / 1000).toFixed(1)} s: each tenant instance's Image tag says ${DEMO_ROLLOUT_IMAGE}.`,
  );
  writeFileSync(marker, `${JSON.stringify({ image: DEMO_ROLLOUT_IMAGE, at: new Date().toISOString() })}\n`);
}
