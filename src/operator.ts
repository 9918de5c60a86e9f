import { registry as controllerRegistry, METRIC_LABELS } from '../controllers/index.js';
import { createOrphanScanner, type OrphanScanner } from '../controllers/orphan.js';
import { type CloudOptions, createTargets } from './cloud/index.js';
import { Inventory, LiveView } from './cloud/inventory.js';
import type { ResourceKind } from './cloud/ports.js';
import type { CloudTargets, TargetName } from './cloud/targets.js';
import type { Config } from './config.js';
import type { Database } from './db/client.js';
import { DesiredStateRepository, liveOwners, type OwnerRef } from './db/desired.js';
import { FinalizerRepository } from './db/finalizers.js';
import { PinsCache } from './db/pins.js';
import { DesiredSnapshot } from './db/snapshot.js';
import { StatusRepository } from './db/status.js';
import type { Logger } from './observability/logger.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { type ProbeServer, startProbeServer } from './observability/server.js';
import { type Clock, systemClock } from './runtime/clock.js';
import type { AnyController, ControllerName } from './runtime/controller.js';
import { NotLeaderError } from './runtime/errors.js';
import { DeepCheckBudget, Manager, type ManagerOptions } from './runtime/manager.js';
import { type Action, Reconciler, type ReconcilerDeps, type ReconcileTarget } from './runtime/reconciler.js';
import type { ControllerRegistry } from './runtime/registry.js';

/*
 * The composition root (kubebuilder's cmd/main.go, STYLE 13): the one place the operator is
 * assembled from its configuration. `run`, `demo`, `plan`, `orphans --scan`, the tests and the
 * benchmarks all build it here; nothing else wires controllers, targets, reconcilers, the
 * manager, the orphan scan or the probe server together.
 */

export interface OperatorOptions {
  config: Config;
  database: Database;
  logger: Logger;
  /** Defaults to a registry with every controller's and kind's series. */
  metrics?: Metrics;
  clock?: Clock;
  /** How the cloud clients are built (credentials, limiter, retries, page size). */
  cloud?: Omit<CloudOptions, 'metrics' | 'mutationGuard'>;
  /** Overrides of the manager's timings (tests and the demo run faster than production). */
  manager?: Partial<
    Pick<ManagerOptions, 'holder' | 'lease' | 'pollIntervalMs' | 'concurrency' | 'backoff' | 'resyncJitterMs'>
  >;
  /** How long AMI/image pins are cached (default 30 s). */
  pinsTtlMs?: number;
  /** Overrides ORPHAN_POLICY for this process's scans. */
  orphanPolicy?: Config['ORPHAN_POLICY'];
  /** Test seams: other controllers, and targets over other ports. */
  registry?: ControllerRegistry;
  targets?: CloudTargets;
}

export interface PlanEntry {
  owner: OwnerRef;
  slug: string;
  controller: ControllerName;
  action: Action['type'];
  detail: string;
  diff: string[];
}

/** The operator, assembled; `start` runs it. */
export interface Operator {
  readonly config: Config;
  readonly metrics: Metrics;
  readonly targets: CloudTargets;
  readonly manager: Manager;
  readonly scanner: OrphanScanner;
  /** Why each controller that does not run is off, per target (startup log, `/readyz`, CLI). */
  readonly disabled: ReadonlyMap<ControllerName, string>;
  start(): Promise<void>;
  /** Finishes in-flight work, releases the lease. */
  stop(): Promise<void>;
  /** What `/readyz` reports: ready while the desired-state listener is up. */
  readiness(): { ready: boolean; details: Record<string, unknown> };
  /** `/healthz`, `/readyz` and `/metrics` on a port of their own. */
  serveProbes(port: number, host?: string): Promise<ProbeServer>;
  /**
   * Every controller's intended action for every live owner, from one inventory listing per
   * target and the same decision code the controllers run; executes nothing.
   */
  plan(): Promise<PlanEntry[]>;
}

/** The registry's label values: every metric series exists from the start. */
export const operatorMetrics = (defaults = true): Metrics =>
  createMetrics({ defaults, labels: METRIC_LABELS });

