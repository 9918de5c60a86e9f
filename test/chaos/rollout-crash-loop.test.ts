import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usingServer } from '../helpers/db.js';
import { LONG, rng, sleep, startWorld, until, type World } from './lib/world.js';

/**
 * Crash loop during a rollout (DESIGN §11): `molecule-operator run` redeploys a fleet of tenants
 * to a new image while it is SIGKILLed at random moments and restarted. A kill may land between
 * a SendCommand and its record; the next process must adopt that command by its comment. In the
 * end every instance runs the new image and received exactly one command for it.
 */
const TENANTS = 100;
const KILLS = LONG ? 20 : 6;
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000_007);
const OLD = 'ghcr.io/molecule-ai/platform-tenant:1';
const NEW = 'ghcr.io/molecule-ai/platform-tenant:2';

describe.skipIf(!usingServer())('crash loop during a rollout', () => {
  let world: World;
  beforeAll(async () => {
    world = await startWorld();
  }, 60_000);
  afterAll(async () => {
    await world?.close();
  });

  const tenants = () =>
    world.sim
      .dump()
      .instances.filter(
        (i) => i.state === 'running' && i.tags.Role === 'tenant' && i.tags.MOLECULE_ENV === 'chaos',
      );

  it(`redeploys ${TENANTS} tenants exactly once each through ${KILLS} SIGKILLs (seed ${SEED})`, {
    timeout: 600_000,
  }, async () => {
    const r = rng(SEED);
    for (let i = 0; i < TENANTS; i++) {
      const res = await world.api.call('POST', '/cp/orgs', { slug: `roll-${i}`, isCanary: i < 3 });
      expect(res.status).toBe(201);
    }
    const fast = {
      RATE_LIMITS: JSON.stringify({ 'ec2-run-instances': { capacity: 100, refillPerSecond: 50 } }),
    };
    const first = await world.startOperator('launch', { env: { TENANT_IMAGE: OLD, ...fast } });
    await until(
      async () => tenants().filter((i) => i.tags.Image === OLD).length === TENANTS,
      240_000,
      async () => `${tenants().length} tenants running`,
      500,
    );
    await first.kill();

    const rollout = {
      TENANT_IMAGE: NEW,
      ROLLOUT_CANARY_SOAK: '1s',
      ROLLOUT_MAX_IN_FLIGHT: '10',
      ...fast,
    };
    for (let kill = 0; kill < KILLS; kill++) {
      const op = await world.startOperator(`rollout-${kill}`, { env: rollout });
      await op.waitFor('became leader', 30_000);
      await sleep(r.int(200, 2_500));
      await op.kill();
    }
    const final = await world.startOperator('rollout-final', { env: rollout });
    const started = Date.now();
    await until(
      async () => tenants().filter((i) => i.tags.Image === NEW).length === TENANTS,
      240_000,
      async () => `${tenants().filter((i) => i.tags.Image === NEW).length} of ${TENANTS} redeployed`,
      500,
    );
    const finishedMs = Date.now() - started;
    await final.kill();

    const running = tenants();
    expect(running).toHaveLength(TENANTS);
    const sentFor = running.map((i) => (i.commands ?? []).filter((c) => c.comment.endsWith(` ${NEW}`)));
    // Exactly one command per instance for this image and redeploy generation, every one done.
    expect(sentFor.filter((c) => c.length !== 1).map((c) => c.map((x) => x.comment))).toEqual([]);
    expect(sentFor.flat().every((c) => c.status === 'Success')).toBe(true);
    // Nothing was stopped or replaced: the same instances, launched once.
    expect(new Set(running.map((i) => i.tags.OrgID)).size).toBe(TENANTS);
    console.log(
      `rollout crash loop: ${TENANTS} tenants, ${KILLS} kills, ${sentFor.flat().length} commands, final operator finished in ${finishedMs} ms`,
    );
  });
});
