import { createInstanceController } from '../controllers/instance.js';
import { createSecretsController } from '../controllers/secrets.js';
import { createSecurityGroupController } from '../controllers/securitygroup.js';
import { createTunnelController } from '../controllers/tunnel.js';
import { createCloudPorts } from './cloud/index.js';
import { Inventory, LiveView } from './cloud/inventory.js';
import type { CloudPorts } from './cloud/ports.js';
import { type Config, capabilities } from './config.js';
import type { Database } from './db/client.js';
import { DesiredStateRepository, liveOwners, type OwnerRef } from './db/desired.js';
import { PinsCache } from './db/pins.js';
import { DesiredSnapshot } from './db/snapshot.js';
import { StatusRepository } from './db/status.js';
import type { Logger } from './observability/logger.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { systemClock } from './runtime/clock.js';
import type { AnyController, ControllerName } from './runtime/controller.js';
import { NotLeaderError } from './runtime/errors.js';
import { Finalizers } from './runtime/finalizers.js';
import { type LeaderJob, Manager, type ManagerOptions } from './runtime/manager.js';
import { type Action, Reconciler } from './runtime/reconciler.js';

export interface ControllerSet {
  controllers: AnyController[];
  enabled: Set<ControllerName>;
  /** Why each disabled controller is off, for the startup log and `/readyz`. */
  disabled: Partial<Record<ControllerName, string>>;
}

/**
 * Every provisioning controller, wired to its ports. A controller whose configuration is
 * missing is still registered (deletion ordering depends on it) but does not run.
 */
export function buildControllers(config: Config, ports: CloudPorts): ControllerSet {
  const caps = capabilities(config);
  const controllers: AnyController[] = [
    createSecurityGroupController({ ec2: ports.ec2 }),
    createSecretsController({ secrets: ports.secrets, ...(ports.tunnels ? { tunnels: ports.tunnels } : {}) }),
    createInstanceController({ ec2: ports.ec2 }),
  ];
  const disabled: ControllerSet['disabled'] = {};
  if (ports.tunnels && ports.dns)
    controllers.push(createTunnelController({ tunnels: ports.tunnels, dns: ports.dns }));
  else disabled.tunnel = `Cloudflare is not configured: set ${caps.cloudflare.join(', ')}`;
  if (caps.instance.length > 0) {
    disabled.instance = `instances are not launched without ${caps.instance.join(' and ')} (the instance fetches its bootstrap bundle with its instance profile)`;
  }
  if (caps.securityGroup.length > 0) {
    disabled.securitygroup = 'neither EC2_VPC_ID nor EC2_SECURITY_GROUP is set';
  }
  const enabled = new Set(controllers.map((c) => c.name).filter((n) => !disabled[n]));
  return { controllers, enabled, disabled };
}

export interface OperatorOptions {
  config: Config;
  database: Database;
  metrics: Metrics;
  logger: Logger;
  ports?: CloudPorts;
  awsCredentials?: { accessKeyId: string; secretAccessKey: string };
  /** Leader-only periodic jobs (the orphan scan); `assertLeader` guards their cloud mutations. */
  jobs?: (ports: CloudPorts, assertLeader: () => void) => LeaderJob[];
  manager?: Partial<
    Omit<ManagerOptions, 'config' | 'database' | 'ports' | 'metrics' | 'logger' | 'controllers'>
  >;
}

export interface Operator {
  manager: Manager;
  ports: CloudPorts;
  set: ControllerSet;
  stop(): Promise<void>;
}

