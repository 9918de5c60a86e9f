import { describe, expect, it } from 'vitest';
import { type FleetMember, planRollouts, type RolloutPolicy } from '../../../src/provisioning/rollout.js';
import { ROLLOUT_IMAGE as IMG, fleetMember as m } from '../../fixtures/rollout.js';

const MIN = 60_000;
const NOW = 100 * MIN;
const policy: RolloutPolicy = { soakMs: 10 * MIN, maxInFlight: 2, maxFailures: 2 };

interface Case {
  reason: string;
  given: { fleet: FleetMember[]; policy?: Partial<RolloutPolicy>; resumed?: [string, number][] };
  want: { admit: string[]; held?: Record<string, string>; stage?: string; paused?: boolean };
}

const cases: Case[] = [
  {
    reason: 'canaries go first; the others wait for them',
    given: { fleet: [m('o1'), m('c1'), m('o2')] },
    want: { admit: ['c1'], held: { o1: 'WaitingForCanaries', o2: 'WaitingForCanaries' }, stage: 'canary' },
  },
  {
    reason: 'every canary must be done, not only some',
    given: { fleet: [m('c1', { phase: 'done', doneAt: 0 }), m('c2', { phase: 'in_flight' }), m('o1')] },
    want: { admit: [], held: { o1: 'WaitingForCanaries' }, stage: 'canary' },
  },
  {
    reason: 'canaries done moments ago: the others wait out the soak',
    given: { fleet: [m('c1', { phase: 'done', doneAt: NOW - MIN }), m('o1')] },
    want: { admit: [], held: { o1: 'CanarySoaking' }, stage: 'soaking' },
  },
  {
    reason: 'soak measured from the last canary to finish',
    given: {
      fleet: [
        m('c1', { phase: 'done', doneAt: NOW - 20 * MIN }),
        m('c2', { phase: 'done', doneAt: NOW - 9 * MIN }),
        m('o1'),
      ],
    },
    want: { admit: [], held: { o1: 'CanarySoaking' } },
  },
  {
    reason: 'soak passed: the others go, at most ROLLOUT_MAX_IN_FLIGHT at once',
    given: { fleet: [m('c1', { phase: 'done', doneAt: NOW - 10 * MIN }), m('o1'), m('o2'), m('o3')] },
    want: { admit: ['o1', 'o2'], held: { o3: 'WaitingForRolloutSlot' }, stage: 'rolling' },
  },
  {
    reason: 'commands in flight take slots',
    given: { fleet: [m('c1', { phase: 'done' }), m('o1', { phase: 'in_flight' }), m('o2'), m('o3')] },
    want: { admit: ['o2'], held: { o3: 'WaitingForRolloutSlot' } },
  },
  {
    reason: 'a canary that runs the image since launch counts as soaked long ago',
    given: { fleet: [m('c1', { phase: 'done' }), m('o1')] },
    want: { admit: ['o1'] },
  },
  {
    reason: 'no canary wants the image: nothing to wait for',
    given: { fleet: [m('o1'), m('o2')] },
    want: { admit: ['o1', 'o2'], stage: 'rolling' },
  },
  {
    reason: 'a stopped canary does not hold the rollout up',
    given: { fleet: [m('c1', { phase: 'stopped' }), m('c2', { phase: 'done' }), m('o1')] },
    want: { admit: ['o1'] },
  },
  {
    reason: 'ROLLOUT_MAX_FAILURES failed owners pause the image, retries included',
    given: {
      fleet: [
        m('c1', { phase: 'done' }),
        m('o1', { phase: 'failed', failedAt: NOW - MIN }),
        m('o2', { phase: 'in_flight', failedAt: NOW - 2 * MIN }),
        m('o3'),
      ],
    },
    want: { admit: [], held: { o1: 'RolloutPaused', o3: 'RolloutPaused' }, stage: 'paused', paused: true },
  },
  {
    reason: 'fewer failures than the limit: failed owners are retried',
    given: {
      fleet: [m('c1', { phase: 'done' }), m('o1', { phase: 'failed', failedAt: NOW - MIN }), m('o2')],
    },
    want: { admit: ['o1', 'o2'], paused: false },
  },
  {
    reason: 'a resume forgets the failures before it',
    given: {
      fleet: [
        m('c1', { phase: 'done' }),
        m('o1', { phase: 'failed', failedAt: NOW - 5 * MIN }),
        m('o2', { phase: 'failed', failedAt: NOW - 4 * MIN }),
      ],
      resumed: [[IMG, NOW - 3 * MIN]],
    },
    want: { admit: ['o1', 'o2'], paused: false, stage: 'rolling' },
  },
  {
    reason: 'a pause holds one image only',
    given: {
      fleet: [
        m('o1', { phase: 'failed', failedAt: NOW }),
        m('o2', { phase: 'failed', failedAt: NOW }),
        m('w1', { image: 'ghcr.io/m/hermes:3', imageKind: 'workspace' }),
      ],
    },
    want: { admit: ['w1'], held: { o1: 'RolloutPaused', o2: 'RolloutPaused' } },
  },
  {
    reason: 'canaries of any image before other owners of any image',
    given: {
      fleet: [m('a1', { image: 'a/a:1' }), m('c9', { image: 'z/z:1' })],
      policy: { maxInFlight: 1 },
    },
    want: { admit: ['c9'], held: { a1: 'WaitingForRolloutSlot' } },
  },
  {
    reason: 'everyone done: nothing to do',
    given: { fleet: [m('c1', { phase: 'done' }), m('o1', { phase: 'done' })] },
    want: { admit: [], held: {}, stage: 'done' },
  },
];

describe('rollout planner', () => {
  it.each(cases)('$reason', ({ given, want }) => {
    const plan = planRollouts(given.fleet, { ...policy, ...given.policy }, NOW, new Map(given.resumed ?? []));
    expect(plan.admit).toEqual(want.admit);
    if (want.held)
      expect(Object.fromEntries([...plan.held].map(([id, h]) => [id, h.reason]))).toEqual(want.held);
    const rollout = plan.rollouts.find((r) => r.image === IMG);
    if (want.stage) expect(rollout?.stage).toBe(want.stage);
    if (want.paused !== undefined) expect(rollout?.paused).toBe(want.paused);
  });

  it('counts owners per phase and says when the soak ends', () => {
    const plan = planRollouts(
      [m('c1', { phase: 'done', doneAt: NOW - MIN }), m('o1'), m('o2', { phase: 'stopped' })],
      policy,
      NOW,
    );
    expect(plan.rollouts).toEqual([
      {
        image: IMG,
        imageKind: 'tenant',
        counts: { done: 1, pending: 1, in_flight: 0, failed: 0, stopped: 1 },
        failures: 0,
        paused: false,
        stage: 'soaking',
        soakEndsAt: NOW + 9 * MIN,
      },
    ]);
  });
});
