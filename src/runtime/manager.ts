import { hostname } from 'node:os';
import cron, { type ScheduledTask } from 'node-cron';
import {
  FleetInventory,
  type Inventory,
  type ListingScope,
  LiveView,
  listCloudflare,
  MAX_ORGS_PER_LISTING,
} from '../cloud/inventory.js';
import type { ResourceKind } from '../cloud/ports.js';
import type { CloudTargets, Target, TargetName } from '../cloud/targets.js';
import type { Config } from '../config.js';
import type { Database, Subscription } from '../db/client.js';
import { DesiredStateRepository, liveOwners, type OwnerRef } from '../db/desired.js';
import type { Fence } from '../db/fence.js';
import { LeaseRepository } from '../db/leases.js';
import { ownersPinnedBy, type PinNotification } from '../db/pins.js';
import { DesiredSnapshot } from '../db/snapshot.js';
import { StatusRepository } from '../db/status.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { type BatchRecord, batchInputs, ResyncBatches } from './batches.js';
import { type Clock, systemClock } from './clock.js';
import type { ControllerName } from './controller.js';
import { describeError, NotLeaderError } from './errors.js';
import { LeaderElector, type LeaseOptions } from './lease.js';
import { WorkQueue } from './queue.js';
import type { Reconciler } from './reconciler.js';
import type { ControllerRegistry } from './registry.js';

export const DESIRED_CHANNEL = 'molecule_desired';

/** A periodic job that runs only on the leader (the orphan scan): of its target, or of any. */
export interface LeaderJob {
  name: string;
  cron: string;
  target?: TargetName;
  run(): Promise<void>;
}

/** Work of a whole target (not of an owner) that its leader does on every resync. */
export interface TargetJob {
  name: string;
  run(target: Target): Promise<unknown>;
}

export interface ManagerOptions {
  config: Config;
  database: Database;
  targets: CloudTargets;
  metrics: Metrics;
  logger: Logger;
  registry: ControllerRegistry;
  /** The reconciler of every controller that runs (in at least one target); each gets a queue. */
  reconcilers: readonly Reconciler[];
  /** The kinds a resync lists: those the running controllers keep. */
  kinds: ReadonlySet<ResourceKind>;
  /** Per-resync allowance of deep checks, shared with the reconcilers. */
  deepChecks: DeepCheckBudget;
  jobs?: LeaderJob[];
  targetJobs?: TargetJob[];
  clock?: Clock;
  holder?: string;
  lease?: Partial<Omit<LeaseOptions, 'holder' | 'onStartedLeading' | 'onStoppedLeading'>>;
  pollIntervalMs?: number;
  concurrency?: number;
  backoff?: { baseDelayMs?: number; maxDelayMs?: number };
  /** Maximum random delay added to each scheduled resync. */
  resyncJitterMs?: number;
  /** Called on every replica when a pin changed, before its owners are queued (drops cached pins). */
  onPinsChanged?: () => void;
  /** Called on the leader when a paused rollout was resumed (the owners it held may go). */
  onRolloutResumed?: () => void;
  /**
   * What every reconcile reads besides the rows and the cloud (the pins), as a string that
   * changes when it does. Without it every resync reconciles every owner.
   */
  inputs?: () => Promise<string>;
}

/** What a resync hands a batch's reconciles: the cloud as listed, and the rows as read, for the batch. */
export interface ResyncSnapshot {
  inventory: Inventory;
  desired?: DesiredSnapshot;
  /** The batch's record: told how each reconcile queued with this snapshot ended. */
  batch?: BatchRecord;
}

interface Controlled {
  reconciler: Reconciler;
  queue: WorkQueue;
  /** Keys queued by a resync, with the snapshot they should be reconciled from. */
  snapshots: Map<string, ResyncSnapshot>;
}

/**
 * Orgs per resync batch: a batch's desired and status rows are read in one query, its
 * instances and security groups listed (one EC2 call each: the most orgs one OrgID filter can
 * name) and its owners queued together; the next batch is read while this one is worked off, so
 * neither the rows and resources held in memory nor the queues grow with the fleet (and events
 * never wait behind it all).
 */
