import { registry as controllerRegistry, METRIC_LABELS, redeploy } from '../controllers/index.js';
import { createOrphanScanner, type OrphanScanner } from '../controllers/orphan.js';
import { createWorkspaceBootstrap } from '../controllers/workspace-bootstrap.js';
import { type CloudOptions, createTargets } from './cloud/index.js';
import { Inventory, LiveView } from './cloud/inventory.js';
import type { ResourceKind } from './cloud/ports.js';
import { type CloudTargets, TARGET_NAMES, type TargetName } from './cloud/targets.js';
import { type Config, ConfigError } from './config.js';
import type { Database } from './db/client.js';
import { DesiredStateRepository, liveOwners, type OwnerRef } from './db/desired.js';
import { fenceValid } from './db/fence.js';
import { FinalizerRepository } from './db/finalizers.js';
import { PinsCache } from './db/pins.js';
import { RolloutRepository } from './db/rollouts.js';
import { DesiredSnapshot } from './db/snapshot.js';
import { StatusRepository } from './db/status.js';
import type { Logger } from './observability/logger.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { type ProbeServer, startProbeServer } from './observability/server.js';
import { type Clock, systemClock } from './runtime/clock.js';
import type { AnyController, ControllerName } from './runtime/controller.js';
import {
  describeError,
  errorClassOf,
  FencedOutError,
  NotLeaderError,
  TransientError,
} from './runtime/errors.js';
import { createFailpoints } from './runtime/failpoints.js';
import { DeepCheckBudget, Manager, type ManagerOptions } from './runtime/manager.js';
import { type Action, Reconciler, type ReconcilerDeps, type ReconcileTarget } from './runtime/reconciler.js';
import type { ControllerRegistry } from './runtime/registry.js';
import { fleetOf, RolloutCoordinator, rolloutPolicy } from './runtime/rollouts.js';

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
  /** How long AMI/image pins are cached (default 30 s); a pin change's notification drops them at once. */
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
  /** The fleet's rollouts (DESIGN §11): `refresh()` re-reads them and sets their gauges. */
  readonly rollouts: RolloutCoordinator;
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
  const failpoint = createFailpoints(config.FAILPOINTS);
  const assertLeader = (target: TargetName) => {
    if (!manager) throw new NotLeaderError();
    manager.assertLeader(target);
  };
  // Right before a mutating request leaves: the lease must still be held at this replica's
  // epoch, in database time, with a margin for the request itself (db/fence.ts). A replica that
  // paused past its lease and still believes it leads is stopped here.
  const leaseMargin = Math.min(1_000, config.LEASE_DURATION - config.LEASE_RENEW_DEADLINE);
  // The answer is only good for the margin: one that took longer to arrive (a slow database, or
  // a process frozen while it waited) is asked again, so that the request leaves within the
  // margin of the database time the lease was found valid at.
  const mutationGuard = async (target: TargetName) => {
    for (let attempt = 0; ; attempt++) {
      assertLeader(target);
      const fence = manager!.fence(target);
      failpoint('before-cloud-mutation');
      const asked = performance.now();
      const valid = await fenceValid(database.db, fence, leaseMargin);
      if (!valid) {
        manager?.fencedOut(fence.lease);
        throw new FencedOutError(fence.lease);
      }
      if (performance.now() - asked < leaseMargin / 2) {
        // The last word before the request leaves (test/chaos/freeze.test.ts counts these).
        logger.debug({ target, epoch: fence.epoch }, 'cloud mutation cleared');
        return;
      }
      if (attempt >= 2)
        throw new TransientError('the lease check answered too slowly to send a mutation on it');
    }
  };
  const targets =
    options.targets ??
    createTargets(config, {
      ...options.cloud,
      metrics,
      // Leadership is checked again as each mutating request leaves, not only when it was decided.
      mutationGuard,
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
  // The order of redeploys across the fleet (DESIGN §11), from what the redeploy controller records.
  const rolloutRepository = new RolloutRepository(database.db);
  const rollouts = new RolloutCoordinator(
    {
      load: async () => {
        const [rows, resumes, current] = await Promise.all([
          rolloutRepository.fleet(redeploy.name),
          rolloutRepository.resumes(),
          pins.get(),
        ]);
        for (const reason of ['AMIChanged', 'BootScriptChanged'] as const)
          metrics.outdatedInstances
            .labels(reason)
            .set(rows.filter((r) => r.record.outdated === reason).length);
        return { fleet: fleetOf(rows, config, current), resumes };
      },
    },
    rolloutPolicy(config),
    clock,
    {
      maxAgeMs: Math.min(1_000, options.manager?.pollIntervalMs ?? 1_000),
      // Held owners are woken when they may go; this re-check is only a safety net.
      recheckMs: 300 * (options.manager?.pollIntervalMs ?? 2_000),
      wake: (owners) => {
        if (!manager?.isLeader()) return;
        logger.debug({ owners: owners.length }, 'rollout: waking the owners that may start');
        for (const o of owners) manager.enqueue(redeploy.name, o, 'event');
      },
      onPlan: (plan) => {
        metrics.rolloutInstances.reset();
        for (const kind of ['tenant', 'workspace'])
          for (const state of ['done', 'pending', 'in_flight', 'failed', 'stopped'] as const)
            metrics.rolloutInstances
              .labels(kind, state)
              .set(
                plan.rollouts.filter((r) => r.imageKind === kind).reduce((n, r) => n + r.counts[state], 0),
              );
        metrics.rolloutPaused.set(plan.rollouts.filter((r) => r.paused).length);
      },
    },
  );
  const reconcilers = (
    hooks: Pick<
      ReconcilerDeps,
      | 'assertLeader'
      | 'fence'
      | 'onFencedOut'
      | 'failpoint'
      | 'leads'
      | 'wake'
      | 'pollIntervalMs'
      | 'deepCheckBudget'
      | 'rollout'
    >,
  ) => {
    const deps: ReconcilerDeps = {
      config,
      registry,
      targets: reconcileTargets,
      placement: (org) => org.target,
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

  const workspaceBootstrap = createWorkspaceBootstrap({ config, logger });
  const scanner = createOrphanScanner({
    config,
    database,
    targets,
    metrics,
    logger,
    clock,
    assertLeader,
    // A started operator writes the ledger under its lease; one that never campaigns (a one-off
    // report scan) holds none to fence by.
    fence: (target) => {
      if (!manager?.running) return undefined;
      const fence = manager.fence(target);
      failpoint('before-ledger-write');
      return fence;
    },
    onFencedOut: (lease) => manager?.fencedOut(lease),
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
      fence: (target) => m.fence(target),
      onFencedOut: (lease) => m.fencedOut(lease),
      failpoint,
      leads: (target) => m.isLeader(target),
      wake: (name, owner) => m.enqueue(name, owner, 'event'),
      pollIntervalMs: options.manager?.pollIntervalMs ?? 2_000,
      deepCheckBudget: deepChecks,
      rollout: rollouts,
    }),
    onPinsChanged: () => pins.invalidate(),
    inputs: () => pins.fingerprint(),
    onRolloutResumed: () => rollouts.resumed(),
    jobs: [
      ...scanner.jobs(),
      // Keeps the rollout gauges current while nothing asks for an admission (a read of every
      // owner's redeploy row: once a minute is enough for alerts that wait minutes).
      {
        name: 'rollout-status',
        cron: '0 * * * * *',
        run: async () => {
          await rollouts
            .refresh()
            .catch((e) => logger.warn({ err: describeError(e) }, 'cannot read the rollout state'));
        },
      },
    ],
    targetJobs: [
      {
        name: workspaceBootstrap.name,
        run: (t) => workspaceBootstrap.ensure(t, targets.portsFor(t).secrets),
      },
    ],
    ...options.manager,
    lease: {
      leaseDurationMs: config.LEASE_DURATION,
      renewDeadlineMs: config.LEASE_RENEW_DEADLINE,
      retryPeriodMs: config.LEASE_RETRY_PERIOD,
      ...options.manager?.lease,
    },
  });
  manager = m;

  const identities = new Map<TargetName, { account: string; arn: string }>();
  const starting = new AbortController();
  const readiness = () => {
    const r = m.readiness();
    return {
      ready: r.listening,
      details: {
        listener: r.listening ? 'ok' : 'reconnecting',
        leader: r.leader,
        targets: Object.fromEntries(
          targets.all.map((t) => [
            t.name,
            {
              account: identities.get(t.name)?.account ?? 'unknown',
              region: t.region,
              leader: r.leads.includes(t.name),
            },
          ]),
        ),
        orphanDeletion: scanner.last().some((x) => x.blockedByFraction)
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
    rollouts,
    disabled,
    start: async () => {
      for (const [controller, why] of disabled) logger.warn({ controller, why }, 'controller disabled');
      await reportPlacements(database, targets, metrics, logger);
      if (targets.all.length > 1) {
        // Two accounts: nothing may act before both are known to be who they claim, and not the
        // same account twice (a canary org would then land in the primary's account).
        for (const [name, who] of await identifyTargets(targets, logger, starting.signal))
          identities.set(name, who);
      } else {
        // One account: who it is only informs /readyz, and must not hold the start up.
        void identifyTargets(targets, logger, starting.signal)
          .then((found) => {
            for (const [name, who] of found) identities.set(name, who);
          })
          .catch((e) =>
            logger.warn({ err: describeError(e) }, 'cannot tell which AWS account the primary target is'),
          );
      }
      if (starting.signal.aborted) return;
      await m.start();
    },
    stop: async () => {
      starting.abort();
      rollouts.close();
      await m.stop();
    },
    readiness,
    serveProbes: (port, host) => startProbeServer({ database, metrics, logger, readiness }, port, host),
    plan: async () => {
      const planners = reconcilers({
        assertLeader: () => {
          throw new Error('plan never acts');
        },
        fence: () => {
          throw new Error('plan never writes');
        },
        leads: () => true,
        wake: () => {},
        pollIntervalMs: 0,
        // The rollout's order as it stands, without taking a slot.
        rollout: {
          admit: (r) => rollouts.preview(r),
          preview: (r) => rollouts.preview(r),
          finished: () => {},
        },
      });
      return planAll(database, targets, config.MOLECULE_ENV, planners);
    },
  };
}

/**
 * Who each target's credentials are (STS GetCallerIdentity). Two targets in one account, or
 * credentials the provider refuses, are configuration errors; a provider that cannot be reached
 * is asked again, with a growing pause, until it answers or the operator stops.
 */
async function identifyTargets(
  targets: CloudTargets,
  logger: Logger,
  signal: AbortSignal,
): Promise<Map<TargetName, { account: string; arn: string }>> {
  const found = new Map<TargetName, { account: string; arn: string }>();
  for (const t of targets.all) {
    let who: { account: string; arn: string } | undefined;
    for (let attempt = 1; !who && !signal.aborted; attempt++) {
      try {
        who = await t.identify();
      } catch (e) {
        if (errorClassOf(e) === 'Terminal') {
          throw new ConfigError([
            {
              variable: t.roleArn ? 'CANARY_ROLE_ARN' : 'AWS credentials',
              message: `cannot act in the ${t.name} target: ${describeError(e)}`,
            },
          ]);
        }
        logger.warn(
          { target: t.name, attempt, err: describeError(e) },
          'cannot reach the target yet; retrying',
        );
        await systemClock.sleep(Math.min(30_000, 500 * 2 ** attempt), signal).catch(() => {});
      }
    }
    if (!who) return found;
    const same = [...found].find(([, other]) => other.account === who.account);
    if (same) {
      throw new ConfigError([
        {
          variable: 'CANARY_ROLE_ARN',
          message: `the ${t.name} target is in account ${who.account}, as the ${same[0]} target is: one account configured twice`,
        },
      ]);
    }
    logger.info({ target: t.name, account: who.account, region: t.region }, 'target identified');
    found.set(t.name, who);
  }
  return found;
}

/** Sets the per-target org gauges, and says loudly when orgs are placed in a target this operator cannot reach. */
async function reportPlacements(
  database: Database,
  targets: CloudTargets,
  metrics: Metrics,
  logger: Logger,
): Promise<void> {
  const counts = await new DesiredStateRepository(database.db).orgsByTarget();
  for (const name of TARGET_NAMES) {
    const configured = targets.get(name) !== undefined;
    metrics.targetConfigured.labels(name).set(configured ? 1 : 0);
    metrics.targetOrgs.labels(name).set(counts.get(name) ?? 0);
    if (!configured && (counts.get(name) ?? 0) > 0)
      logger.error(
        { target: name, orgs: counts.get(name) },
        'orgs are placed in a target this operator is not configured for: they stay as they are (TargetNotConfigured)',
      );
  }
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
  // One listing per target: a canary org's resources live in the canary account, and planned
  // against the primary's listing they would all look missing.
  const [owners, slugs, inventories] = await Promise.all([
    liveOwners(database),
    new DesiredStateRepository(database.db).liveOrgSlugs(),
    Promise.all(
      targets.all.map(async (t) => [t.name, await Inventory.build(targets.portsFor(t), env)] as const),
    ).then((entries) => new Map<TargetName, Inventory>(entries)),
  ]);
  const orgOf = new Map(owners.workspaces.map((w) => [w.id, w.orgId]));
  const targetOf = new Map(owners.orgs.map((o) => [o.id, o.target]));
  const inventoryFor = (owner: OwnerRef) =>
    inventories.get(
      targetOf.get(owner.kind === 'org' ? owner.id : (orgOf.get(owner.id) ?? '')) ?? 'primary',
    ) ?? inventories.get('primary')!;
  const refs: OwnerRef[] = [
    ...owners.orgs.map((o) => ({ kind: 'org' as const, id: o.id })),
    ...owners.workspaces.map((w) => ({ kind: 'workspace' as const, id: w.id })),
  ];
  const entries: PlanEntry[] = [];
  for (const owner of refs) {
    for (const r of planners) {
      if (!r.spec.owners.includes(owner.kind)) continue;
      const planned = await r.plan(owner, inventoryFor(owner));
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