/** Assembles the operator from its configuration; starts nothing. */
export function createOperator(options: OperatorOptions): Operator {
  const { config, database, logger } = options;
  const registry = options.registry ?? controllerRegistry;
  const metrics = options.metrics ?? operatorMetrics();
  const clock = options.clock ?? systemClock;
  let manager: Manager | undefined;
  const assertLeader = () => {
    if (!manager) throw new NotLeaderError();
    manager.elector.assertLeader();
  };
  const targets =
    options.targets ??
    createTargets(config, {
      ...options.cloud,
      metrics,
      // Leadership is checked again as each mutating request leaves, not only when it was decided.
      mutationGuard: assertLeader,
    });

  // Controllers: a client per target where each runs; the reasons where it does not.
  const disabled = new Map<ControllerName, string>();
  const clients = new Map<ControllerName, Map<TargetName, AnyController>>();
  const enabled = new Map<TargetName, Set<ControllerName>>();
  for (const target of targets.all) {
    const ports = targets.portsFor(target);
    const here = new Set<ControllerName>();
    for (const spec of registry.controllers) {
      const why = spec.disabledBecause(target, ports, config);
      if (why) {
        disabled.set(spec.name, targets.all.length > 1 ? `${target.name}: ${why}` : why);
        continue;
      }
      here.add(spec.name);
      if (!clients.has(spec.name)) clients.set(spec.name, new Map());
      clients.get(spec.name)!.set(target.name, spec.create(ports));
    }
    enabled.set(target.name, here);
  }
  const running = registry.controllers.filter((c) => clients.has(c.name));
  const kinds = new Set<ResourceKind>(running.flatMap((c) => c.kinds.map((k) => k.kind)));

  // Reconciler dependencies, built once; the manager and `plan` differ only in the hooks.
  const reconcileTargets = new Map<TargetName, ReconcileTarget>(
    targets.all.map((t) => [
      t.name,
      {
        settings: t,
        enabled: enabled.get(t.name)!,
        liveView: new LiveView(targets.portsFor(t), config.MOLECULE_ENV, t.vpcId),
      },
    ]),
  );
  const pins = new PinsCache(database.db, options.pinsTtlMs);
  const deepChecks = new DeepCheckBudget();
  const reconcilers = (
    hooks: Pick<ReconcilerDeps, 'assertLeader' | 'wake' | 'pollIntervalMs' | 'deepCheckBudget'>,
  ) => {
    const deps: ReconcilerDeps = {
      config,
      registry,
      targets: reconcileTargets,
      placement: () => 'primary',
      desired: new DesiredStateRepository(database.db),
      loadOwner: (owner) => DesiredSnapshot.loadOwner(database, owner),
      status: new StatusRepository(database.db),
      finalizers: new FinalizerRepository(database.db),
      pins: () => pins.get(),
      metrics,
      logger,
      clock,
      ...hooks,
    };
    return running.map((spec) => new Reconciler(spec, clients.get(spec.name)!, deps));
  };

  const scanner = createOrphanScanner({
    config,
    database,
    targets,
    metrics,
    logger,
    clock,
    assertLeader,
    ...(options.orphanPolicy ? { policy: options.orphanPolicy } : {}),
  });
  const m = new Manager({
    config,
    database,
    targets,
    metrics,
    logger,
    clock,
    registry,
    kinds,
    deepChecks,
    reconcilers: reconcilers({
      assertLeader,
      wake: (name, owner) => m.enqueue(name, owner, 'event'),
      pollIntervalMs: options.manager?.pollIntervalMs ?? 2_000,
      deepCheckBudget: deepChecks,
    }),
    jobs: [scanner.job()],
    ...options.manager,
    lease: {
      leaseDurationMs: config.LEASE_DURATION,
      renewDeadlineMs: config.LEASE_RENEW_DEADLINE,
      retryPeriodMs: config.LEASE_RETRY_PERIOD,
      ...options.manager?.lease,
    },
  });
  manager = m;

  const readiness = () => {
    const r = m.readiness();
    return {
      ready: r.listening,
      details: {
        listener: r.listening ? 'ok' : 'reconnecting',
        leader: r.leader,
        orphanDeletion: scanner.last()?.blockedByFraction
          ? 'blocked: orphans exceed ORPHAN_MAX_FRACTION'
          : 'ok',
        controllers: Object.fromEntries(
          registry.names.map((name) => [
            name,
            disabled.has(name) ? `disabled: ${disabled.get(name)}` : 'enabled',
          ]),
        ),
      },
    };
  };

  return {
    config,
    metrics,
    targets,
    manager: m,
    scanner,
    disabled,
    start: async () => {
      for (const [controller, why] of disabled) logger.warn({ controller, why }, 'controller disabled');
      await m.start();
    },
    stop: () => m.stop(),
    readiness,
    serveProbes: (port, host) => startProbeServer({ database, metrics, logger, readiness }, port, host),
    plan: async () => {
      const planners = reconcilers({
        assertLeader: () => {
          throw new Error('plan never acts');
        },
        wake: () => {},
        pollIntervalMs: 0,
      });
      return planAll(database, targets, config.MOLECULE_ENV, planners);
    },
  };
}

/** Assembles the operator and starts it. */
export async function startOperator(options: OperatorOptions): Promise<Operator> {
  const operator = createOperator(options);
  await operator.start();
  return operator;
}

async function planAll(
  database: Database,
  targets: CloudTargets,
  env: string,
  planners: Reconciler[],
): Promise<PlanEntry[]> {
  const [owners, slugs, inventory] = await Promise.all([
    liveOwners(database.db),
    new DesiredStateRepository(database.db).liveOrgSlugs(),
    Inventory.build(targets.portsFor(targets.primary), env),
  ]);
  const orgOf = new Map(owners.workspaces.map((w) => [w.id, w.orgId]));
  const refs: OwnerRef[] = [
    ...owners.orgs.map((id) => ({ kind: 'org' as const, id })),
    ...owners.workspaces.map((w) => ({ kind: 'workspace' as const, id: w.id })),
  ];
  const entries: PlanEntry[] = [];
  for (const owner of refs) {
    for (const r of planners) {
      if (!r.spec.owners.includes(owner.kind)) continue;
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
        slug: slugs.get(owner.kind === 'org' ? owner.id : (orgOf.get(owner.id) ?? '')) ?? '',
        controller: r.name,
        action: a.type,
        detail,
        diff: planned.diff,
      });
    }
  }
  return entries;
}
