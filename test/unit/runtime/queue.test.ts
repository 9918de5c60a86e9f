import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/runtime/clock.js';
import { type Outcome, WorkQueue } from '../../../src/runtime/queue.js';

const tick = () => new Promise((r) => setImmediate(r));

function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => {
    open = r;
  });
  return { p, open };
}

describe('work queue', () => {
  it('never hands one key to two workers, and runs it once more if it changed meanwhile', async () => {
    const q = new WorkQueue({ concurrency: 4, clock: new ManualClock() });
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const g = gate();
    q.start(async () => {
      active++;
      runs++;
      maxActive = Math.max(maxActive, active);
      if (runs === 1) await g.p;
      active--;
      return { result: 'success' };
    });
    q.add('org:a');
    await tick();
    q.add('org:a');
    q.add('org:a');
    await tick();
    expect(maxActive).toBe(1);
    g.open();
    await q.drained();
    expect(runs).toBe(2);
    expect(maxActive).toBe(1);
  });

  it('coalesces duplicate adds of a queued key', async () => {
    const q = new WorkQueue({ concurrency: 1, clock: new ManualClock() });
    const seen: string[] = [];
    const g = gate();
    q.start(async (key) => {
      seen.push(key);
      if (key === 'first') await g.p;
      return { result: 'success' };
    });
    q.add('first');
    await tick();
    for (let i = 0; i < 5; i++) q.add('b');
    q.add('c');
    expect(q.depth).toBe(2);
    g.open();
    await q.drained();
    expect(seen).toEqual(['first', 'b', 'c']);
  });

  it('hands out work under way first, then events, then resync keys', async () => {
    const q = new WorkQueue({ concurrency: 1, clock: new ManualClock() });
    const seen: string[] = [];
    const g = gate();
    q.start(async (key, info) => {
      seen.push(`${key}/${info.reason}`);
      if (key === 'first') await g.p;
      // 'a' goes on at once with what it just created: it must not wait behind 'b' and 'c'.
      if (key === 'a' && info.reason === 'event') return { result: 'requeue', afterMs: 0 };
      return { result: 'success' };
    });
    q.add('first');
    await tick();
    q.add('r', 'resync');
    q.add('a');
    q.add('b');
    q.add('c');
    q.add('r2', 'resync');
    q.add('r2'); // an event for a key queued by a resync moves it up
    g.open();
    await q.drained();
    expect(seen).toEqual([
      'first/event',
      'a/event',
      'a/requeue',
      'b/event',
      'c/event',
      'r2/event',
      'r/resync',
    ]);
  });

  it('drained() resolves once the last key is handled, without polling', async () => {
    const q = new WorkQueue({ concurrency: 2, clock: new ManualClock() });
    const g = gate();
    q.start(async () => {
      await g.p;
      return { result: 'success' };
    });
    q.add('a');
    q.add('b');
    let done = false;
    const drained = q.drained().then(() => {
      done = true;
    });
    await tick();
    expect(done).toBe(false);
    g.open();
    await drained;
    expect(q.depth).toBe(0);
  });

  it('backs off exponentially with jitter on errors and resets after a success', async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({
      concurrency: 1,
      clock,
      baseDelayMs: 100,
      maxDelayMs: 10_000,
      jitter: 0,
      random: () => 0.5,
    });
    const outcomes: Outcome['result'][] = ['error', 'error', 'error', 'success', 'error'];
    const at: number[] = [];
    q.start(async () => {
      at.push(clock.now());
      return { result: outcomes.shift() ?? 'success' } as Outcome;
    });
    const t0 = clock.now();
    q.add('k');
    await q.drained();
    for (const step of [100, 200, 400]) {
      clock.advance(step - 1);
      await q.drained();
      const before = at.length;
      clock.advance(1);
      await q.drained();
      expect(at.length).toBe(before + 1);
    }
    expect(at.map((t) => t - t0)).toEqual([0, 100, 300, 700]);
    expect(q.attempts('k')).toBe(0); // the success reset it
    q.add('k');
    await q.drained();
    expect(q.attempts('k')).toBe(1);
    clock.advance(100); // first failure after a reset waits the base delay again
    await q.drained();
    expect(at.length).toBe(6);
  });

  it('spreads backoff delays with jitter', () => {
    let r = 0;
    const q = new WorkQueue({ baseDelayMs: 1000, jitter: 0.2, random: () => r });
    r = 0;
    const low = q.backoffDelay(1);
    r = 0.999;
    const high = q.backoffDelay(1);
    expect(low).toBe(800);
    expect(high).toBeGreaterThan(1190);
    expect(q.backoffDelay(30)).toBeLessThanOrEqual(300_000);
  });

  it('does not retry terminal results', async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    let runs = 0;
    q.start(async () => {
      runs++;
      return { result: 'terminal' };
    });
    q.add('k');
    await q.drained();
    clock.advance(3_600_000);
    await q.drained();
    expect(runs).toBe(1);
    expect(q.depth).toBe(0);
  });

  it('an event skips a pending backoff, a resync does not', async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock, baseDelayMs: 60_000, jitter: 0 });
    let runs = 0;
    q.start(async () => {
      runs++;
      return { result: runs === 1 ? 'error' : 'success' };
    });
    q.add('k');
    await q.drained();
    q.add('k', 'resync');
    await q.drained();
    expect(runs).toBe(1);
    q.add('k', 'event');
    await q.drained();
    expect(runs).toBe(2);
  });

  it('requeues after the requested delay', async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    let runs = 0;
    q.start(async () => {
      runs++;
      return runs === 1 ? { result: 'requeue', afterMs: 5000 } : { result: 'success' };
    });
    q.add('k');
    await q.drained();
    clock.advance(4999);
    await q.drained();
    expect(runs).toBe(1);
    clock.advance(1);
    await q.drained();
    expect(runs).toBe(2);
  });
  it('work that keeps coming back does not starve events or a resync', async () => {
    // Owners polling (a command, a rollout slot) requeue at once, forever: with concurrency 1
    // and strict lanes the event and the resync key would never be handed out.
    const q = new WorkQueue({ concurrency: 1, clock: new ManualClock() });
    const seen: string[] = [];
    const pollers = ['p1', 'p2', 'p3'];
    q.start(async (key) => {
      seen.push(key);
      if (pollers.includes(key) && seen.length < 200) return { result: 'requeue', afterMs: 0 };
      return { result: 'success' };
    });
    for (const p of pollers) q.add(p, 'requeue');
    q.add('event');
    q.add('resync', 'resync');
    await q.drained();
    const at = (k: string) => seen.indexOf(k);
    expect(at('event')).toBeGreaterThan(0);
    expect(at('event')).toBeLessThanOrEqual(9);
    expect(at('resync')).toBeGreaterThan(at('event'));
    expect(at('resync')).toBeLessThanOrEqual(20);
    // Each poller still ran again and again meanwhile.
    expect(seen.slice(0, at('resync')).filter((k) => k === 'p1').length).toBeGreaterThanOrEqual(3);
  });
});
