import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/client.js';
import { LeaseRepository } from '../../src/db/leases.js';
import { LeaderElector } from '../../src/runtime/lease.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase();
});
afterAll(async () => {
  await tdb.drop();
});

/** A database handle whose queries hang while `partitioned` is set: a replica cut off from Postgres. */
function partitionable(db: Database) {
  const state = { partitioned: false };
  const wrapped: Database = {
    ...db,
    query: async (text, params) => {
      while (state.partitioned) await new Promise((r) => setTimeout(r, 20));
      return db.query(text, params);
    },
  };
  return { db: wrapped, state };
}

async function until(cond: () => boolean, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
  return performance.now() - start;
}

describe('leader election', () => {
  it('exactly one of two replicas leads; a partitioned leader steps down before the other takes over', async () => {
    const timeline: { who: string; event: 'start' | 'stop'; at: number }[] = [];
    const timing = {
      leaseDurationMs: 1500,
      renewDeadlineMs: 1000,
      retryPeriodMs: 200,
      name: `lease-${Math.random()}`,
    };
    const a = partitionable(await tdb.open());
    const b = partitionable(await tdb.open());
    const electors: Record<string, LeaderElector> = {};
    const mk = (who: string, other: string, db: Database) =>
      new LeaderElector(new LeaseRepository(db), {
        ...timing,
        holder: who,
        onStartedLeading: () => {
          // Ask the other replica first: its own clock says whether it still believes it leads.
          // (Its step-down timer may fire late on a loaded machine; the belief never outlives
          // the deadline, and asking records the step-down if the timer has not yet.)
          electors[other]?.isLeader();
          timeline.push({ who, event: 'start', at: performance.now() });
        },
        onStoppedLeading: () => timeline.push({ who, event: 'stop', at: performance.now() }),
      });
    const ea = mk('a', 'b', a.db);
    const eb = mk('b', 'a', b.db);
    electors.a = ea;
    electors.b = eb;
    ea.start();
    await until(() => ea.isLeader(), 5000);
    eb.start();
    await new Promise((r) => setTimeout(r, 600));
    expect([ea.isLeader(), eb.isLeader()]).toEqual([true, false]);
    const epochA = ea.epoch;

    a.state.partitioned = true; // the leader can no longer renew
    const partitionedAt = performance.now();
    await until(() => eb.isLeader(), 5000);
    const takeover = performance.now() - partitionedAt;
    expect(takeover).toBeLessThan(timing.leaseDurationMs + timing.retryPeriodMs + 1000);
    expect(ea.isLeader()).toBe(false);
    expect(eb.epoch).toBeGreaterThan(epochA);

    // Intervals of leadership never overlap: a stopped before b started.
    const aStop = timeline.find((t) => t.who === 'a' && t.event === 'stop')!;
    const bStart = timeline.find((t) => t.who === 'b' && t.event === 'start')!;
    expect(aStop.at).toBeLessThan(bStart.at);

    a.state.partitioned = false; // back online: a must not lead again while b renews
    await new Promise((r) => setTimeout(r, 800));
    expect(ea.isLeader()).toBe(false);
    expect(eb.isLeader()).toBe(true);
    await eb.stop(); // a clean stop hands the lease over at once
    await until(() => ea.isLeader(), 3000);
    await ea.stop();
  });

  it('assertLeader refuses to act when not leading', async () => {
    const e = new LeaderElector(new LeaseRepository(tdb.database), {
      holder: 'x',
      name: `lease-${Math.random()}`,
    });
    expect(() => e.assertLeader()).toThrow(/not the leader/);
    expect(await e.tryAcquireOrRenew()).toBe(true);
    expect(() => e.assertLeader()).not.toThrow();
    await e.stop();
  });
});
