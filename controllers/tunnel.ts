import type { CloudflarePorts, DnsRecord, IngressConfigRule, Tunnel } from '../src/cloud/ports.js';
import {
  dnsComment,
  dnsCommentBase,
  dnsCommentKept,
  KEEP_MARK,
  orgIdFromDnsComment,
  tenantHostname,
  tunnelCnameTarget,
  tunnelName,
} from '../src/provisioning/names.js';
import { absent, type Controller, type DesiredInput, type Observation } from '../src/runtime/controller.js';
import { isConflict, TerminalError } from '../src/runtime/errors.js';

export const CATCH_ALL: IngressConfigRule = { service: 'http_status:404' };

export interface DesiredTunnel {
  env: string;
  orgId: string;
  name: string;
  hostname: string;
  ingress: IngressConfigRule[];
  comment: string;
}

export interface ObservedTunnel {
  tunnel: Tunnel;
  /** Undefined when this pass did not read the configuration (resync budget spent). */
  configOk: boolean | undefined;
  /** The CNAME we keep (ours or one we take over), if any. */
  record: DnsRecord | undefined;
  /** Records on the hostname that are not ours and cannot be taken over. */
  foreign: DnsRecord[];
}

/**
 * The org's Cloudflare tunnel, its remote configuration and the `<slug>.<APP_DOMAIN>` CNAME.
 * The tunnel name is deterministic, so a create whose response was lost is found by name.
 */
export function createTunnelController(cf: CloudflarePorts): Controller<DesiredTunnel, ObservedTunnel> {
  return {
    desired: toDesired,

    async observe(d, ctx): Promise<Observation<ObservedTunnel>> {
      const tunnels = (await ctx.view.tunnels(d.name)).sort(
        (a, b) => (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0),
      );
      const tunnel = tunnels[0];
      if (!tunnel) return absent();
      const records = await ctx.view.dnsRecords(d.hostname);
      const { record, foreign } = pickRecord(d, tunnel, records);
      if (ctx.deleting) {
        return {
          exists: true,
          upToDate: false,
          diff: ['deleting'],
          externalIds: { tunnelId: tunnel.id, ...(record ? { dnsRecordId: record.id } : {}) },
          resource: { tunnel, configOk: undefined, record, foreign },
        };
      }
      let configOk: boolean | undefined;
      if (ctx.allowDeepCheck()) {
        const config = await cf.tunnels.getConfiguration(tunnel.id);
        configOk = !!config && sameIngress(config.ingress, d.ingress);
      }
      const diff: string[] = [];
      if (configOk === false) diff.push('configuration: ingress differs');
      if (!record) diff.push(`dns: no CNAME ${d.hostname}`);
      else {
        if (record.content !== tunnelCnameTarget(tunnel.id)) diff.push(`dns: points to ${record.content}`);
        if (!record.proxied) diff.push('dns: not proxied');
        // A keep mark an operator added is theirs to remove.
        if (dnsCommentBase(record.comment) !== d.comment) diff.push('dns: comment');
      }
      if (foreign.length > 0 && !record) {
        throw new TerminalError(`${d.hostname} already has a record that is not ours`, {
          reason: 'DnsNameConflict',
        });
      }
      return {
        exists: true,
        upToDate: diff.length === 0,
        diff,
        externalIds: {
          tunnelId: tunnel.id,
          ...(record && diff.length === 0 ? { dnsRecordId: record.id } : {}),
        },
        ...connectivity(tunnel),
        resource: { tunnel, configOk, record, foreign },
      };
    },

    createToken: (d) => d.name,

    async create(d) {
      try {
        const t = await cf.tunnels.createTunnel(d.name);
        return { externalIds: { tunnelId: t.id }, details: { name: d.name } };
      } catch (e) {
        if (!isConflict(e)) throw e;
        // Name taken: our earlier create went through (lost response, crash). Adopt it.
        const [t] = await cf.tunnels.listTunnels({ name: d.name });
        if (!t) throw e;
        return { externalIds: { tunnelId: t.id }, adopted: true, details: { name: d.name } };
      }
    },

    async update(d, obs) {
      const { tunnel, configOk, record } = obs.resource!;
      const done: string[] = [];
      if (configOk !== true) {
        await cf.tunnels.putConfiguration(tunnel.id, d.ingress);
        done.push('configuration');
      }
      const want = {
        name: d.hostname,
        content: tunnelCnameTarget(tunnel.id),
        proxied: true,
        comment: record && dnsCommentKept(record.comment) ? `${d.comment} ${KEEP_MARK}` : d.comment,
      };
      let dnsRecordId = record?.id;
      if (!record) {
        dnsRecordId = (await cf.dns.createRecord(want)).id;
        done.push('dns created');
      } else if (record.content !== want.content || !record.proxied || record.comment !== want.comment) {
        // Also how a CNAME left behind by an earlier org with the same slug is taken over.
        await cf.dns.updateRecord(record.id, want);
        done.push('dns updated');
      }
      return {
        externalIds: { tunnelId: tunnel.id, ...(dnsRecordId ? { dnsRecordId } : {}) },
        details: { done },
      };
    },

    async delete(d, obs) {
      const { tunnel, record } = obs.resource!;
      // Only our own record: after a slug reuse the CNAME may already belong to the new org.
      if (record && orgIdFromDnsComment(d.env, record.comment) === d.orgId)
        await cf.dns.deleteRecord(record.id);
      await cf.tunnels.deleteTunnel(tunnel.id);
      return { gone: true, details: { tunnelId: tunnel.id, dnsRecordId: record?.id } };
    },
  };
}

