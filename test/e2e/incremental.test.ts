import { CreateTagsCommand, RevokeSecurityGroupIngressCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CloudReader, cloudReader } from '../helpers/cloud.js';
import { metricValue } from '../helpers/metrics.js';
import { eventually, type Stack, startStack } from '../helpers/stack.js';

/*
 * The incremental resync (runtime/batches.ts): a batch of orgs whose rows, EC2 listing, secrets,
 * tunnels, DNS records and pins are all as they were when its reconciles last found nothing to
 * do is not reconciled again. Every change of any of those, made behind the operator's back
 * (no NOTIFY, no event), must still be caught by the next resync; and what no listing shows (a
 * tunnel's configuration) is still checked while its batch is skipped.
 */

let stack: Stack;
let cloud: CloudReader;
const orgs: { id: string; slug: string }[] = [];

beforeAll(async () => {
  stack = await startStack();
  cloud = cloudReader(stack.sim);
  for (const slug of ['steady-a', 'steady-b']) {
    orgs.push((await stack.api('POST', '/cp/orgs', { slug })).body);
    await stack.api('POST', `/cp/orgs/${slug}/workspaces`, { runtime: 'langgraph', tier: 2 });
  }
  await converged();
});
afterAll(async () => {
  await stack?.close();
});

async function converged() {
  for (const { slug } of orgs)
    await eventually(async () => {
      const o = (await stack.api('GET', `/cp/orgs/${slug}`)).body;
      return o.status.ready && o.workspaces.every((w: { status: { ready: boolean } }) => w.status.ready);
    }, 20_000);
}

/** A periodic resync, as the cron would run it: how many batches it skipped and reconciled. */
async function resync() {
  const skipped = () => batches('skipped');
  const [s0, r0] = [await skipped(), await batches('reconciled')];
  await stack.operator!.manager.resync('test');
  await stack.operator!.manager.idle();
  return { skipped: (await skipped()) - s0, reconciled: (await batches('reconciled')) - r0 };
}

const batches = (result: string) =>
  metricValue(stack.metrics.registry, 'molecule_resync_batches_total', { target: 'primary', result });
const reconciles = (controller: string) =>
  metricValue(stack.metrics.registry, 'molecule_reconcile_total', { controller, result: 'success' });

/** Resyncs until one skips the batch (the first after a change reconciles it and finds it steady). */
async function steady() {
  await converged();
  await eventually(async () => (await resync()).skipped === 1, 10_000);
}

describe('a steady fleet', () => {
  it('is listed but not reconciled again, but for the checks no listing can make', async () => {
    await steady();
    const before = { instance: await reconciles('instance'), tunnel: await reconciles('tunnel') };
    stack.sim.resetCalls();
    expect(await resync()).toEqual({ skipped: 1, reconciled: 0 });
    expect(await reconciles('instance')).toBe(before.instance);
    // A small fleet's tunnel configurations are all checked on every resync.
    expect((await reconciles('tunnel')) - before.tunnel).toBe(orgs.length);
    const ops = new Set(stack.sim.callLog().map((c) => `${c.service}:${c.operation}`));
    expect(ops).toContain('ec2:DescribeInstances');
    expect(ops).toContain('ec2:DescribeSecurityGroups');
    expect(ops).toContain('secretsmanager:ListSecrets');
    expect(stack.sim.callLog().filter((c) => c.mutating)).toEqual([]);
  });
});

describe('a change made behind the operator’s back is caught by the next resync after a skipped one', () => {
  it('in EC2: a revoked rule comes back', async () => {
    await steady();
    const [sg] = await cloud.securityGroups({ OrgID: orgs[1]!.id, Role: 'tenant' });
    const [rule] = sg!.IpPermissions!;
    await cloud.ec2.send(
      new RevokeSecurityGroupIngressCommand({ GroupId: sg!.GroupId, IpPermissions: [rule!] }),
    );
    expect((await resync()).reconciled).toBe(1);
    const [after] = await cloud.securityGroups({ OrgID: orgs[1]!.id, Role: 'tenant' });
    expect(after!.IpPermissions).toHaveLength(sg!.IpPermissions!.length);
  });

  it('in EC2: a tag another tool rewrote is put back', async () => {
    await steady();
    const [i] = await cloud.liveInstances({ OrgID: orgs[0]!.id, Role: 'tenant' });
    const image = i!.Tags!.find((t) => t.Key === 'Image')!.Value!;
    await cloud.ec2.send(
      new CreateTagsCommand({ Resources: [i!.InstanceId!], Tags: [{ Key: 'Image', Value: 'x' }] }),
    );
    expect((await resync()).reconciled).toBe(1);
    // The image on the instance is no longer known to be the pinned one: it is redeployed and tagged.
    await eventually(async () => {
      const [now] = await cloud.liveInstances({ OrgID: orgs[0]!.id, Role: 'tenant' });
      return now!.Tags!.find((t) => t.Key === 'Image')?.Value === image;
    }, 20_000);
  });

  it('in Cloudflare: a redirected DNS record is pointed back', async () => {
    await steady();
    const name = `${orgs[0]!.slug}.moleculesai.app`;
    const rec = (await cloud.dnsRecords()).find((r) => r.name === name)!;
    await cloud.cf.dns.records.edit(rec.id!, {
      zone_id: stack.sim.seed.cloudflareZoneId,
      content: 'evil.example.com',
    } as never);
    expect((await resync()).reconciled).toBe(1);
    await eventually(
      async () => (await cloud.dnsRecords()).find((r) => r.name === name)?.content === rec.content,
    );
  });

  it('in the database: a status row written by hand is rewritten', async () => {
    await steady();
    await stack.tdb.database.query(
      `UPDATE reconcile_status SET ready = false, reason = 'EditedByHand' WHERE owner_id = $1 AND controller = 'secrets'`,
      [orgs[1]!.id],
    );
    expect((await resync()).reconciled).toBe(1);
    const [row] = await stack.tdb.database.query<{ ready: boolean; reason: string }>(
      `SELECT ready, reason FROM reconcile_status WHERE owner_id = $1 AND controller = 'secrets'`,
      [orgs[1]!.id],
    );
    expect(row).toMatchObject({ ready: true });
  });

  it('in a tunnel’s configuration, which no listing shows, while the batch is skipped', async () => {
    await steady();
    const [t] = (await cloud.liveTunnels()).filter((x) => x.name === `molecule-test-${orgs[0]!.id}`);
    await cloud.cf.zeroTrust.tunnels.cloudflared.configurations.update(t!.id!, {
      account_id: stack.sim.seed.cloudflareAccountId,
      config: { ingress: [{ service: 'http_status:503' } as never] },
    });
    expect((await resync()).skipped).toBe(1);
    await eventually(async () => (await cloud.tunnelConfig(t!.id!)).config?.ingress?.length === 2);
  });
});
