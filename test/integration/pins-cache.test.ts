import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PinRepository, PinsCache } from '../../src/db/pins.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let tdb: TestDatabase;

beforeAll(async () => {
  tdb = await createTestDatabase();
});
afterAll(async () => {
  await tdb?.drop();
});

describe('PinsCache', () => {
  it('serves cached pins until invalidated, and never keeps a read that began before an invalidation', async () => {
    const repo = new PinRepository(tdb.database.db);
    const cache = new PinsCache(tdb.database.db, 3_600_000);
    await repo.set({ pin: 'runtime_image', runtime: 'hermes' }, 'ghcr.io/a/hermes:1', 'test');

    const first = await cache.get();
    expect(first.image('hermes')).toBe('ghcr.io/a/hermes:1');
    // Fresh for an hour: answered synchronously, without reading the change.
    await repo.set({ pin: 'runtime_image', runtime: 'hermes' }, 'ghcr.io/a/hermes:2', 'test');
    const cached = cache.get();
    expect(cached).not.toBeInstanceOf(Promise);
    expect((cached as Awaited<typeof cached>).image('hermes')).toBe('ghcr.io/a/hermes:1');

    // A read in flight when the pins change: its caller gets what it read, the cache keeps nothing.
    cache.invalidate();
    const inFlight = cache.get();
    expect(inFlight).toBeInstanceOf(Promise);
    cache.invalidate();
    expect((await inFlight).image('hermes')).toBe('ghcr.io/a/hermes:2');
    await repo.set({ pin: 'ami', runtime: 'hermes', region: 'us-east-1' }, 'ami-0123abcd', 'test');
    const next = cache.get();
    expect(next).toBeInstanceOf(Promise);
    const after = await next;
    expect(after.ami('hermes', 'us-east-1')).toBe('ami-0123abcd');
    expect(after.ami('hermes', 'eu-west-1')).toBeUndefined();
    expect(cache.get()).not.toBeInstanceOf(Promise);
  });
});