/**
 * The tunnel's connectivity as Cloudflare reports it. `degraded` (only stale connections left)
 * and `down` (its connectors went away: the tenant is stopped, replaced or failing) say nothing
 * about the tunnel itself, which exists and is configured: a condition to see, never "missing".
 */
export function connectivity(tunnel: Tunnel): Pick<Observation, 'readyCondition'> {
  if (tunnel.status === 'degraded')
    return {
      readyCondition: {
        reason: 'TunnelDegraded',
        message: 'tunnel is degraded: only stale connections remain (cloudflared stopped or reconnecting)',
      },
    };
  if (tunnel.status === 'down')
    return {
      readyCondition: {
        reason: 'TunnelDown',
        message: 'tunnel is down: no cloudflared connector is connected',
      },
    };
  return {};
}

function toDesired(input: DesiredInput): DesiredTunnel {
  const { config, org } = input;
  const hostname = tenantHostname(org.slug, config.APP_DOMAIN);
  return {
    env: config.MOLECULE_ENV,
    orgId: org.id,
    name: tunnelName(config.MOLECULE_ENV, org.id),
    hostname,
    ingress: [{ hostname, service: config.TENANT_ORIGIN_SERVICE }, CATCH_ALL],
    comment: dnsComment(config.MOLECULE_ENV, org.id),
  };
}

/**
 * Which record on the hostname is ours to keep: one pointing to our tunnel, else one marked as
 * ours by its comment (ours, or left by an earlier org of this env — taken over).
 */
export function pickRecord(
  d: DesiredTunnel,
  tunnel: Tunnel,
  records: DnsRecord[],
): { record: DnsRecord | undefined; foreign: DnsRecord[] } {
  const onName = records.filter((r) => r.name === d.hostname);
  const target = tunnelCnameTarget(tunnel.id);
  const ours = (r: DnsRecord) =>
    r.type === 'CNAME' && (r.content === target || orgIdFromDnsComment(d.env, r.comment) !== undefined);
  const record = onName.find((r) => r.type === 'CNAME' && r.content === target) ?? onName.find(ours);
  return { record, foreign: onName.filter((r) => !ours(r)) };
}

export function sameIngress(have: IngressConfigRule[], want: IngressConfigRule[]): boolean {
  if (have.length !== want.length) return false;
  return want.every(
    (w, i) =>
      (have[i]?.hostname ?? '') === (w.hostname ?? '') &&
      have[i]?.service === w.service &&
      (have[i]?.path ?? '') === (w.path ?? ''),
  );
}
