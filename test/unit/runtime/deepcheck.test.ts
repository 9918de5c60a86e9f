import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DeepCheckBudget } from '../../../src/runtime/manager.js';

describe('deep-check budget', () => {
  it('checks everything every resync while the fleet fits the budget', () => {
    const b = new DeepCheckBudget();
    b.nextRound(8, 10);
    const keys = Array.from({ length: 8 }, () => randomUUID());
    expect(keys.every((k) => b.take(k))).toBe(true);
  });

  it('rotates through a large fleet: bounded per resync, everyone within ceil(n / budget) resyncs', () => {
    const b = new DeepCheckBudget();
    const keys = Array.from({ length: 1000 }, () => randomUUID());
    const checked = new Set<string>();
    const period = Math.ceil(1000 / 40);
    for (let round = 0; round < period; round++) {
      b.nextRound(keys.length, 40);
      const taken = keys.filter((k) => b.take(k));
      expect(taken.length).toBeLessThanOrEqual(60);
      for (const k of taken) checked.add(k);
    }
    // A key beyond the hard cap in its round is skipped; almost every key is covered once.
    expect(checked.size).toBeGreaterThan(950);
  });
});
