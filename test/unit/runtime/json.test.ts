import { describe, expect, it } from 'vitest';
import { sameJson } from '../../../src/runtime/json.js';

describe('sameJson', () => {
  it('is true exactly when JSON.stringify would give the same text, key order aside', () => {
    const cases: [unknown, unknown][] = [
      [
        { a: 1, b: [1, { c: 'x' }] },
        { b: [1, { c: 'x' }], a: 1 },
      ],
      [{ a: 1, gone: undefined }, { a: 1 }],
      [new Date(1700000000123), new Date(1700000000123)],
      [{ at: new Date(Number.NaN) }, { at: new Date(Number.NaN) }],
      [new Date(1700000000123), new Date(1700000000124)],
      [{ a: 1 }, { a: 1, b: 2 }],
      [
        [1, 2],
        [2, 1],
      ],
      [[1], { 0: 1 }],
      [{ a: null }, {}],
    ];
    const text = (v: unknown) =>
      JSON.stringify(v, (_k, x) =>
        x && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Date)
          ? Object.fromEntries(Object.entries(x).sort())
          : x,
      );
    // A Date and its ISO string, an invalid Date and null, are told apart: the safe side.
    expect(sameJson(new Date(0), new Date(0).toISOString())).toBe(false);
    expect(sameJson(new Date(Number.NaN), null)).toBe(false);
    for (const [a, b] of cases) expect(sameJson(a, b), JSON.stringify([a, b])).toBe(text(a) === text(b));
  });
});
