import { describe, expect, it } from 'vitest';
import { merged } from '../../../src/runtime/reconciler.js';

describe('merged (recorded status ids/state updated with an observation)', () => {
  it('is the recorded object itself when the observation adds nothing new', () => {
    const base: Record<string, unknown> = { groupId: 'sg-1', nested: { a: [1, 2] } };
    expect(merged(base, { groupId: 'sg-1' })).toBe(base);
    expect(merged(base, { nested: { a: [1, 2] } })).toBe(base);
    expect(merged(base, {})).toBe(base);
    expect(merged(base, undefined)).toBe(base);
    expect(merged(base, { groupId: undefined })).toBe(base);
  });

  it('is a new object with the observation on top when it changes or adds a member', () => {
    const base: Record<string, unknown> = { groupId: 'sg-1', token: 't' };
    const changed = merged(base, { groupId: 'sg-2' });
    expect(changed).toEqual({ groupId: 'sg-2', token: 't' });
    expect(changed).not.toBe(base);
    expect(merged(base, { dnsRecordId: 'r' })).toEqual({ groupId: 'sg-1', token: 't', dnsRecordId: 'r' });
    expect(base).toEqual({ groupId: 'sg-1', token: 't' }); // the recorded row is never modified
  });

  it('is a copy of the observation when nothing was recorded', () => {
    const extra = { tunnelId: 'x' };
    const out = merged<Record<string, unknown>>(null, extra);
    expect(out).toEqual(extra);
    expect(out).not.toBe(extra);
    expect(merged(undefined, undefined)).toEqual({});
  });
});
