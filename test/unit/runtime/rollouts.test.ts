import { describe, expect, it } from 'vitest';
import type { OwnerRef } from '../../../src/db/desired.js';
import type { FleetMember, RolloutPolicy } from '../../../src/provisioning/rollout.js';
import { ManualClock } from '../../../src/runtime/clock.js';
import type { RolloutRequest } from '../../../src/runtime/controller.js';
import { RolloutCoordinator } from '../../../src/runtime/rollouts.js';
import { ROLLOUT_IMAGE as IMG, fleetMember as member } from '../../fixtures/rollout.js';

/**
 * The rollout gate of a running operator over a recorded fleet (the source is the port to the
 * database): owners it holds back are woken when they may go, not left to poll.
 */

const MIN = 60_000;
const policy: RolloutPolicy = { soakMs: 10 * MIN, maxInFlight: 1, maxFailures: 2 };
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

const ask = (m: FleetMember): RolloutRequest => ({
  owner: { kind: 'org', id: m.id },
  orgId: m.id,
  canary: m.canary,
  imageKind: 'tenant',
  image: m.image,
});

function setup(fleet: FleetMember[], resumes = new Map<string, number>()) {
  const clock = new ManualClock();
  const woken: string[] = [];
  let loads = 0;
  const gate = new RolloutCoordinator(
    {
      load: async () => {
        loads++;
        return { fleet: fleet.map((m) => ({ ...m })), resumes };
      },
    },
    policy,
    clock,
    {
      maxAgeMs: 1_000,
      recheckMs: 60_000,
      wake: (owners: OwnerRef[]) => woken.push(...owners.map((o) => o.id)),
    },
  );
  return { clock, gate, woken, fleet, loads: () => loads };
}

describe('rollout coordinator', () => {
  it('wakes the others when the last canary ends and its soak has passed, not before', async () => {
    const c1 = member('c1');
    const o1 = member('o1');
    const o2 = member('o2');
    const { clock, gate, woken, fleet } = setup([c1, o1, o2]);
    expect(await gate.admit(ask(c1))).toEqual({ admitted: true });
    const held = await gate.admit(ask(o1));
    expect(held).toMatchObject({ admitted: false, reason: 'WaitingForCanaries', retryAfterMs: 60_000 });
    expect(await gate.admit(ask(o2))).toMatchObject({ admitted: false });

    // The canary's command ends (the record still says in flight): the soak starts, nobody goes
    // yet; the held owners are woken only to say so (their condition would be stale).
    fleet[0] = { ...c1, phase: 'in_flight' };
    gate.finished({ kind: 'org', id: 'c1' }, { image: IMG, outcome: 'done', at: clock.now() });
    await settle();
    expect(woken).toEqual(['o1', 'o2']);
    expect(await gate.admit(ask(o1))).toMatchObject({ reason: 'CanarySoaking', retryAfterMs: 60_000 });
    expect(await gate.preview(ask(o2))).toMatchObject({ reason: 'CanarySoaking' });
    woken.length = 0;

    // The record catches up; the soak ends on the clock: the plan's first owner is woken (one
    // slot) without anyone asking.
    fleet[0] = { ...c1, phase: 'done', doneAt: clock.now() };
    clock.advance(10 * MIN);
    await settle();
    // o1 may go; o2 now waits for a slot rather than for the soak.
    expect(woken).toEqual(['o1', 'o2']);
    expect(await gate.admit(ask(o1))).toEqual({ admitted: true });
    expect(await gate.admit(ask(o2))).toMatchObject({ reason: 'WaitingForRolloutSlot' });
    woken.length = 0;

    // o1's command ends: o2 is woken at once.
    fleet[1] = { ...o1, phase: 'in_flight' };
    clock.advance(2_000);
    gate.finished({ kind: 'org', id: 'o1' }, { image: IMG, outcome: 'done', at: clock.now() });
    await settle();
    expect(woken).toEqual(['o2']);
    expect(await gate.admit(ask(o2))).toEqual({ admitted: true });
  });

  it('a failed command frees its slot; the failed owner waits out its own backoff', async () => {
    const o1 = member('o1');
    const o2 = member('o2');
    const { clock, gate, woken, fleet } = setup([o1, o2]);
    expect(await gate.admit(ask(o1))).toEqual({ admitted: true });
    expect(await gate.admit(ask(o2))).toMatchObject({ reason: 'WaitingForRolloutSlot' });
    fleet[0] = { ...o1, phase: 'in_flight' };
    gate.finished(
      { kind: 'org', id: 'o1' },
      { image: IMG, outcome: 'failed', at: clock.now(), retryAt: clock.now() + 30_000 },
    );
    await settle();
    expect(woken).toEqual(['o2']);
  });

  it('a resume wakes the owners a paused rollout held', async () => {
    const resumes = new Map<string, number>();
    const failed = { phase: 'failed' as const, failedAt: 0, retryAt: 0 };
    const { clock, gate, woken } = setup([member('o1', failed), member('o2', failed), member('o3')], resumes);
    clock.advance(MIN);
    expect(await gate.admit(ask(member('o3')))).toMatchObject({ reason: 'RolloutPaused' });
    resumes.set(IMG, clock.now());
    gate.resumed();
    await settle();
    // o1 may retry (one slot); o3 is told it now waits for a slot.
    expect(woken).toEqual(['o1', 'o3']);
  });

  it('a preview reserves no slot and wakes no one; a closed gate sets no timer', async () => {
    const o1 = member('o1');
    const o2 = member('o2');
    const { clock, gate, woken } = setup([member('c1', { phase: 'done', doneAt: 0 }), o1, o2]);
    clock.advance(MIN);
    expect(await gate.preview(ask(o1))).toEqual({ admitted: true });
    expect(await gate.preview(ask(o1))).toEqual({ admitted: true });
    expect(await gate.admit(ask(o1))).toEqual({ admitted: true });
    gate.close();
    gate.finished({ kind: 'org', id: 'o1' }, { image: IMG, outcome: 'done', at: clock.now() });
    await settle();
    expect(woken).toEqual([]);
    expect(clock.pendingTimers()).toBe(0);
  });
});
