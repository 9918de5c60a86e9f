import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface MetricsOptions {
  /** Default process metrics (`molecule_process_*`); off in tests. */
  defaults?: boolean;
  /**
   * Label values whose series exist from the start, at zero (controller names and resource
   * kinds, from the controller registry): a rate over a series that appears late misses its
   * first increase, and an alert on a missing series never fires.
   */
  labels?: { controllers: readonly string[]; kinds: readonly string[] };
}

/**
 * Every metric the operator exports, in one place. Names are a contract with dashboards and
 * alerts (deploy/); a test checks that every name used there is registered here.
 */
export function createMetrics(options: MetricsOptions = {}) {
  const registry = new Registry();
  if (options.defaults !== false) collectDefaultMetrics({ register: registry, prefix: 'molecule_process_' });
  const r = [registry];
  const depthSources = new Map<string, () => number>();

  const m = {
    registry,
    orphanResources: new Gauge({
      name: 'molecule_orphan_resources',
      help: 'Resources tagged or named as ours for this env whose owner is gone, or duplicates the owner does not use, by the target whose scan found them',
      labelNames: ['kind', 'env', 'target'] as const,
      registers: r,
    }),
    orphanOldestAge: new Gauge({
      name: 'molecule_orphan_oldest_age_seconds',
      help: 'Age of the oldest open orphan of each kind, from when it was first seen',
      labelNames: ['kind', 'target'] as const,
      registers: r,
    }),
    orphanScanSuccess: new Gauge({
      name: 'molecule_orphan_scan_success',
      help: '1 when the last orphan scan of the target completed, 0 when it failed (gauges then keep the last good values)',
      labelNames: ['target'] as const,
      registers: r,
    }),
    orphanScanTimestamp: new Gauge({
      name: 'molecule_orphan_scan_timestamp_seconds',
      help: 'Unix time of the last successful orphan scan of the target',
      labelNames: ['target'] as const,
      registers: r,
    }),
    orphanDeleted: new Counter({
      name: 'molecule_orphan_deleted_total',
      help: 'Orphans deleted under ORPHAN_POLICY=delete',
      labelNames: ['kind', 'target'] as const,
      registers: r,
    }),
    orphanDeletionBlocked: new Gauge({
      name: 'molecule_orphan_deletion_blocked',
      help: '1 when the last scan of the target refused to delete because orphans exceeded ORPHAN_MAX_FRACTION of managed resources',
      labelNames: ['target'] as const,
      registers: r,
    }),
    managedResources: new Gauge({
      name: 'molecule_managed_resources',
      help: 'Live resources tagged or named as ours for this env, by kind and the target whose scan found them',
      labelNames: ['kind', 'target'] as const,
      registers: r,
    }),
    desiredObjects: new Gauge({
      name: 'molecule_desired_objects',
      help: 'Desired orgs and workspaces by state (total, ready, deleting)',
      labelNames: ['kind', 'state'] as const,
      registers: r,
    }),
    reconcileTotal: new Counter({
      name: 'molecule_reconcile_total',
      help: 'Reconciles by controller and result (success, requeue, error, terminal)',
      labelNames: ['controller', 'result'] as const,
      registers: r,
    }),
    reconcileDuration: new Histogram({
      name: 'molecule_reconcile_duration_seconds',
      help: 'Time spent in one reconcile',
      labelNames: ['controller'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    workqueueDepth: new Gauge({
      name: 'molecule_workqueue_depth',
      help: 'Keys waiting in the controller work queue (ready or delayed)',
      labelNames: ['controller'] as const,
      registers: r,
      // Read from the queues when scraped: the depth changes on every key, and setting a
      // labelled series that often was a measurable share of a large resync.
      collect() {
        for (const [controller, depth] of depthSources) this.labels(controller).set(depth());
      },
    }),
    workqueueRetries: new Counter({
      name: 'molecule_workqueue_retries_total',
      help: 'Keys requeued with backoff after an error',
      labelNames: ['controller'] as const,
      registers: r,
    }),
    cloudRequests: new Counter({
      name: 'molecule_cloud_requests_total',
      help: 'Calls to AWS and Cloudflare by outcome (ok, not_found, conflict, throttled, transient, terminal) and target (empty for Cloudflare)',
      labelNames: ['service', 'operation', 'outcome', 'target'] as const,
      registers: r,
    }),
    cloudRequestDuration: new Histogram({
      name: 'molecule_cloud_request_duration_seconds',
      help: 'Latency of calls to AWS and Cloudflare, including SDK retries',
      labelNames: ['service', 'target'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    }),
    ratelimitWait: new Counter({
      name: 'molecule_ratelimit_wait_seconds_total',
      help: 'Time spent waiting on client-side rate-limit buckets (per target: AWS limits are per account and region)',
      labelNames: ['bucket', 'target'] as const,
      registers: r,
    }),
    ratelimitLockouts: new Counter({
      name: 'molecule_ratelimit_lockouts_total',
      help: "Times a provider refused every call for the rest of its window (Cloudflare's 1200 per 5 minutes tripped, e.g. by another user of the token); calls then wait for the window's end",
      labelNames: ['bucket', 'target'] as const,
      registers: r,
    }),
    cloudListingRestarts: new Counter({
      name: 'molecule_cloud_listing_restarts_total',
      help: 'Listings started over from the first page because a pagination token expired',
      labelNames: ['service', 'operation', 'target'] as const,
      registers: r,
    }),
    resyncBatches: new Counter({
      name: 'molecule_resync_batches_total',
      help: 'Batches of orgs a resync went through: reconciled, or skipped because everything its reconciles read was as when they last found nothing to do',
      labelNames: ['target', 'result'] as const,
      registers: r,
    }),
    driftCorrections: new Counter({
      name: 'molecule_drift_corrections_total',
      help: 'Out-of-band changes the controllers corrected',
      labelNames: ['controller'] as const,
      registers: r,
    }),
    isLeader: new Gauge({
      name: 'molecule_is_leader',
      help: "1 while this replica holds the target's leader lease and reconciles its orgs",
      labelNames: ['target'] as const,
      registers: r,
    }),
    controllerEnabled: new Gauge({
      name: 'molecule_controller_enabled',
      help: '1 when the controller runs, 0 when required configuration is missing',
      labelNames: ['controller'] as const,
      registers: r,
    }),
    targetOrgs: new Gauge({
      name: 'molecule_target_orgs',
      help: 'Live orgs placed in each target',
      labelNames: ['target'] as const,
      registers: r,
    }),
    targetConfigured: new Gauge({
      name: 'molecule_target_configured',
      help: '1 when this operator is configured for the target, 0 when orgs are placed in a target it cannot reach',
      labelNames: ['target'] as const,
      registers: r,
    }),
    deletionStuck: new Gauge({
      name: 'molecule_deletion_stuck',
      help: 'Owners whose deletion has been retrying for more than 10 minutes',
      labelNames: ['controller'] as const,
      registers: r,
    }),
    rolloutInstances: new Gauge({
      name: 'molecule_rollout_instances',
      help: 'Owners per image kind (tenant, workspace) and rollout state: done, pending, in_flight, failed, stopped (DESIGN §11)',
      labelNames: ['image_kind', 'state'] as const,
      registers: r,
    }),
    rolloutPaused: new Gauge({
      name: 'molecule_rollout_paused',
      help: 'Image rollouts paused after ROLLOUT_MAX_FAILURES failed redeploys, until POST /cp/admin/rollouts/resume',
      registers: r,
    }),
    outdatedInstances: new Gauge({
      name: 'molecule_outdated_instances',
      help: 'Running instances whose AMI or boot script differs from what a launch would use now (never replaced in place)',
      labelNames: ['reason'] as const,
      registers: r,
    }),
  };

  for (const kind of ['tenant', 'workspace'])
    for (const state of ['done', 'pending', 'in_flight', 'failed', 'stopped'])
      m.rolloutInstances.labels(kind, state).set(0);
  m.rolloutPaused.set(0);
  for (const reason of ['AMIChanged', 'BootScriptChanged']) m.outdatedInstances.labels(reason).set(0);

  for (const controller of options.labels?.controllers ?? []) {
    for (const result of ['success', 'requeue', 'error', 'terminal'])
      m.reconcileTotal.labels(controller, result).inc(0);
    m.workqueueDepth.labels(controller).set(0);
    m.workqueueRetries.labels(controller).inc(0);
    m.driftCorrections.labels(controller).inc(0);
    m.deletionStuck.labels(controller).set(0);
  }

  const kinds = options.labels?.kinds ?? [];
  return {
    ...m,
    /** Starts a target's series at zero (the composition root, once it knows the targets). */
    watchTarget(target: string): void {
      m.orphanScanSuccess.labels(target).set(0);
      m.isLeader.labels(target).set(0);
      for (const kind of kinds) m.orphanDeleted.labels(kind, target).inc(0);
    },
    /** Reports a controller's work queue depth as `molecule_workqueue_depth` (read at scrape time). */
    watchWorkqueueDepth(controller: string, depth: () => number): void {
      depthSources.set(controller, depth);
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
