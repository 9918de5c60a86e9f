import type { Fence } from '../db/fence.js';
import type { LeaseRepository } from '../db/leases.js';
import { type Clock, systemClock } from './clock.js';
import { NotLeaderError } from './errors.js';

export interface LeaseOptions {
  name?: string;
  holder: string;
  /** How long a lease is valid after each renewal, in the database's time. */
  leaseDurationMs?: number;
  /** A leader that has not renewed for this long stops acting; must be below the lease duration. */
  renewDeadlineMs?: number;
  /** Interval between acquire attempts and between renewals. */
  retryPeriodMs?: number;
  clock?: Clock;
  onStartedLeading?: (epoch: number) => void;
  onStoppedLeading?: () => void;
  onError?: (err: unknown) => void;
  /**
   * Asked before each attempt to take the lease while not holding it (renewals are not asked):
   * false leaves it to another replica this time (see Manager's sharing of targets).
   */
  mayAcquire?: () => boolean;
}

/**
 * Leader election on a `leases` row, after client-go's Lease lock. The lease's expiry is set
 * in database time; the leader's own belief expires earlier, by the local monotonic clock, at
 * `renewDeadline` after the start of its last successful renewal. So a leader that cannot
 * renew (paused, partitioned, database down) stops acting before anyone else may take over.
 */
export class LeaderElector {
  readonly name: string;
  readonly holder: string;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private readonly clock: Clock;
  private leaderUntil = 0;
  private currentEpoch = 0;
  private leading = false;
  private stopped = true;
  private loop: Promise<void> | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();

  constructor(
    private readonly leases: LeaseRepository,
    private readonly options: LeaseOptions,
  ) {
    this.name = options.name ?? 'molecule-operator';
    this.holder = options.holder;
    this.leaseMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryMs = options.retryPeriodMs ?? 2_000;
    this.clock = options.clock ?? systemClock;
    if (this.renewDeadlineMs >= this.leaseMs)
      throw new Error('renew deadline must be shorter than the lease');
  }

  /** True while this replica may act: it holds the lease and renewed it recently enough. */
  isLeader(): boolean {
    if (this.leading && performance.now() >= this.leaderUntil) this.lose();
    return this.leading;
  }

  get epoch(): number {
    return this.currentEpoch;
  }

  /**
   * The term a write belongs to (db/fence.ts): this lease, this holder, the current epoch.
   * Throws {@link NotLeaderError} unless this replica may act right now.
   */
  fence(): Fence {
    if (!this.isLeader()) throw new NotLeaderError();
    return { lease: this.name, holder: this.holder, epoch: this.currentEpoch };
  }

  /** Throws {@link NotLeaderError} unless this replica may act right now. Called before every cloud mutation. */
  assertLeader(): void {
    if (!this.isLeader()) throw new NotLeaderError();
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  /** Stops campaigning; a leader gives its lease up so a standby can take over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop;
    if (this.leading) {
      this.lose();
      await this.leases.release(this.name, this.holder).catch((e) => this.options.onError?.(e));
    }
  }

  /**
   * Stops acting at once because the database refused a write of this term (db/fence.ts): the
   * lease is someone else's, whatever the local timers say. Keeps campaigning.
   */
  fencedOut(): void {
    if (this.leading) this.lose();
  }

  /**
   * Gives the lease up now but keeps campaigning (another replica should lead this one): it
   * stops acting at once, and the row expires so that another replica may take it.
   */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.lose();
    await this.leases.release(this.name, this.holder).catch((e) => this.options.onError?.(e));
  }

  /** One acquire-or-renew attempt; returns whether this replica now leads. */
  async tryAcquireOrRenew(): Promise<boolean> {
    if (!this.leading && this.options.mayAcquire && !this.options.mayAcquire()) return false;
    const started = performance.now();
    const epoch = await this.leases.acquireOrRenew(this.name, this.holder, this.leaseMs);
    if (epoch === undefined) {
      if (this.leading) this.lose();
      return false;
    }
    if (this.leading && epoch !== this.currentEpoch) this.lose(); // lost it in between: a new term starts clean
    this.leaderUntil = started + this.renewDeadlineMs;
    // Step down on time even if the next renewal hangs (database unreachable).
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(
      () => this.isLeader(),
      Math.max(0, this.leaderUntil - performance.now()) + 1,
    );
    this.deadlineTimer.unref();
    if (!this.leading) {
      this.leading = true;
      this.currentEpoch = epoch;
      this.options.onStartedLeading?.(epoch);
    }
    return true;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.tryAcquireOrRenew();
      } catch (e) {
        this.options.onError?.(e);
      }
      this.isLeader(); // drops leadership once the renew deadline passed without a renewal
      await this.clock.sleep(this.retryMs, this.abort.signal);
    }
  }

  private lose(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (!this.leading) return;
    this.leading = false;
    this.options.onStoppedLeading?.();
  }
}
