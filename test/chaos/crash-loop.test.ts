import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usingServer } from '../helpers/db.js';
import { recordFigures } from './lib/figures.js';
import { Fleet } from './lib/fleet.js';
import { checkInvariants, converge, orphanScan, safetyViolations, totalOrphans } from './lib/invariants.js';
import { LONG, rng, sleep, startWorld, type World } from './lib/world.js';

/**
 * Crash loop: `molecule-operator run` as a child process against PostgreSQL and the
 * simulator, SIGKILLed at random moments while the fleet is created, changed and partly
 * deleted through the API, and restarted each time. Afterwards every invariant holds, in both
 * targets: the primary account and the canary account.
 */
const KILLS = LONG ? 50 : 6;
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000_007);

describe.skipIf(!usingServer())('crash loop', () => {
  let world: World;
  beforeAll(async () => {
    // Canary orgs (a fifth of those created) live in a second account and region.
    world = await startWorld({ canary: true });
  }, 60_000);
  afterAll(async () => {
    await world?.close();
  });

  it(`survives ${KILLS} SIGKILLs mid-convergence with nothing lost, duplicated or leaked (seed ${SEED})`, {
    timeout: LONG ? 1_200_000 : 150_000,
  }, async () => {
    const r = rng(SEED);
    const fleet = new Fleet(world, r, 'crash');
    for (let i = 0; i < (LONG ? 6 : 4); i++) await fleet.createOrg(r.int(1, 2), i === 0);

    let driving = true;
    const driver = (async () => {
      while (driving) {
        await fleet.randomStep();
        await sleep(r.int(100, LONG ? 2_500 : 1_200));
      }
    })();

    const safety = new Set<string>();
    const lifetimes: number[] = [];
    let beforeLeading = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      const op = await world.startOperator(`operator-${kill}`);
      if (r.chance(0.2)) {
        // Some kills land during start-up or while waiting for the lease.
        beforeLeading++;
        await sleep(r.int(0, 1_500));
      } else {
        await op.waitFor('became leader', 30_000);
        await sleep(r.int(0, 2_500));
      }
      await op.kill();
      lifetimes.push(Date.now() - op.startedAt);
      for (const v of safetyViolations(world.sim.dump())) safety.add(v);
    }
    driving = false;
    await driver;
    // Make sure deletions are part of every run, whatever the random walk did.
    await fleet.deleteWorkspace();
    await fleet.deleteOrg();

    const final = await world.startOperator('operator-final');
    const convergedMs = await converge(world, safety, LONG ? 180_000 : 60_000, 250);
    const report = await checkInvariants(world);
    const scan = await orphanScan(world);

    expect(fleet.placed.canary).toBeGreaterThan(0);
    expect([...safety]).toEqual([]);
    expect(report.convergence).toEqual([]);
    expect(scan.ok, scan.errors.join('; ')).toBe(true);
    expect(scan.counts).toEqual(Object.fromEntries(Object.keys(scan.counts).map((k) => [k, 0])));
    expect(await final.terminate()).toBe(0);

    recordFigures('crash-loop', {
      seed: SEED,
      kills: KILLS,
      killsBeforeLeading: beforeLeading,
      meanLifetimeMs: Math.round(lifetimes.reduce((a, b) => a + b, 0) / lifetimes.length),
      fleetOps: fleet.ops,
      finalCounts: report.counts,
      orgsPlaced: fleet.placed,
      convergedAfterRestartMs: convergedMs,
      duplicates: 0,
      leaked: 0,
      orphans: totalOrphans(scan),
      auditGaps: 0,
    });
  });
});
