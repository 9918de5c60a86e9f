import { type Clock, systemClock, type Timer } from './clock.js';

/** Why a key was queued. An event outranks a resync: it may skip backoff and wants fresh observation. */
export type EnqueueReason = 'event' | 'resync' | 'retry' | 'requeue';

export type Outcome =
  /**
   * `steady`: decided from a resync's rows and listing, with nothing to write and nothing to do;
   * the same rows and listing would be decided the same way (runtime/batches.ts).
   */
  | { result: 'success'; steady?: boolean }
  | { result: 'requeue'; afterMs: number }
  | { result: 'error' }
  | { result: 'terminal' };

export type Handler = (key: string, info: { reason: EnqueueReason; attempt: number }) => Promise<Outcome>;

export interface QueueOptions {
  concurrency?: number;
  clock?: Clock;
  /** First retry delay after an error; doubles per consecutive failure. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** ±fraction of random spread on every backoff delay. */
  jitter?: number;
  random?: () => number;
  onRetry?: () => void;
}

const rank: Record<EnqueueReason, number> = { resync: 0, requeue: 1, retry: 2, event: 3 };

/**
 * Which ready keys are handed out first: work already under way (a requeue to look at what was
 * just created or changed, a retry), then events, then a resync's keys. Continuing an owner
 * before starting the next one lets its dependents start early: under provider rate limits a
 * cold start then pipelines across controllers instead of finishing each step for every owner
 * before any owner gets the next one.
 */
const LANE: Record<EnqueueReason, number> = { requeue: 0, retry: 0, event: 1, resync: 2 };

/**
 * A lane passed over this many times in a row while it had ready keys gets the next pick: work
 * that keeps coming back (owners polling a command, a slot, a dependency) must not starve events
 * or a resync behind it. A lower lane thus gets at least one pick in `PATIENCE + 1`.
 */
const PATIENCE = 8;

/**
 * A per-controller work queue keyed by owner. A key is never handled by two workers at once;
 * keys added while queued coalesce; a key added while it is being handled runs once more
 * afterwards. Errors back off exponentially with jitter; success resets the backoff.
 */
export class WorkQueue {
  private readonly clock: Clock;
  private readonly concurrency: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly jitter: number;
  private readonly random: () => number;
  /** Ready keys by lane (see {@link LANE}); a key may appear in several, the lane it is in counts. */
  private readonly lanes: string[][] = [[], [], []];
  private readonly laneOf = new Map<string, number>();
  /** Picks each lane was passed over for while it had ready keys (see {@link PATIENCE}). */
  private readonly passedOver: number[] = [0, 0, 0];
  private readonly queued = new Map<string, EnqueueReason>();
  private readonly delayed = new Map<string, { due: number; timer: Timer; reason: EnqueueReason }>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Map<string, EnqueueReason>();
  private readonly failures = new Map<string, number>();
  /** Keys being handled (counted rather than kept as promises: one less allocation per key). */
  private inFlight = 0;
  /** Callers of {@link drained} waiting for the queue to empty. */
  private drainWaiters: (() => void)[] = [];
  /** Callers of {@link stop} waiting for the handled keys to finish. */
  private stopWaiters: (() => void)[] = [];
  private handler: Handler | undefined;
  private running = false;

  constructor(private readonly options: QueueOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.concurrency = options.concurrency ?? 4;
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 300_000;
    this.jitter = options.jitter ?? 0.2;
    this.random = options.random ?? Math.random;
  }

  /** Keys waiting (ready or delayed), not counting those being handled. */
  get depth(): number {
    return this.queued.size + this.delayed.size;
  }

  /** Keys being handled right now. */
  get handling(): number {
    return this.inFlight;
  }

  /** Consecutive failures of a key (0 after a success). */
  attempts(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  isBusy(key: string): boolean {
    return this.processing.has(key);
  }

  /**
   * Queues a key now. An event cancels a pending backoff delay (something changed, so try
   * again at once); a resync does not, so a failing key is not hammered by every resync.
   */
  add(key: string, reason: EnqueueReason = 'event'): void {
    if (this.processing.has(key)) {
      const prev = this.dirty.get(key);
      if (!prev || rank[reason] > rank[prev]) this.dirty.set(key, reason);
      return;
    }
    const waiting = this.delayed.get(key);
    if (waiting) {
      if (reason !== 'event') return;
      this.clock.clearTimeout(waiting.timer);
      this.delayed.delete(key);
    }
    const lane = LANE[reason];
    const prev = this.queued.get(key);
    if (prev) {
      if (rank[reason] > rank[prev]) this.queued.set(key, reason);
      if (lane < this.laneOf.get(key)!) {
        this.laneOf.set(key, lane);
        this.lanes[lane]!.push(key);
      }
      return;
    }
    this.queued.set(key, reason);
    this.laneOf.set(key, lane);
    this.lanes[lane]!.push(key);
    this.pump();
  }

  /** Queues a key after a delay; an earlier existing schedule wins. */
  addAfter(key: string, ms: number, reason: EnqueueReason = 'requeue'): void {
    if (ms <= 0) {
      this.add(key, reason);
      return;
    }
    if (this.queued.has(key)) return;
    const due = this.clock.now() + ms;
    const waiting = this.delayed.get(key);
    if (waiting && waiting.due <= due) return;
    if (waiting) this.clock.clearTimeout(waiting.timer);
    const timer = this.clock.setTimeout(() => {
      const entry = this.delayed.get(key);
      if (!entry || entry.timer !== timer) return;
      this.delayed.delete(key);
      this.add(key, entry.reason);
    }, ms);
    this.delayed.set(key, { due, timer, reason });
  }

  /** The delay before the next try of a key that just failed for the n-th time in a row. */
  backoffDelay(failures: number): number {
    const exp = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.max(0, failures - 1));
    const spread = 1 - this.jitter + this.random() * 2 * this.jitter;
    return Math.min(this.maxDelayMs, Math.round(exp * spread));
  }

