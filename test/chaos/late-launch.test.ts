import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usingServer } from '../helpers/db.js';
import { recordFigures } from './lib/figures.js';
import { Fleet } from './lib/fleet.js';
import { checkInvariants, safetyViolations } from './lib/invariants.js';
import { type RecordingProxy, startRecordingProxy } from './lib/proxy.js';
import { rng, startWorld, until, type World } from './lib/world.js';

const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000_007);

/**
 * The sharpest edge of eventual consistency: launches that waited in the client-side rate
 * limiter, so they left well after their create was recorded, still invisible when their
 * owners are deleted. The deletion must wait for them to show up, not take them for gone.
 */
describe.skipIf(!usingServer())('late launches hidden by eventual consistency', () => {
  let world: World;
  let proxy: RecordingProxy;
  beforeAll(async () => {
    world = await startWorld({ seed: SEED, faults: { eventualConsistencyMs: 3_000 } });
    proxy = await startRecordingProxy(world.sim.url);
  }, 60_000);
  afterAll(async () => {
    await world?.close();
    await proxy?.close();
  });

  it('deletes every instance, however late it was launched', { timeout: 120_000 }, async () => {
    const fleet = new Fleet(world, rng(SEED), 'late');
    const operator = await world.startOperator('operator', {
      cloudUrl: proxy.url,
      // One launch every 2 s: the fourth leaves ~6 s after its create was recorded (grace 4 s),
      // after its owner's deletion was requested, and stays invisible for 3 s more.
      env: { RATE_LIMITS: JSON.stringify({ 'ec2-run-instances': { capacity: 1, refillPerSecond: 0.5 } }) },
    });
    await operator.waitFor('became leader', 30_000);
    const org = await fleet.createOrg(0);
    await until(async () => (await checkInvariants(world)).convergence.length === 0, 60_000);

    const mark = Date.now();
    for (let i = 0; i < 4; i++) await fleet.addWorkspace(org);
    const launched = () =>
      proxy.calls.filter((c) => c.at >= mark && c.operation === 'RunInstances' && c.status === 200);
    // Two launches are out; the other two wait in the limiter, their creates already recorded.
    await until(
      () => launched().length >= 2,
      60_000,
      () => `${launched().length} launches`,
      20,
    );
    for (const id of [...org.workspaces.keys()]) {
      org.workspaces.delete(id);
      await world.api.call('DELETE', `/cp/workspaces/${id}`);
    }
    await until(
      async () => (await checkInvariants(world)).convergence.length === 0,
      60_000,
      async () => JSON.stringify(await checkInvariants(world), null, 2),
    );
    expect(launched().length).toBeGreaterThanOrEqual(4);
    expect(safetyViolations(world.sim.dump())).toEqual([]);
    expect(await operator.terminate()).toBe(0);
    recordFigures('late-launch', { seed: SEED, launches: launched().length, ownersDeleted: 4, leaked: 0 });
  });
});
