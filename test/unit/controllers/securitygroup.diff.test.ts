import { describe, expect, it } from 'vitest';
import { diffRules, opensSshToWorld } from '../../../controllers/securitygroup.diff.js';
import type { IngressRule } from '../../../src/cloud/ports.js';

const eic: IngressRule = {
  protocol: 'tcp',
  fromPort: 22,
  toPort: 22,
  sourceGroupId: 'sg-0e1c',
  description: 'EIC',
};
const platform: IngressRule = { protocol: 'tcp', fromPort: 8080, toPort: 8080, cidr: '10.42.0.0/16' };
const world22: IngressRule = { protocol: 'tcp', fromPort: 22, toPort: 22, cidr: '0.0.0.0/0' };

describe('diffRules', () => {
  it.each([
    { reason: 'identical', want: [eic, platform], have: [eic, platform], add: [], remove: [] },
    { reason: 'missing rule', want: [eic, platform], have: [eic], add: [platform], remove: [] },
    { reason: 'extra world SSH rule', want: [eic], have: [eic, world22], add: [], remove: [world22] },
    {
      reason: 'description is not identity',
      want: [eic],
      have: [{ ...eic, description: 'other' }],
      add: [],
      remove: [],
    },
    {
      reason: 'protocol number equals name',
      want: [platform],
      have: [{ ...platform, protocol: '6' }],
      add: [],
      remove: [],
    },
    {
      reason: 'different source is a different rule',
      want: [eic],
      have: [{ ...eic, sourceGroupId: 'sg-x' }],
      add: [eic],
      remove: [{ ...eic, sourceGroupId: 'sg-x' }],
    },
    { reason: 'duplicates collapse', want: [eic, eic], have: [], add: [eic], remove: [] },
    { reason: 'empty group', want: [eic, platform], have: [], add: [eic, platform], remove: [] },
  ])('$reason', ({ want, have, add, remove }) => {
    expect(diffRules(want, have)).toEqual({ add, remove });
  });
});

describe('opensSshToWorld', () => {
  it.each([
    { rule: world22, want: true },
    { rule: { protocol: '-1', fromPort: -1, toPort: -1, cidr: '0.0.0.0/0' }, want: true },
    { rule: { protocol: 'tcp', fromPort: 0, toPort: 65535, cidr: '::/0' }, want: true },
    { rule: eic, want: false },
    { rule: { protocol: 'tcp', fromPort: 443, toPort: 443, cidr: '0.0.0.0/0' }, want: false },
    { rule: { protocol: 'tcp', fromPort: 22, toPort: 22, cidr: '10.0.0.0/8' }, want: false },
  ])('$rule.protocol $rule.fromPort-$rule.toPort $rule.cidr → $want', ({ rule, want }) => {
    expect(opensSshToWorld(rule as IngressRule)).toBe(want);
  });
});
