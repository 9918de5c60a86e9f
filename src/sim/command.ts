import { type FaultSettings, STRICT_FIDELITY } from './faults.js';
import { type SimOptions, startSimulator } from './server.js';

const USAGE = `usage: molecule-operator sim [--port 4566] [--host 127.0.0.1] [--profile fast|realistic]
                              [--state-file FILE] [--time-scale N] [--seed N] [--strict]`;

export interface SimCommandIo {
  log: (line: string) => void;
  /** Stops the simulator like SIGINT does (used by tests and the embedding demo). */
  signal?: AbortSignal;
}

function parseArgs(argv: string[]): SimOptions | string {
  const opts: SimOptions = { port: 4566 };
  for (let n = 0; n < argv.length; n++) {
    const arg = argv[n]!;
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string | undefined => (eq > 0 ? arg.slice(eq + 1) : argv[++n]);
    const num = (name: string, min: number): number | string => {
      const v = value();
      const x = Number(v);
      return v !== undefined && v !== '' && Number.isFinite(x) && x >= min
        ? x
        : `${name} expects a number >= ${min}, got ${v}`;
    };
    switch (flag) {
      case '--port': {
        const p = num('--port', 0);
        if (typeof p === 'string' || !Number.isInteger(p) || p > 65_535) return `--port expects 0..65535`;
        opts.port = p;
        break;
      }
      case '--host': {
        const h = value();
        if (!h) return '--host expects an address';
        opts.host = h;
        break;
      }
      case '--profile': {
        const p = value();
        if (p !== 'fast' && p !== 'realistic') return `--profile expects fast or realistic, got ${p}`;
        opts.profile = p;
        break;
      }
      case '--state-file': {
        const f = value();
        if (!f) return '--state-file expects a path';
        opts.stateFile = f;
        break;
      }
      case '--time-scale': {
        const t = num('--time-scale', Number.MIN_VALUE);
        if (typeof t === 'string') return t;
        opts.timeScale = t;
        break;
      }
      case '--seed': {
        const s = num('--seed', 0);
        if (typeof s === 'string') return s;
        opts.seed = s;
        break;
      }
      case '--strict':
        // The real clouds' behaviours that are off by default (issue 21): write-call
        // consistency, blocked secret names, Cloudflare's window, lingering connections, …
        opts.faults = { ...opts.faults, ...STRICT_FIDELITY };
        break;
      default:
        return `unknown argument ${arg}`;
    }
  }
  return opts;
}

/**
 * `molecule-operator sim`: starts the simulator, prints where it listens, the seeded ids and
 * how to point the AWS CLI / SDKs / Cloudflare SDK at it, then runs until SIGINT/SIGTERM.
 * Returns the exit code (0, or 2 for bad arguments).
 */
export async function runSimCommand(argv: string[], io?: SimCommandIo): Promise<number> {
  const log = io?.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  if (argv.includes('--help') || argv.includes('-h')) {
    log(USAGE);
    return 0;
  }
  const opts = parseArgs(argv);
  if (typeof opts === 'string') {
    log(`error: ${opts}`);
    log(USAGE);
    return 2;
  }
  const sim = await startSimulator(opts);
  const s = sim.seed;
  const f: FaultSettings = sim.getFaults();
  log(`molecule-operator sim listening on ${sim.url}`);
  log(
    `profile ${opts.profile ?? 'fast'}${opts.faults ? ' (strict: every real-cloud behaviour on)' : ''}, time scale ${opts.timeScale ?? 1}, buckets ${f.buckets ? 'on' : 'off'}, latency ${f.latencyMs} ms${opts.stateFile ? `, state file ${opts.stateFile}` : ''}`,
  );
  log(
    `AWS: account ${s.accountId}, region ${s.region}, VPC ${s.vpcId} (${s.vpcCidr}), subnet ${s.subnetId}, EIC endpoint SG ${s.eicSecurityGroupId}`,
  );
  log(
    `Cloudflare: account ${s.cloudflareAccountId}, zone ${s.cloudflareZoneId} (${s.zoneName}), any bearer token (e.g. ${s.apiToken})`,
  );
  log('point clients at it:');
  log(
    `  export AWS_ENDPOINT_URL=${sim.awsEndpoint} AWS_REGION=${s.region} AWS_ACCESS_KEY_ID=sim AWS_SECRET_ACCESS_KEY=sim`,
  );
  log(`  export CLOUDFLARE_BASE_URL=${sim.cloudflareBaseUrl} CLOUDFLARE_API_TOKEN=${s.apiToken}`);
  log(
    `  export CLOUDFLARE_ACCOUNT_ID=${s.cloudflareAccountId} CLOUDFLARE_ZONE_ID=${s.cloudflareZoneId} APP_DOMAIN=${s.zoneName}`,
  );
  log(
    `  export EC2_VPC_ID=${s.vpcId} EC2_SUBNET_ID=${s.subnetId} EIC_ENDPOINT_SG_ID=${s.eicSecurityGroupId}`,
  );
  log(`  aws --endpoint-url ${sim.awsEndpoint} ec2 describe-vpcs`);
  log(
    `  new EC2Client({ endpoint: '${sim.awsEndpoint}', region: '${s.region}', credentials: { accessKeyId: 'sim', secretAccessKey: 'sim' } })`,
  );
  log(`  new Cloudflare({ apiToken: '${s.apiToken}', baseURL: '${sim.cloudflareBaseUrl}' })`);
  log(
    'services: EC2, STS (AssumeRole, GetCallerIdentity), Secrets Manager (with resource policies), Tagging API, SSM Run Command, Cloudflare tunnels and DNS',
  );
  log(
    `  other AWS accounts: AssumeRole any arn:aws:iam::<account>:role/<name> with the keys above; each account and region gets a default VPC`,
  );
  log(
    `admin: GET ${sim.url}/_sim/state | /_sim/calls | /_sim/log?since=MS | /_sim/network?account=&region= | /_sim/instance-credentials/<instanceId>, PUT /_sim/faults, POST /_sim/reset | /_sim/advance`,
  );

  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      io?.signal?.removeEventListener('abort', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (io?.signal?.aborted) stop();
    else io?.signal?.addEventListener('abort', stop);
  });
  await sim.close();
  log('molecule-operator sim stopped');
  return 0;
}
