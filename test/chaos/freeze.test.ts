import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAILPOINTS, type Failpoint } from '../../src/runtime/failpoints.js';
import { usingServer } from '../helpers/db.js';
import { snapshotTables } from '../helpers/tables.js';
import { recordFigures } from './lib/figures.js';
import { Fleet } from './lib/fleet.js';
import type { OperatorProcess } from './lib/process.js';
import { type RecordingProxy, startRecordingProxy } from './lib/proxy.js';
import { rng, startWorld, until, type World } from './lib/world.js';

/**
 * A leader frozen between deciding a write and making it (DESIGN §12). For each kind of write —
 * status row, audit entry, finalizer, purge, orphan ledger, cloud mutation — replica A runs with
 * a failpoint that stops it (SIGSTOP) right there, its lease term already in hand. Replica B
 * takes the lease; B is then frozen too, so that only A could change anything, and A resumes
 * exactly where it stopped, still believing it leads. The database must be unchanged and no
 * mutating request may leave A: the write is refused by the lease fence and A steps down.
 */
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000_007);

/** Stopped by a signal (state T in /proc). */
const stopped = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('T') ?? false;
  } catch {
    return false;
  }
};

describe.skipIf(!usingServer() || process.platform !== 'linux')('a leader frozen before a write', () => {
  let world: World;
  const proxies: RecordingProxy[] = [];
  beforeAll(async () => {
    world = await startWorld({ seed: SEED });
  }, 60_000);
  afterAll(async () => {
    await world?.close();
    for (const p of proxies) await p.close();
  });

  const refused: Record<string, number> = {};

  it.each(FAILPOINTS)(
    '%s: resumed after losing the lease, it writes nothing',
    { timeout: 120_000 },
    async (point: Failpoint) => {
      const fleet = new Fleet(world, rng(SEED), point.replace('before-', ''));
      const proxy = await startRecordingProxy(world.sim.url);
      proxies.push(proxy);
      // At debug level A logs each mutating request its lease check clears (see below).
      const env: Record<string, string> = { FAILPOINTS: point, LOG_LEVEL: 'debug' };
      // The ledger is written by the orphan scan: run it often.
      if (point === 'before-ledger-write') env.ORPHAN_SCAN_CRON = '*/2 * * * * *';
      // The purge comes last in a deletion: A first converges the org, without the failpoint firing.
      const a = await world.startOperator(`a-${point}`, { cloudUrl: proxy.url, env });
      await a.waitFor('became leader', 30_000);
      const org = await fleet.createOrg(1, false);
      if (point === 'before-purge') {
        await until(
          async () => (await world.api.call('GET', `/cp/orgs/${org.slug}`)).body?.status?.ready === true,
          60_000,
        );
        await fleet.deleteOrg();
      }
      await until(
        () => stopped(a.pid),
        60_000,
        () => `${a.label} never reached ${point}:\n${a.tail()}`,
      );

      // B takes over, then is frozen as well: from here only A could write.
      const b: OperatorProcess = await world.startOperator(`b-${point}`);
      await b.waitFor('became leader', 30_000);
      b.signal('SIGSTOP');
      await until(() => stopped(b.pid), 10_000);
      const ignoreLeases = (s: Awaited<ReturnType<typeof snapshotTables>>) => {
        const { leases: _, ...rest } = s;
        return rest;
      };
      const before = ignoreLeases(await snapshotTables(world.tdb.database));
      const resumedAt = Date.now();
      a.signal('SIGCONT');
      await a.waitFor('a write of an earlier lease term was refused: stepping down', 30_000, resumedAt);
      const after = ignoreLeases(await snapshotTables(world.tdb.database));
      // Every mutating request leaves A right after its lease check clears it, one check per
      // attempt. After resuming A clears none: whatever reaches the cloud after the resume was
      // cleared before A froze (a request already handed to its HTTP client: no fence can call
      // it back, and the create tokens make it harmless), never decided or sent anew.
      const cleared = a.messages('cloud mutation cleared').map((l) => Number(l.json?.time));
      const mutations = proxy.calls.filter((c) => c.mutating && c.at >= resumedAt);
      const sentBefore = proxy.calls.filter((c) => c.mutating && c.at < resumedAt).length;

      b.signal('SIGCONT');
      await a.kill();
      await b.kill();
      expect(after).toEqual(before);
      expect(cleared.filter((t) => t >= resumedAt)).toEqual([]);
      expect(mutations.length).toBeLessThanOrEqual(cleared.length - sentBefore);
      refused[point] = 1;
    },
  );

  it('recorded every kind of write', () => {
    recordFigures('freeze', { seed: SEED, refused, writesRefused: Object.keys(refused).length });
    expect(Object.keys(refused).sort()).toEqual([...FAILPOINTS].sort());
  });
});