const RESYNC_BATCH_ORGS = MAX_ORGS_PER_LISTING;

const keyOf = (o: OwnerRef) => `${o.kind}:${o.id}`;
const ownerOf = (key: string): OwnerRef => {
  const i = key.indexOf(':');
  return { kind: key.slice(0, i) as OwnerRef['kind'], id: key.slice(i + 1) };
};

/**
 * Runs the controllers: leader election, one work queue per controller, LISTEN/NOTIFY for
 * millisecond reaction to desired-state changes, and cron-triggered resyncs through a shared
 * inventory. Standbys keep serving health and metrics but never reconcile.
 */
export class Manager {
  /** One lease per target: a replica leads the targets whose leases it holds. */
  readonly electors: ReadonlyMap<TargetName, LeaderElector>;
  private readonly controlled = new Map<ControllerName, Controlled>();
  private readonly desired: DesiredStateRepository;
  private readonly clock: Clock;
  private readonly log: Logger;
  private subscription: Subscription | undefined;
  private readonly tasks: ScheduledTask[] = [];
  private resyncing: Promise<void> | undefined;
  /** Trigger of a resync to run when the current one ends (see {@link resync}). */
  private resyncFollowUp: string | undefined;
  private listening = false;
  private stopping = false;
  /** Campaigning for leases (between start and stop). */
  running = false;
  private lastResyncAt: number | undefined;
  /** Each led target's batches as the last resync worked them off (runtime/batches.ts). */
  private readonly batches = new Map<TargetName, ResyncBatches>();
  /** Each led target's last fleet-wide listing (its per-org digests are reused where nothing changed). */
  private readonly fleets = new Map<TargetName, FleetInventory>();
  private readonly holder: string;
  private readonly leaseGroup: string;
  private readonly leases: LeaseRepository;
  /** Leases held by each live replica of this operator (this one included), from the last heartbeat. */
  private loads: Map<string, number> | undefined;
  private balancing: Promise<void> | undefined;
  private readonly balancer = new AbortController();

  constructor(private readonly options: ManagerOptions) {
    const { config, database, metrics } = options;
    this.clock = options.clock ?? systemClock;
    this.log = options.logger.child({ component: 'manager' });
    this.desired = new DesiredStateRepository(database.db);
    this.holder = options.holder ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.leaseGroup = options.lease?.name ?? 'molecule-operator';
    this.leases = new LeaseRepository(database);
    this.electors = new Map(
      options.targets.all.map((t) => [
        t.name,
        new LeaderElector(this.leases, {
          ...options.lease,
          holder: this.holder,
          // The primary keeps the name it always had: an upgrade does not hand leadership around.
          name: t.name === 'primary' ? this.leaseGroup : `${this.leaseGroup}-${t.name}`,
          onStartedLeading: (epoch) => this.startedLeading(t.name, epoch),
          onStoppedLeading: () => this.stoppedLeading(t.name),
          onError: (e) => this.log.warn({ target: t.name, err: describeError(e) }, 'lease renewal failed'),
          mayAcquire: () => this.mayAcquire(),
        }),
      ]),
    );
    for (const t of options.targets.all) metrics.isLeader.labels(t.name).set(0);
    for (const reconciler of options.reconcilers) {
      const name = reconciler.name;
      const queue = new WorkQueue({
        concurrency: options.concurrency ?? config.RECONCILE_CONCURRENCY,
        clock: this.clock,
        ...options.backoff,
        onRetry: () => metrics.workqueueRetries.labels(name).inc(),
      });
      metrics.watchWorkqueueDepth(name, () => queue.depth);
      this.controlled.set(name, { reconciler, queue, snapshots: new Map() });
    }
    // Every registered controller gets a series, also one that does not run (no Cloudflare).
    for (const name of options.registry.names)
      metrics.controllerEnabled.labels(name).set(this.controlled.has(name) ? 1 : 0);
  }

