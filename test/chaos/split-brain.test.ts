import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usingServer } from '../helpers/db.js';
import { recordFigures } from './lib/figures.js';
import { Fleet } from './lib/fleet.js';
import { checkInvariants, safetyViolations } from './lib/invariants.js';
import type { OperatorProcess } from './lib/process.js';
import { type RecordingProxy, startRecordingProxy, startTcpProxy, type TcpProxy } from './lib/proxy.js';
import { LONG, rng, sleep, startWorld, until, type World } from './lib/world.js';

/**
 * Split brain: two replicas, each behind its own recording proxy. The leader is frozen with
 * SIGSTOP while launches wait in its rate limiter, kept frozen past its lease until the
 * standby has taken over, then resumed with SIGCONT. From the moment it resumes, the old
 * leader must not send a single mutating cloud call.
 */
const ROUNDS = LONG ? 10 : 2;
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000_007);
const LEASE_MS = 3_000;
/** `leases` is the election itself; `set` is the `DO UPDATE SET` of an upsert, counted by its INSERT. */
const ELECTION = new Set(['leases', 'set', 'SET']);

// Launches queue in the client-side limiter: a frozen leader always has mutations in hand.
const SLOW_LAUNCHES = JSON.stringify({ 'ec2-run-instances': { capacity: 1, refillPerSecond: 2 } });

interface Replica {
  name: string;
  proxy: RecordingProxy;
  db: TcpProxy;
  process: OperatorProcess;
}

describe.skipIf(!usingServer())('split brain', () => {
  let world: World;
  const replicas: Replica[] = [];
  beforeAll(async () => {
    world = await startWorld();
  }, 60_000);
  afterAll(async () => {
    await world?.close();
    await Promise.all(replicas.flatMap((r) => [r.proxy.close(), r.db.close()]));
  });

  it(`a leader frozen past its lease never acts again after it resumes (${ROUNDS} rounds, seed ${SEED})`, {
    timeout: LONG ? 900_000 : 120_000,
  }, async () => {
    const r = rng(SEED);
    const fleet = new Fleet(world, r, 'split');
    const start = async (name: string) => {
      const proxy = await startRecordingProxy(world.sim.url);
      const db = await startTcpProxy('127.0.0.1', Number(new URL(world.tdb.url!).port || 5432));
      const databaseUrl = new URL(world.tdb.url!);
      databaseUrl.port = String(db.port);
      const process = await world.startOperator(name, {
        cloudUrl: proxy.url,
        databaseUrl: databaseUrl.toString(),
        env: { RATE_LIMITS: SLOW_LAUNCHES, LEASE_DURATION: `${LEASE_MS}ms` },
      });
      const replica = { name, proxy, db, process };
      replicas.push(replica);
      return replica;
    };
    const a = await start('replica-a');
    await a.process.waitFor('became leader', 30_000);
    await start('replica-b');

    const epochs: number[] = [await leaseEpoch(world)];
    const takeovers: number[] = [];
    const stale: string[] = [];
    let fencedAfterResume = 0; // fenced statements a resumed leader sent (each refused)
    for (let round = 0; round < ROUNDS; round++) {
      // A burst of work: several launches queue behind the leader's limiter.
      const mark = Date.now();
      for (let i = 0; i < 2; i++) await fleet.createOrg(r.int(1, 2));
      if (round > 0) await fleet.changeTier();
      await until(
        () => replicas.some((x) => x.proxy.calls.some((c) => c.at >= mark && c.operation === 'RunInstances')),
        60_000,
        () => 'nothing launched',
        10,
      );
      await sleep(r.int(0, 1_500));
      // Whoever holds the lease right now (its holder name carries the pid).
      let holder: Replica | undefined;
      await until(
        async () => {
          holder = await holderOf(world, replicas);
          return holder !== undefined;
        },
        10_000,
        () => 'no replica holds the lease',
      );
      const leader = holder!;
      const standby = replicas.find((x) => x !== leader)!;

      // Freeze the leader mid-flight and keep it frozen past its lease.
      const stoppedAt = Date.now();
      leader.process.signal('SIGSTOP');
      const took = await standby.process.waitFor('became leader', 30_000, stoppedAt);
      takeovers.push(took.at - stoppedAt);
      epochs.push(await leaseEpoch(world));
      // Let the new leader work a little, then wake the old one up.
      await sleep(r.int(200, 1_000));
      const resumedAt = Date.now();
      leader.process.signal('SIGCONT');
      await leader.process.waitFor('stopped leading; reconciling paused', 30_000, resumedAt);

      // Converge under the new leader; meanwhile the old one must stay silent.
      await until(
        async () => (await checkInvariants(world)).convergence.length === 0,
        60_000,
        async () => JSON.stringify(await checkInvariants(world), null, 2),
        250,
      );
      for (const c of leader.proxy.calls)
        if (c.at >= resumedAt && c.mutating)
          stale.push(`${leader.name} after resume: ${c.service} ${c.operation} +${c.at - resumedAt} ms`);
      // Nor may it write desired or observed state (its own lease campaign aside). A statement
      // that carries the lease fence may still be sent by work already under way when it froze
      // (a create whose answer arrives after it resumes, then audited): the database refuses it,
      // as test/integration/fence.test.ts and the freeze scenario prove. Anything else is stale.
      for (const w of leader.db.writes)
        if (w.at >= resumedAt && !ELECTION.has(w.table) && !w.fenced)
          stale.push(`${leader.name} after resume: wrote ${w.table} +${w.at - resumedAt} ms`);
      fencedAfterResume += leader.db.writes.filter((w) => w.at >= resumedAt && w.fenced).length;
      expect(safetyViolations(world.sim.dump())).toEqual([]);
    }

    // The detectors see the replicas' traffic at all.
    expect(a.db.writes.some((w) => w.table === 'reconcile_status')).toBe(true);
    expect(a.proxy.calls.some((c) => c.mutating)).toBe(true);
    expect(stale).toEqual([]);
    expect(new Set(epochs).size).toBe(epochs.length); // every takeover started a new term
    expect((await checkInvariants(world)).convergence).toEqual([]);
    for (const rep of replicas) expect(await rep.process.terminate()).toBe(0);

    recordFigures('split-brain', {
      seed: SEED,
      rounds: ROUNDS,
      leaseMs: LEASE_MS,
      takeoverMs: takeovers,
      maxTakeoverMs: Math.max(...takeovers),
      epochs,
      staleMutationsAfterResume: stale.length,
      fencedWritesRefusedAfterResume: fencedAfterResume,
      duplicates: 0,
    });
  });
});

/** The replica whose pid is in the unexpired lease's holder name. */
async function holderOf(world: World, replicas: Replica[]): Promise<Replica | undefined> {
  const [row] = await world.tdb.database.query<{ holder: string }>(
    `SELECT holder FROM leases WHERE name = 'molecule-operator' AND expires_at > now()`,
  );
  return replicas.find((x) => row?.holder.includes(`-${x.process.pid}-`));
}

async function leaseEpoch(world: World): Promise<number> {
  const [row] = await world.tdb.database.query<{ epoch: string }>(
    `SELECT epoch FROM leases WHERE name = 'molecule-operator'`,
  );
  return Number(row?.epoch ?? 0);
}