  start(handler: Handler): void {
    this.handler = handler;
    this.running = true;
    this.pump();
  }

  /** Stops handing out keys and waits for the ones being handled. Queued keys stay queued. */
  async stop(): Promise<void> {
    this.running = false;
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.stopWaiters.push(resolve));
  }

  /** Forgets everything queued or delayed (e.g. leadership lost); handled keys finish. */
  clear(): void {
    for (const { timer } of this.delayed.values()) this.clock.clearTimeout(timer);
    this.delayed.clear();
    this.queued.clear();
    for (const lane of this.lanes) lane.length = 0;
    this.passedOver.fill(0);
    this.laneOf.clear();
    this.dirty.clear();
    this.notifyDrained();
  }

  /**
   * Resolves when nothing is queued or being handled. For tests, benchmarks and orderly
   * shutdown. Woken by the queue itself: waiting costs nothing while keys are worked off.
   */
  async drained(): Promise<void> {
    if (this.inFlight === 0 && this.queued.size === 0) return;
    await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  private notifyDrained(): void {
    if (this.drainWaiters.length === 0 || this.inFlight > 0 || this.queued.size > 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private pump(): void {
    if (!this.running || !this.handler) return;
    while (this.processing.size < this.concurrency) {
      const key = this.nextReady();
      if (key === undefined) return;
      const reason = this.queued.get(key)!;
      this.queued.delete(key);
      this.laneOf.delete(key);
      this.processing.add(key);
      this.inFlight++;
      void this.run(key, reason);
    }
  }

  private nextReady(): string | undefined {
    // A lane passed over PATIENCE times goes first; else the first lane with a ready key.
    let first = -1;
    for (let l = 0; l < this.lanes.length; l++) {
      if (!this.hasReady(l)) {
        this.passedOver[l] = 0;
        continue;
      }
      if (first < 0) first = l;
      if (this.passedOver[l]! >= PATIENCE) {
        first = l;
        break;
      }
    }
    if (first < 0) return undefined;
    for (let l = 0; l < this.lanes.length; l++)
      if (l === first) this.passedOver[l] = 0;
      else if (l > first && this.lanes[l]!.length > 0) this.passedOver[l]!++;
    return this.lanes[first]!.shift();
  }

  /** Drops the lane's stale entries (keys since moved up or handed out) off its head. */
  private hasReady(l: number): boolean {
    const lane = this.lanes[l]!;
    while (lane.length > 0) {
      if (this.laneOf.get(lane[0]!) === l) return true;
      lane.shift();
    }
    return false;
  }

  /** Handles one key; never rejects. */
  private async run(key: string, reason: EnqueueReason): Promise<void> {
    let outcome: Outcome;
    try {
      outcome = await this.handler!(key, { reason, attempt: this.attempts(key) + 1 });
    } catch {
      outcome = { result: 'error' };
    }
    try {
      this.processing.delete(key);
      switch (outcome.result) {
        case 'success':
        case 'terminal':
          this.failures.delete(key);
          break;
        case 'requeue':
          this.failures.delete(key);
          this.addAfter(key, outcome.afterMs);
          break;
        case 'error': {
          const n = (this.failures.get(key) ?? 0) + 1;
          this.failures.set(key, n);
          this.options.onRetry?.();
          this.addAfter(key, this.backoffDelay(n), 'retry');
          break;
        }
      }
      const again = this.dirty.get(key);
      if (again) {
        this.dirty.delete(key);
        this.add(key, again);
      }
      this.pump();
    } finally {
      this.inFlight--;
      if (this.inFlight === 0 && this.stopWaiters.length > 0) {
        const waiters = this.stopWaiters;
        this.stopWaiters = [];
        for (const w of waiters) w();
      }
      this.notifyDrained();
    }
  }
}