  /** True while this replica leads at least one target (or this one). */
  isLeader(target?: TargetName): boolean {
    if (target) return this.electors.get(target)?.isLeader() ?? false;
    for (const e of this.electors.values()) if (e.isLeader()) return true;
    return false;
  }

  /** The lease term of `target` for a fenced write (db/fence.ts); NotLeaderError when not leading it. */
  fence(target: TargetName): Fence {
    const elector = this.electors.get(target);
    if (!elector) throw new NotLeaderError();
    return elector.fence();
  }

  /**
   * The database refused a write of an earlier term of `lease` (db/fence.ts): stop acting for
   * that target at once rather than when the local deadline runs out.
   */
  fencedOut(lease: string): void {
    for (const [target, e] of this.electors) {
      if (e.name !== lease) continue;
      this.log.warn({ target, lease }, 'a write of an earlier lease term was refused: stepping down');
      e.fencedOut();
    }
  }

  /** Throws NotLeaderError unless this replica leads the target right now. */
  assertLeader(target: TargetName): void {
    const elector = this.electors.get(target);
    if (!elector) throw new NotLeaderError();
    elector.assertLeader();
  }

  /** The targets this replica leads right now. */
  ledTargets(): TargetName[] {
    return [...this.electors].filter(([, e]) => e.isLeader()).map(([name]) => name);
  }

  /**
   * Replicas share the targets: one that already leads some may take another only if no live
   * replica leads fewer (a replica that leads none always may). With one replica left, it leads
   * them all.
   */
  private mayAcquire(): boolean {
    const loads = this.loads;
    if (!loads) return true;
    const mine = this.ledTargets().length;
    for (const [holder, n] of loads) if (holder !== this.holder && n < mine) return false;
    return true;
  }

  /**
   * Says this replica is alive, learns what every live replica leads, and gives up a target
   * (never the primary) while it leads two more than another replica: two replicas lead one
   * target each.
   */
  private async shareTargets(): Promise<void> {
    const lease = this.options.lease ?? {};
    const names = [...this.electors.values()].map((e) => e.name);
    while (!this.balancer.signal.aborted) {
      try {
        this.loads = await this.leases.heartbeat(
          this.leaseGroup,
          this.holder,
          lease.leaseDurationMs ?? 15_000,
          names,
        );
        const led = this.ledTargets();
        const others = [...this.loads].filter(([h]) => h !== this.holder).map(([, n]) => n);
        if (others.length > 0 && led.length > Math.min(...others) + 1) {
          const give = led.find((t) => t !== 'primary');
          if (give) {
            this.log.info(
              { target: give, holder: this.holder },
              'handing a target to a replica that leads fewer',
            );
            await this.electors.get(give)!.release();
          }
        }
      } catch (e) {
        this.log.warn({ err: describeError(e) }, 'cannot share targets with the other replicas');
      }
      await this.clock.sleep(lease.retryPeriodMs ?? 2_000, this.balancer.signal).catch(() => {});
    }
  }

  /** Health as `/readyz` reports it. */
  readiness(): {
    listening: boolean;
    leader: boolean;
    leads: TargetName[];
    lastResyncAt: number | undefined;
  } {
    const leads = this.ledTargets();
    return { listening: this.listening, leader: leads.length > 0, leads, lastResyncAt: this.lastResyncAt };
  }

