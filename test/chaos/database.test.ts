import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usingServer } from '../helpers/db.js';
import { recordFigures } from './lib/figures.js';
import { Fleet } from './lib/fleet.js';
import { checkInvariants, safetyViolations } from './lib/invariants.js';
import type { OperatorProcess } from './lib/process.js';
import { type RecordingProxy, startRecordingProxy, startTcpProxy, type TcpProxy } from './lib/proxy.js';
import { LONG, rng, sleep, startWorld, until, type World } from './lib/world.js';

/**
 * Database trouble. The operator reaches PostgreSQL through a TCP proxy the test controls and
 * the cloud through a recording proxy. Its connections are killed server-side
 * (pg_terminate_backend) mid-work, then the database refuses connections for a while as
 * desired state keeps changing. While it cannot read desired state it must keep its hands off
 * the cloud; it must recover by itself and converge on everything asked meanwhile.
 */
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000_007);
const OUTAGES = LONG ? 6 : 2;
const OUTAGE_MS = LONG ? 30_000 : 6_000;
const TERMINATIONS = LONG ? 10 : 3;
/** LEASE_RENEW_DEADLINE of the operator: in-flight work may finish within it, nothing starts after. */
const RENEW_DEADLINE_MS = 2_000;
const APP = 'chaos-operator';

describe.skipIf(!usingServer())('database trouble', () => {
  let world: World;
  let db: TcpProxy;
  let cloud: RecordingProxy;
  let operator: OperatorProcess;
  beforeAll(async () => {
    world = await startWorld();
    db = await startTcpProxy('127.0.0.1', Number(new URL(world.tdb.url!).port || 5432));
    cloud = await startRecordingProxy(world.sim.url);
  }, 60_000);
  afterAll(async () => {
    await world?.close();
    await db?.close();
    await cloud?.close();
  });

  const converge = (timeoutMs: number) =>
    until(
      async () => (await checkInvariants(world)).convergence.length === 0,
      timeoutMs,
      async () => JSON.stringify(await checkInvariants(world), null, 2),
      100,
    );

  it(`survives dropped connections and ${OUTAGES} refused-connection outages of ${OUTAGE_MS / 1000} s (seed ${SEED})`, {
    timeout: LONG ? 900_000 : 120_000,
  }, async () => {
    const r = rng(SEED);
    const fleet = new Fleet(world, r, 'db');
    const url = new URL(world.tdb.url!);
    url.port = String(db.port);
    url.searchParams.set('application_name', APP);
    operator = await world.startOperator('operator', { cloudUrl: cloud.url, databaseUrl: url.toString() });
    await operator.waitFor('became leader', 30_000);
    for (let i = 0; i < 3; i++) await fleet.createOrg(2);
    await converge(60_000);

    // 1. Connections killed server-side while the operator works on a change.
    const recoveries: number[] = [];
    let terminated = 0;
    for (let i = 0; i < TERMINATIONS; i++) {
      await fleet.changeTier();
      await fleet.powerWorkspace();
      await sleep(r.int(0, 300));
      const [row] = await world.tdb.database.query<{ n: number }>(
        `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1`,
        [APP],
      );
      terminated += row!.n;
      recoveries.push(await converge(60_000));
    }
    expect(terminated).toBeGreaterThan(0);

    // 2. Connections refused for a while, with desired state changing meanwhile.
    const outages: { lateMutations: string[]; inFlight: number; recoveredMs: number }[] = [];
    for (let i = 0; i < OUTAGES; i++) {
      await fleet.changeTier();
      await fleet.powerWorkspace();
      await sleep(r.int(0, 300));
      await db.down();
      const downAt = Date.now();
      const endAt = downAt + OUTAGE_MS;
      // What the operator cannot see yet.
      await fleet.createOrg(1);
      await fleet.deleteWorkspace();
      await fleet.changeTier();
      while (Date.now() < endAt) {
        expect(safetyViolations(world.sim.dump())).toEqual([]);
        await sleep(250);
      }
      expect(operator.running).toBe(true);
      const upAt = Date.now();
      await db.up();
      const mutations = cloud.calls.filter((c) => c.mutating && c.at >= downAt && c.at <= upAt);
      outages.push({
        lateMutations: mutations
          .filter((c) => c.at > downAt + RENEW_DEADLINE_MS)
          .map((c) => `${c.service} ${c.operation} +${c.at - downAt} ms`),
        inFlight: mutations.filter((c) => c.at <= downAt + RENEW_DEADLINE_MS).length,
        recoveredMs: await converge(LONG ? 120_000 : 60_000),
      });
      await fleet.deleteOrg();
    }
    await converge(60_000);
    expect(outages.flatMap((o) => o.lateMutations)).toEqual([]);
    expect(operator.messages('stopped leading; reconciling paused').length).toBeGreaterThanOrEqual(OUTAGES);
    expect(await operator.terminate()).toBe(0);

    recordFigures('database', {
      seed: SEED,
      backendsTerminated: terminated,
      terminationRounds: TERMINATIONS,
      recoveryAfterTerminationMs: recoveries,
      outages: OUTAGES,
      outageMs: OUTAGE_MS,
      mutatingCallsDuringOutage: outages.reduce((a, o) => a + o.lateMutations.length, 0),
      inFlightMutationsFinishedAtOutageStart: outages.map((o) => o.inFlight),
      convergedAfterOutageMs: outages.map((o) => o.recoveredMs),
    });
  });
});
