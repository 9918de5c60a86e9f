import { describe, expect, it } from 'vitest';
import { tunnel } from '../../../controllers/index.js';
import { CATCH_ALL } from '../../../controllers/tunnel.js';
import type { DnsRecord, Tunnel } from '../../../src/cloud/ports.js';
import { dnsComment, tunnelName } from '../../../src/provisioning/names.js';
import { config, decide, type Given, ORG_ID } from './harness.js';

const NAME = tunnelName('test', ORG_ID);
const HOST = 'acme.moleculesai.app';
const t1: Tunnel = {
  id: 't1',
  name: NAME,
  createdAt: new Date('2026-01-01'),
  deletedAt: undefined,
  status: 'healthy',
};
const cname = (over: Partial<DnsRecord> = {}): DnsRecord => ({
  id: 'r1',
  name: HOST,
  type: 'CNAME',
  content: 't1.cfargotunnel.com',
  proxied: true,
  comment: dnsComment('test', ORG_ID),
  ...over,
});
const goodConfig = {
  t1: { version: 1, ingress: [{ hostname: HOST, service: config.TENANT_ORIGIN_SERVICE }, CATCH_ALL] },
};
const ready: Given['self'] = { tunnel: { externalIds: { tunnelId: 't1', dnsRecordId: 'r1' } } };

describe('tunnel: observed + desired → action', () => {
  it.each<{ reason: string; given: Given; want: { action: string; diff?: string[] } }>([
    { reason: 'no tunnel: create it under its deterministic name', given: {}, want: { action: 'create' } },
    {
      reason: 'tunnel, configuration and CNAME as desired: nothing to do',
      given: { self: ready, cloud: { tunnels: [t1], records: [cname()], configs: goodConfig } },
      want: { action: 'none', diff: [] },
    },
    {
      reason: 'the CNAME is missing',
      given: { self: ready, cloud: { tunnels: [t1], configs: goodConfig } },
      want: { action: 'update', diff: [`dns: no CNAME ${HOST}`] },
    },
    {
      reason: 'a CNAME an earlier org with this slug left behind is taken over',
      given: {
        self: ready,
        cloud: {
          tunnels: [t1],
          configs: goodConfig,
          records: [
            cname({
              content: 'told.cfargotunnel.com',
              comment: dnsComment('test', '11111111-1111-4111-8111-111111111111'),
            }),
          ],
        },
      },
      want: { action: 'update', diff: ['dns: points to told.cfargotunnel.com', 'dns: comment'] },
    },
    {
      reason: 'proxying turned off out of band',
      given: {
        self: ready,
        cloud: { tunnels: [t1], records: [cname({ proxied: false })], configs: goodConfig },
      },
      want: { action: 'update', diff: ['dns: not proxied'] },
    },
    {
      reason: 'the remote configuration lost its catch-all rule',
      given: {
        self: ready,
        cloud: {
          tunnels: [t1],
          records: [cname()],
          configs: {
            t1: { version: 2, ingress: [{ hostname: HOST, service: config.TENANT_ORIGIN_SERVICE }] },
          },
        },
      },
      want: { action: 'update', diff: ['configuration: ingress differs'] },
    },
    {
      reason: 'deleting with the tunnel there: delete record and tunnel',
      given: { self: ready, deleting: true, cloud: { tunnels: [t1], records: [cname()] } },
      want: { action: 'delete' },
    },
    {
      reason: 'deleting and the tunnel is gone: release',
      given: { self: ready, deleting: true, cloud: { tunnels: [{ ...t1, deletedAt: new Date() }] } },
      want: { action: 'release' },
    },
  ])('$reason', async ({ given, want }) => {
    const { action, obs } = await decide(tunnel, given);
    expect(action.type).toBe(want.action);
    if (want.diff) expect(obs.diff).toEqual(want.diff);
    if (want.action === 'create') expect(action).toEqual({ type: 'create', token: NAME });
  });

  it('refuses a hostname that already has a record that is not ours', async () => {
    const foreign = cname({ type: 'A', content: '203.0.113.7', comment: undefined });
    await expect(decide(tunnel, { cloud: { tunnels: [t1], records: [foreign] } })).rejects.toMatchObject({
      reason: 'DnsNameConflict',
    });
  });
});