  async start(): Promise<void> {
    this.running = true;
    const { database, config } = this.options;
    this.subscription = await database.listen(DESIRED_CHANNEL, {
      onMessage: (payload) => this.onNotify(payload),
      onDisconnect: (e) => {
        this.listening = false;
        this.log.warn({ err: describeError(e) }, 'lost the desired-state listener; reconnecting');
      },
      onReconnect: () => {
        this.listening = true;
        this.log.info('desired-state listener reconnected; resyncing');
        void this.resync('reconnect');
      },
    });
    this.listening = true;
    this.schedule(
      'resync',
      config.RESYNC_CRON,
      () => this.resync('cron'),
      this.options.resyncJitterMs ?? 10_000,
    );
    for (const job of this.options.jobs ?? [])
      this.schedule(job.name, job.cron, () => job.run(), 0, job.target);
    for (const e of this.electors.values()) e.start();
    if (this.electors.size > 1) this.balancing = this.shareTargets();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.running = false;
    for (const t of this.tasks) await t.stop();
    await this.subscription?.close();
    await Promise.all([...this.controlled.values()].map((c) => c.queue.stop()));
    await this.resyncing?.catch(() => {});
    this.balancer.abort();
    await this.balancing;
    await Promise.all([...this.electors.values()].map((e) => e.stop()));
    for (const name of this.electors.keys()) this.options.metrics.isLeader.labels(name).set(0);
  }

  /** Queues one owner for one controller. */
  enqueue(
    name: ControllerName,
    owner: OwnerRef,
    reason: 'event' | 'resync',
    snapshot?: ResyncSnapshot,
  ): void {
    this.enqueueKey(name, owner.kind, keyOf(owner), reason, snapshot);
  }

  /** Queues an owner for every controller that manages its kind. */
  enqueueOwner(owner: OwnerRef, reason: 'event' | 'resync' = 'event', snapshot?: ResyncSnapshot): void {
    const key = keyOf(owner);
    for (const name of this.controlled.keys()) this.enqueueKey(name, owner.kind, key, reason, snapshot);
  }

  private enqueueKey(
    name: ControllerName,
    kind: OwnerRef['kind'],
    key: string,
    reason: 'event' | 'resync',
    snapshot: ResyncSnapshot | undefined,
  ): void {
    const c = this.controlled.get(name);
    if (!c?.reconciler.spec.owners.includes(kind)) return;
    if (snapshot) {
      c.snapshots.set(key, snapshot);
      snapshot.batch?.expect();
    } else c.snapshots.delete(key);
    c.queue.add(key, reason);
  }

  /**
   * Lists everything ours once into an inventory and queues every live owner against it.
   * Concurrent requests share one run.
   */
  resync(trigger: string, options: { followUp?: boolean } = {}): Promise<void> {
    if (!this.isLeader() || this.stopping) return Promise.resolve();
    if (this.resyncing) {
      // A new term must see every owner, and a resync that started before it may have handed
      // some to a replica that was not leading at that moment: run another one after it.
      if (options.followUp) this.resyncFollowUp = trigger;
      return this.resyncing;
    }
    this.resyncing = this.runResync(trigger).finally(() => {
      this.resyncing = undefined;
      const followUp = this.resyncFollowUp;
      this.resyncFollowUp = undefined;
      if (followUp) void this.resync(followUp);
    });
    return this.resyncing;
  }

