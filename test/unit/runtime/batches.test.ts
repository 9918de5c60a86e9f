import { describe, expect, it } from 'vitest';
import { batchInputs, ResyncBatches } from '../../../src/runtime/batches.js';

const ids = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => `org-${String(from + i).padStart(5, '0')}`);
const sorted = (a: string[]) => [...a].sort();

describe('ResyncBatches.plan', () => {
  it('fills batches the first time, and keeps their boundaries when an org comes or goes', () => {
    const book = new ResyncBatches();
    const fleet = ids(1000);
    const first = book.plan(fleet, 200);
    expect(first.map((b) => b.length)).toEqual([200, 200, 200, 200, 200]);
    expect(first.flat()).toEqual(fleet);

    // One new org lands in one batch; the others are as they were.
    const grown = sorted([...fleet, 'org-00450x']);
    const second = book.plan(grown, 200);
    expect(second.flat()).toEqual(grown);
    expect(second.every((b) => b.length <= 200)).toBe(true);
    // The full batch it joined is split in two; the other four are as they were.
    expect(second).toHaveLength(6);
    expect(second.filter((b) => first.some((f) => f.join() === b.join()))).toHaveLength(4);

    // One org gone: only its batch changes.
    const shrunk = grown.filter((id) => id !== 'org-00010');
    const third = book.plan(shrunk, 200);
    expect(third.flat()).toEqual(shrunk);
    expect(third.filter((b) => !second.some((s) => s.join() === b.join()))).toHaveLength(1);
  });

  it('starts over when deletions left many more batches than needed', () => {
    const book = new ResyncBatches();
    book.plan(ids(2000), 100);
    const few = ids(2000).filter((_, i) => i % 20 === 0); // 100 orgs spread over 20 ranges
    expect(book.plan(few, 100)).toEqual([few]);
  });
});

describe('ResyncBatches records', () => {
  const batch = ids(3);
  const inputs = batchInputs(batch, ['rows', 'listing', 'entries', 'pins']);
  const counts = { instances: 6, securityGroups: 6 };

  it('a batch is steady when every reconcile queued with it ended steady, on the same inputs', () => {
    const book = new ResyncBatches();
    book.plan(batch, 10);
    const record = book.begin(batch, inputs, counts);
    for (let i = 0; i < 4; i++) record.expect();
    for (let i = 0; i < 3; i++) record.ended({ result: 'success', steady: true });
    expect(book.known(batch)).toBe(false); // one has not ended yet
    record.ended({ result: 'success', steady: true });
    expect(book.known(batch)).toBe(true);
    expect(book.steady(batch, inputs)?.counts).toEqual(counts);
    expect(
      book.steady(batch, batchInputs(batch, ['rows', 'listing', 'entries', 'other pins'])),
    ).toBeUndefined();
  });

  it('one reconcile that wrote, acted, failed or will look again leaves the batch unsteady', () => {
    for (const outcome of [
      { result: 'success' as const },
      { result: 'requeue' as const, afterMs: 10 },
      { result: 'error' as const },
      { result: 'terminal' as const },
    ]) {
      const book = new ResyncBatches();
      book.plan(batch, 10);
      const record = book.begin(batch, inputs, counts);
      record.expect();
      record.expect();
      record.ended({ result: 'success', steady: true });
      record.ended(outcome);
      expect(book.steady(batch, inputs)).toBeUndefined();
    }
  });

  it('is forgotten with the term, and with its batch', () => {
    const book = new ResyncBatches();
    book.plan(batch, 10);
    const record = book.begin(batch, inputs, counts);
    record.expect();
    record.ended({ result: 'success', steady: true });
    book.forget();
    expect(book.steady(batch, inputs)).toBeUndefined();
    book.begin(batch, inputs, counts);
    book.plan(ids(3, 100), 10); // the batch is no more
    expect(book.known(batch)).toBe(false);
  });

  it('inputs differ when the org ids or any part differ', () => {
    expect(batchInputs(ids(3, 1), ['rows', 'listing', 'entries', 'pins'])).not.toBe(inputs);
    expect(batchInputs(batch, ['rows', 'listing', 'entries', 'pins'])).toBe(inputs);
    expect(batchInputs(batch, ['row', 'slisting', 'entries', 'pins'])).not.toBe(inputs);
  });
});
