import type { CliContext, Command } from './types.js';

export type { CliContext, Command } from './types.js';

type Run = (argv: string[], ctx: CliContext) => Promise<number>;

/**
 * Loads a development-only command (the demo, the simulator) by a computed path: the compiler
 * then does not follow it, so the production build leaves it and the simulator out
 * (tsconfig.build.json). Its module is type-checked on its own.
 */
const devOnly = (file: string): Promise<Run> =>
  (import(new URL(file, import.meta.url).href) as Promise<{ run: Run }>).then((m) => m.run);

/**
 * Every `molecule-operator` subcommand (DESIGN §8): what `--help` prints, and how to load the
 * implementation. A command loads only what it uses: `run`, `api` and `migrate` never load the
 * simulator (the production image does not ship it), and `--help` loads nothing. To add a
 * command, implement `run` in its own file and add an entry here.
 */
export const commands: Record<string, Command> = {
  demo: {
    summary: 'everything in one process: PGlite, cloud simulator, API, controllers, sample orgs',
    usage: [
      'molecule-operator demo [--reset] [--data-dir DIR] [--sim-port N] [--no-samples] [--database-url URL]',
      '',
      'Runs the whole product on this machine, with no PostgreSQL or cloud account: the embedded',
      'PGlite database and the AWS/Cloudflare simulator keep their state under DIR (default .data),',
      'so a restart resumes where it stopped. One demo per DIR (demo.lock). Configuration variables',
      'you set are honoured, except DATABASE_URL and PGLITE_DIR: the demo keeps its own database',
      'unless --database-url is given. It generates only what is unset (CP_ADMIN_API_TOKEN is',
      'printed). Ctrl-C stops cleanly.',
      '',
      '  --reset             empty DIR first: the embedded database, the simulated cloud, the generated',
      '                      token and the log (a --database-url database is not touched)',
      '  --data-dir D        where state is kept (default .data)',
      '  --sim-port N        simulator port (default 4566; 0 picks a free one)',
      '  --no-samples        do not create the sample orgs',
      '  --database-url URL  keep orgs in this PostgreSQL database instead of the embedded one',
    ].join('\n'),
    load: () => devOnly('./demo.js'),
  },
  run: {
    summary: 'run the controllers (leader-elected), with /metrics /healthz /readyz on METRICS_PORT',
    usage: [
      'molecule-operator run [--migrate]',
      '',
      'Reconciles desired orgs and workspaces against AWS and Cloudflare. Several replicas may run:',
      'one leads through the Postgres lease, the others serve probes and metrics only.',
      'Stops on SIGINT/SIGTERM: finishes in-flight reconciles and releases the lease.',
      '',
      '  --migrate   apply pending migrations first',
    ].join('\n'),
    load: () => import('./run.js').then((m): Run => m.run),
  },
  api: {
    summary: 'serve the control-plane HTTP API on PORT (needs CP_ADMIN_API_TOKEN)',
    usage: [
      'molecule-operator api [--migrate]',
      '',
      'Serves /cp/* (bearer token CP_ADMIN_API_TOKEN), /healthz, /readyz and /openapi.json on 0.0.0.0:PORT;',
      '/metrics, /healthz and /readyz on METRICS_PORT, for monitoring only.',
      'Stops gracefully on SIGINT or SIGTERM.',
      '',
      '  --migrate   apply pending migrations before serving',
    ].join('\n'),
    load: () => import('./api.js').then((m): Run => m.run),
  },
  migrate: {
    summary: 'apply database migrations (PostgreSQL at DATABASE_URL, else PGlite at PGLITE_DIR)',
    usage:
      'molecule-operator migrate\n\nApplies pending migrations from drizzle/ and says which ones ran. Safe to repeat.',
    load: () => import('./migrate.js').then((m): Run => m.run),
  },
  plan: {
    summary:
      "print every controller's intended actions without executing them (exit 2 when changes are pending)",
    usage: [
      'molecule-operator plan [--org SLUG] [-o json|table]',
      '',
      'Lists everything ours once, then asks every controller what it would do for every live',
      'owner: create, update (with the differences), delete, wait, or nothing. Nothing is changed.',
      'Exit status: 0 when converged, 2 when changes are pending, 1 on error.',
      '',
      '  --org SLUG          plan for that org and its workspaces only',
      '  -o, --output json   machine-readable output (--json is the same)',
    ].join('\n'),
    load: () => import('./plan.js').then((m): Run => m.run),
  },
  status: {
    summary: 'show orgs and workspaces with their readiness, from the database',
    usage: [
      'molecule-operator status [SLUG] [-o json|table] [--watch]',
      '',
      'One row per org and workspace. READY is yes once every controller has reconciled the',
      'current generation; TIER is the tier a workspace runs at (with the one asked for when it',
      'was clamped). With SLUG, that org alone.',
      '',
      '  -o, --output json   print the JSON the API returns (GET /cp/orgs, all pages; GET /cp/orgs/SLUG)',
      '  --json              the same as -o json',
      '  --watch             refresh every 2 s until Ctrl-C',
    ].join('\n'),
    load: () => import('./status.js').then((m): Run => m.run),
  },
  orphans: {
    summary: 'list resources that are ours but have no live owner',
    usage: [
      'molecule-operator orphans [--scan] [--all] [-o json|table]',
      '',
      '  --scan   run one orphan scan first (report only: deletions are left to the leader) and print its result',
      '  --all    include resolved and deleted ledger rows',
      '  -o, --output json   print {scan?, orphans} as JSON instead of a table (--json is the same)',
    ].join('\n'),
    load: () => import('./orphans.js').then((m): Run => m.run),
  },
  pins: {
    summary: 'list, set and unset the runtime image and AMI pins (audited; controllers act at once)',
    usage: [
      'molecule-operator pins list [--json | -o json]',
      'molecule-operator pins set image RUNTIME REF        e.g. pins set image hermes ghcr.io/molecule-ai/hermes:1.4.2',
      'molecule-operator pins set ami RUNTIME AMI_ID [--region R]',
      'molecule-operator pins unset image|ami RUNTIME [--region R]',
      'molecule-operator pins audit [--limit N] [--json]',
      '',
      'RUNTIME is a workspace runtime or `tenant`. REF is registry/name[:tag][@sha256:<64 hex>] with',
      'the registry written out and a tag or digest; AMI_ID is ami- and 8 or 17 hex digits. Each change',
      'is written with its audit row (actor cli:<user>) and wakes the controllers at once.',
      'Exit status: 0 done (also when the pin already had the value), 1 unset of a pin that is not set',
      'or a database error, 2 bad arguments (nothing written).',
      '',
      '  --region R     AWS region of an AMI pin (default AWS_REGION)',
      "  --json, -o json  print the API's JSON (GET /cp/admin/pins, PUT/DELETE answers, audit items)",
    ].join('\n'),
    load: () => import('./pins.js').then((m): Run => m.run),
  },
  rollout: {
    summary: 'show image rollouts: stage, owners per state, failures, pause',
    usage: [
      'molecule-operator rollout status [-o json] [--watch]',
      '',
      'Reads the rollout state from the database, as GET /cp/admin/rollouts does: per image, its',
      'stage (canary, soaking, rolling, paused, done), owners per state and the failed redeploys',
      'with the command status and the tail of its stderr.',
      '',
      '  -o json, --output json, --json    print the same JSON as the API',
      '  --watch   refresh every 2 s until Ctrl-C',
    ].join('\n'),
    load: () => import('./rollout.js').then((m): Run => m.run),
  },
  sim: {
    summary: 'serve the AWS and Cloudflare simulator (default port 4566)',
    usage: [
      'molecule-operator sim [--port 4566] [--host 127.0.0.1] [--profile fast|realistic] [--state-file F] [--time-scale N] [--seed N] [--strict]',
      '',
      'The AWS (EC2, Secrets Manager, Tagging API) and Cloudflare v4 simulator the tests and the demo',
      'use, for the real SDKs and the AWS CLI. It prints how to point them at it. --strict turns on',
      "the real clouds' eventual consistency, lingering state and Cloudflare's 1200 / 5 min lockout.",
    ].join('\n'),
    load: () => devOnly('./sim.js'),
  },
};