  private async runResync(trigger: string): Promise<void> {
    const { targets, config, database } = this.options;
    const env = config.MOLECULE_ENV;
    const scope: ListingScope = { kinds: this.options.kinds };
    try {
      // Cloudflare is one account for every target: listed once.
      const [owners, cloudflare, inputs] = await Promise.all([
        liveOwners(database),
        listCloudflare(targets.cloudflare, env, scope),
        this.options.inputs?.(),
      ]);
      // Each target this replica leads, listed on its own: another replica may lead the others.
      const led = targets.all.filter((t) => this.isLeader(t.name));
      const fleets = await Promise.all(
        led.map(async (t) => {
          const previous = this.fleets.get(t.name);
          const fleet = await FleetInventory.list(targets.portsFor(t), env, {
            ...scope,
            cloudflare,
            previous,
          });
          this.fleets.set(t.name, fleet);
          return { target: t, fleet };
        }),
      );
      await Promise.all(
        led.flatMap((t) =>
          (this.options.targetJobs ?? []).map((job) =>
            job
              .run(t)
              .catch((e) =>
                this.log.warn({ job: job.name, target: t.name, err: describeError(e) }, 'target job failed'),
              ),
          ),
        ),
      );
      const ownerCount = owners.orgs.length + owners.workspaces.length;
      const secrets = fleets.reduce((n, f) => n + f.fleet.all.secrets.length, 0);
      // Every owner has an instance and a security group besides the org's fleet-wide resources.
      const managed = secrets + cloudflare.tunnels.length + cloudflare.dnsRecords.length;
      const estimate = managed + 2 * ownerCount;
      // About a third of the steady-state call budget (1 call per 150 resources) goes to deep
      // checks; owners take turns, so every one is checked within `period` resyncs.
      this.options.deepChecks.nextRound(cloudflare.tunnels.length, Math.max(10, Math.floor(estimate / 450)));
      this.lastResyncAt = this.clock.now();
      this.log.info(
        {
          trigger,
          owners: ownerCount,
          secrets,
          tunnels: cloudflare.tunnels.length,
          dnsRecords: cloudflare.dnsRecords.length,
        },
        'resync started',
      );
      await this.refreshStuckDeletions();
      const listed = { instances: 0, securityGroups: 0, batches: 0, skipped: 0 };
      const byOrg = workspacesByOrg(owners.workspaces);
      for (const { target, fleet } of fleets) {
        const n = await this.queueInBatches(target, orgsIn(target, owners.orgs), byOrg, fleet, inputs);
        listed.instances += n.instances;
        listed.securityGroups += n.securityGroups;
        listed.batches += n.batches;
        listed.skipped += n.skipped;
      }
      // Orgs placed in a target this operator is not configured for answer to the primary's
      // leader: their reconciles only say so (TargetNotConfigured), from fresh rows.
      if (this.isLeader('primary')) {
        for (const o of owners.orgs) {
          if (targets.get(o.target)) continue;
          this.enqueueOwner({ kind: 'org', id: o.id }, 'resync');
          for (const id of byOrg.get(o.id) ?? []) this.enqueueOwner({ kind: 'workspace', id }, 'resync');
          byOrg.delete(o.id);
        }
      }
      // Workspaces whose org is no longer live (purged): their reconcile reads fresh rows and finds
      // nothing to do, so they need no listing. (Those of orgs in a target another replica leads
      // stay with it.)
      const others = new Set(
        owners.orgs.filter((o) => !led.some((t) => t.name === o.target)).map((o) => o.id),
      );
      for (const [orgId, ids] of byOrg)
        if (!others.has(orgId)) for (const id of ids) this.enqueueOwner({ kind: 'workspace', id }, 'resync');
      this.log.info({ trigger, owners: ownerCount, ...listed }, 'resync queued every owner');
    } catch (e) {
      // A failed listing is never read as "absent": nothing is queued against a partial inventory.
      this.log.warn({ trigger, err: describeError(e) }, 'resync failed');
    }
  }