/** Wires config → ports → controllers → manager (kubebuilder's cmd/main.go) and starts it. */
export async function startOperator(options: OperatorOptions): Promise<Operator> {
  const { config, database, metrics, logger } = options;
  let manager: Manager | undefined;
  const assertLeader = () => {
    if (!manager) throw new NotLeaderError();
    manager.elector.assertLeader();
  };
  const ports =
    options.ports ??
    createCloudPorts(config, {
      metrics,
      ...(options.awsCredentials ? { awsCredentials: options.awsCredentials } : {}),
      // Leadership is checked again as each mutating request leaves, not only when it was decided.
      mutationGuard: assertLeader,
    });
  const set = buildControllers(config, ports);
  for (const [controller, why] of Object.entries(set.disabled))
    logger.warn({ controller, why }, 'controller disabled');
  manager = new Manager({
    config,
    database,
    ports,
    metrics,
    logger,
    controllers: set.controllers,
    enabled: set.enabled,
    jobs: options.jobs?.(ports, assertLeader) ?? [],
    ...options.manager,
  });
  await manager.start();
  return { manager, ports, set, stop: () => manager.stop() };
}

export interface PlanEntry {
  owner: OwnerRef;
  slug: string;
  controller: ControllerName;
  action: Action['type'];
  detail: string;
  diff: string[];
}

/**
 * Every controller's intended action for every live owner, from one inventory listing and the
 * same decision code the controllers run; executes nothing (`molecule-operator plan`).
 */
export async function planAll(options: {
  config: Config;
  database: Database;
  ports: CloudPorts;
  logger: Logger;
}): Promise<PlanEntry[]> {
  const { config, database, ports, logger } = options;
  const set = buildControllers(config, ports);
  const all = new Map(set.controllers.map((c) => [c.name, c]));
  const desired = new DesiredStateRepository(database.db);
  const pins = new PinsCache(database.db);
  const live = new LiveView(ports, config.MOLECULE_ENV, config.EC2_VPC_ID);
  const reconcilers = set.controllers
    .filter((c) => set.enabled.has(c.name))
    .map(
      (c) =>
        new Reconciler(c, {
          config,
          controllers: all,
          enabled: set.enabled,
          desired,
          loadOwner: (owner) => DesiredSnapshot.loadOwner(database, owner),
          status: new StatusRepository(database.db),
          finalizers: new Finalizers(database.db),
          liveView: live,
          pins: () => pins.get(),
          metrics: createMetrics({ defaults: false }),
          logger,
          clock: systemClock,
          assertLeader: () => {
            throw new Error('plan never acts');
          },
          wake: () => {},
          pollIntervalMs: 0,
        }),
    );
  const [owners, inventory] = await Promise.all([
    liveOwners(database.db),
    Inventory.build(ports, config.MOLECULE_ENV),
  ]);
  const orgSlugs = new Map(
    (
      await database.query<{ id: string; slug: string }>('SELECT id, slug FROM orgs WHERE purged_at IS NULL')
    ).map((o) => [o.id, o.slug]),
  );
  const slugOf = (owner: OwnerRef) =>
    orgSlugs.get(
      owner.kind === 'org' ? owner.id : (owners.workspaces.find((w) => w.id === owner.id)?.orgId ?? ''),
    ) ?? '';
  const entries: PlanEntry[] = [];
  const refs: OwnerRef[] = [
    ...owners.orgs.map((id) => ({ kind: 'org' as const, id })),
    ...owners.workspaces.map((w) => ({ kind: 'workspace' as const, id: w.id })),
  ];
  for (const owner of refs) {
    for (const r of reconcilers) {
      const controller = all.get(r.name)!;
      if (!controller.owners.includes(owner.kind)) continue;
      const planned = await r.plan(owner, inventory);
      if (!planned) continue;
      const a = planned.action;
      const detail =
        a.type === 'wait'
          ? a.reason
          : a.type === 'update'
            ? planned.diff.join('; ')
            : a.type === 'create'
              ? `token ${a.token}`
              : (planned.note ?? Object.values(planned.externalIds ?? {}).join(' '));
      entries.push({
        owner,
        slug: slugOf(owner),
        controller: r.name,
        action: a.type,
        detail,
        diff: planned.diff,
      });
    }
  }
  return entries;
}