  /**
   * Queues every owner, org by org with its workspaces, in batches that each carry a snapshot of
   * their rows and an inventory of their instances and groups (see {@link RESYNC_BATCH_ORGS}).
   * A batch whose inputs are as they were when its reconciles last all found nothing to do is
   * not decoded or queued (runtime/batches.ts); its owners due for a deep check this resync are
   * still queued for the controllers that make one. `inputs` undefined: no batch is skipped.
   */
  private async queueInBatches(
    target: Target,
    orgIds: string[],
    byOrg: Map<string, string[]>,
    fleet: FleetInventory,
    inputs: string | undefined,
  ): Promise<{ instances: number; securityGroups: number; batches: number; skipped: number }> {
    const { database, deepChecks, metrics } = this.options;
    const book = this.batches.get(target.name) ?? new ResyncBatches();
    this.batches.set(target.name, book);
    const batches = book.plan(orgIds.sort(), RESYNC_BATCH_ORGS);
    const stillLeading = () => !this.stopping && this.isLeader(target.name);
    type Loaded = { snapshot: ResyncSnapshot; skipped?: undefined } | { skipped: BatchRecord };
    // The rows of every batch that was steady last time, digested in one statement.
    const known = inputs === undefined ? [] : batches.filter((b) => book.known(b));
    const digests = await DesiredSnapshot.rowsDigests(database, known);
    const rowsOf = new Map(known.map((b, i) => [b, digests[i]!]));
    const load = async (ids: string[]): Promise<Loaded> => {
      const entries = fleet.entriesDigest(ids);
      const rows = rowsOf.get(ids);
      // A batch that was steady is expected to be skipped: its pages are let go once hashed
      // (kept, megabytes of them outlived young collections and drove most old-generation ones),
      // and listed again in the rare case it changed.
      const listing = await fleet.listOrgs(ids, { keep: rows === undefined });
      const listed = listing.digest;
      if (inputs !== undefined && rows !== undefined && listed !== undefined) {
        const record = book.steady(ids, batchInputs(ids, [rows, listed, entries, inputs]));
        if (record) return { skipped: record };
      }
      const [desired, inventory] = await Promise.all([
        DesiredSnapshot.load(database, ids),
        listing.inventory(),
      ]);
      // The digests of what was decoded and read (decoding may have found the listing's unsure).
      const decoded = listing.digest;
      const batch =
        inputs !== undefined && decoded !== undefined && desired.digest !== undefined
          ? book.begin(ids, batchInputs(ids, [desired.digest, decoded, entries, inputs]), inventory.counts)
          : undefined;
      return { snapshot: { desired, inventory, batch } };
    };
    const deepCheckers = [...this.controlled].filter(([, c]) => c.reconciler.spec.deepChecks).map(([n]) => n);
    const owns = (kind: OwnerRef['kind']) =>
      deepCheckers.some((n) => this.controlled.get(n)!.reconciler.spec.owners.includes(kind));
    const checks = { org: owns('org'), workspace: owns('workspace') };
    const live = new LiveView(
      this.options.targets.portsFor(target),
      this.options.config.MOLECULE_ENV,
      target.vpcId,
    );
    const result = { instances: 0, securityGroups: 0, batches: batches.length, skipped: 0 };
    /** Owners of skipped batches due for a deep check, and their orgs. */
    const due: OwnerRef[] = [];
    const dueOrgs: string[] = [];
    let next = batches.length > 0 ? load(batches[0]!) : undefined;
    for (let b = 0; b < batches.length && next; b++) {
      const loaded = await next;
      // Read and list the next batch while this one is worked off.
      next = b + 1 < batches.length ? load(batches[b + 1]!) : undefined;
      next?.catch(() => {}); // awaited (and reported) on the next turn
      if (!stillLeading()) return result;
      const ids = batches[b]!;
      let keys = 0;
      if (loaded.skipped) {
        result.skipped++;
        result.instances += loaded.skipped.counts.instances;
        result.securityGroups += loaded.skipped.counts.securityGroups;
        metrics.resyncBatches.labels(target.name, 'skipped').inc();
        for (const id of ids) {
          const before = due.length;
          if (checks.org && deepChecks.due(id)) due.push({ kind: 'org', id });
          if (checks.workspace)
            for (const w of byOrg.get(id) ?? [])
              if (deepChecks.due(w)) due.push({ kind: 'workspace', id: w });
          if (due.length > before) dueOrgs.push(id);
          byOrg.delete(id);
        }
      } else {
        const { snapshot } = loaded;
        result.instances += snapshot.inventory.counts.instances;
        result.securityGroups += snapshot.inventory.counts.securityGroups;
        metrics.resyncBatches.labels(target.name, 'reconciled').inc();
        for (const id of ids) {
          const ws = byOrg.get(id) ?? [];
          byOrg.delete(id);
          this.enqueueOwner({ kind: 'org', id }, 'resync', snapshot);
          for (const w of ws) this.enqueueOwner({ kind: 'workspace', id: w }, 'resync', snapshot);
          keys += 1 + ws.length;
        }
      }
      if (keys > 0) await this.queuedAtMost(Math.floor(keys / 2), stillLeading);
    }
    // What no listing shows is still checked in skipped batches, owner by owner in turn, on the
    // rows as they are now (one read for all of them).
    if (due.length > 0 && deepCheckers.length > 0 && stillLeading()) {
      const snapshot: ResyncSnapshot = {
        desired: await DesiredSnapshot.load(database, dueOrgs),
        inventory: fleet.unlisted(live),
      };
      for (const owner of due) for (const name of deepCheckers) this.enqueue(name, owner, 'resync', snapshot);
    }
    return result;
  }

  /** Waits until the queues together hold at most `n` keys (or `go()` turns false). */
  private async queuedAtMost(n: number, go: () => boolean): Promise<void> {
    const depth = () => {
      let d = 0;
      for (const c of this.controlled.values()) d += c.queue.depth;
      return d;
    };
    while (go() && depth() > n) await new Promise((r) => setTimeout(r, 5));
  }

  /** Sets molecule_deletion_stuck: owners still holding a controller's resource 10 minutes after deletion was requested. */
  async refreshStuckDeletions(): Promise<void> {
    const stuck = await new StatusRepository(this.options.database.db).stuckDeletions();
    for (const name of this.options.registry.names)
      this.options.metrics.deletionStuck.labels(name).set(stuck.get(name) ?? 0);
  }

  /** Waits until every queue is empty and idle (tests, benchmarks, orderly shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      // A resync queues its owners batch by batch, and may be followed by another.
      while (this.resyncing) await this.resyncing;
      await Promise.all([...this.controlled.values()].map((c) => c.queue.drained()));
      // Handled keys too: one queue's drain may wake another's keys after that one was awaited.
      if (
        !this.resyncing &&
        [...this.controlled.values()].every((c) => c.queue.depth === 0 && c.queue.handling === 0)
      )
        return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  queueDepths(): Record<string, number> {
    return Object.fromEntries([...this.controlled].map(([n, c]) => [n, c.queue.depth]));
  }

  private onNotify(payload: string): void {
    let msg:
      | { kind: 'org' | 'workspace'; id: string; op?: string }
      | PinNotification
      | { kind: 'rollout'; image: string };
    try {
      msg = JSON.parse(payload);
    } catch {
      this.log.warn('ignored a malformed desired-state notification');
      return;
    }
    if (msg.kind === 'pin') {
      // Every replica forgets its pins: a standby that takes over must not launch with old ones.
      this.options.onPinsChanged?.();
      if (this.isLeader()) void this.pinChanged(msg);
      return;
    }
    if (!this.isLeader()) return;
    if (msg.kind === 'rollout') {
      this.options.onRolloutResumed?.();
      return;
    }
    this.enqueueOwner({ kind: msg.kind, id: msg.id }, 'event');
    // An org's spec (power state, canary, deletion) shapes its workspaces' resources too.
    if (msg.kind === 'org' && msg.op === 'UPDATE') {
      this.desired
        .listWorkspaces([msg.id])
        .then((ws) => {
          for (const w of ws) this.enqueueOwner({ kind: 'workspace', id: w.id }, 'event');
        })
        .catch((e) => this.log.warn({ err: describeError(e) }, 'cannot list workspaces of a changed org'));
    }
  }

  /**
   * Queues, for the controllers whose desired state reads pins, every owner the changed pin
   * applies to: the runtime's workspaces (every org for the tenant runtime), and for an AMI pin
   * only those placed in a target of the pin's region.
   */
  private async pinChanged(msg: PinNotification): Promise<void> {
    try {
      const regions = new Map(this.options.targets.all.map((t) => [t.name, t.region]));
      const owners = (await ownersPinnedBy(this.options.database.db, msg.runtime)).filter(
        (o) => msg.pin !== 'ami' || regions.get(o.target) === msg.region,
      );
      const readers = [...this.controlled].filter(([, c]) => c.reconciler.spec.readsPins).map(([n]) => n);
      for (const o of owners) for (const name of readers) this.enqueue(name, o, 'event');
      this.log.info(
        { pin: msg.pin, runtime: msg.runtime, region: msg.region, owners: owners.length },
        'pin changed; queued its owners',
      );
    } catch (e) {
      // The next resync reconciles them with the new pins.
      this.log.warn({ err: describeError(e) }, 'cannot list the owners of a changed pin');
    }
  }

  private startedLeading(target: TargetName, epoch: number): void {
    this.options.metrics.isLeader.labels(target).set(1);
    this.batches.get(target)?.forget(); // a new term sees every owner
    const first = this.ledTargets().length === 1;
    this.log.info({ target, epoch, holder: this.electors.get(target)!.holder }, 'became leader');
    if (first) {
      for (const [name, c] of this.controlled) {
        c.queue.start(async (key, info) => {
          const snapshot = info.reason === 'resync' ? c.snapshots.get(key) : undefined;
          c.snapshots.delete(key);
          if (!this.isLeader()) return { result: 'success' };
          // An owner whose target another replica leads is left to it (the reconciler checks).
          const outcome = await c.reconciler.reconcile(ownerOf(key), snapshot?.inventory, snapshot?.desired);
          snapshot?.batch?.ended(outcome);
          this.log.debug({ controller: name, key, result: outcome.result }, 'reconciled');
          return outcome;
        });
      }
    }
    void this.resync(`leader-elected:${target}`, { followUp: true });
  }

  private stoppedLeading(target: TargetName): void {
    this.options.metrics.isLeader.labels(target).set(0);
    this.batches.get(target)?.forget();
    this.fleets.delete(target);
    this.log.warn(
      { target, holder: this.electors.get(target)!.holder },
      'stopped leading; reconciling paused',
    );
    if (this.isLeader()) return; // still leading another target: its owners go on
    for (const c of this.controlled.values()) {
      void c.queue.stop();
      c.queue.clear();
      c.snapshots.clear();
    }
  }

  private schedule(
    name: string,
    expression: string,
    fn: () => Promise<void>,
    jitterMs: number,
    target?: TargetName,
  ): void {
    const task = cron.schedule(expression, async () => {
      // A tick never throws, and only the leader (of its target, if it has one) acts on it.
      try {
        if (!this.isLeader(target) || this.stopping) return;
        if (jitterMs > 0) await this.clock.sleep(Math.random() * jitterMs);
        await fn();
      } catch (e) {
        this.log.error({ job: name, err: describeError(e) }, 'scheduled job failed');
      }
    });
    this.tasks.push(task);
  }
}

function workspacesByOrg(workspaces: { id: string; orgId: string }[]): Map<string, string[]> {
  const byOrg = new Map<string, string[]>();
  for (const w of workspaces) {
    const list = byOrg.get(w.orgId);
    if (list) list.push(w.id);
    else byOrg.set(w.orgId, [w.id]);
  }
  return byOrg;
}

/** The orgs placed in a target. */
function orgsIn(target: Target, orgs: { id: string; target: TargetName }[]): string[] {
  return orgs.filter((o) => o.target === target.name).map((o) => o.id);
}

/**
 * Rotating allowance of per-object reads during resyncs (tunnel configurations cannot be listed
 * in bulk). With `n` objects and `budget` checks per resync, owners are split by a hash of their
 * id into `ceil(n / budget)` groups and each resync checks one group, so every object is checked
 * within that many resyncs while a resync's cost stays bounded.
 */
export class DeepCheckBudget {
  private round = 0;
  private period = 1;
  private remaining = Number.POSITIVE_INFINITY;

  nextRound(objects: number, budget: number): void {
    this.round++;
    this.period = Math.max(1, Math.ceil(objects / budget));
    // Slack for an uneven hash split; still a hard cap.
    this.remaining = this.period === 1 ? Number.POSITIVE_INFINITY : Math.ceil(budget * 1.5);
  }

  /** Whether it is this owner's turn this round (budget aside). */
  due(key: string): boolean {
    return this.period === 1 || hashOf(key) % this.period === this.round % this.period;
  }

  take(key: string): boolean {
    if (!this.due(key)) return false;
    if (this.remaining <= 0) return false;
    this.remaining--;
    return true;
  }
}

function hashOf(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
