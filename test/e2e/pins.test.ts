import { TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CloudReader, cloudReader } from '../helpers/cloud.js';
import { eventually, type Stack, startStack } from '../helpers/stack.js';

/*
 * A pin change acts at once: the trigger's notification drops every replica's cached pins and
 * queues the owners the pin applies to. The resync runs once a year here and pins are cached for
 * an hour, so neither can be what makes the change visible.
 */

let stack: Stack;
let cloud: CloudReader;

const AMI = 'ami-0fedcba9876543210';
const IMAGE = 'ghcr.io/molecule-ai/hermes:2026.12.4';

beforeAll(async () => {
  stack = await startStack({ pinsTtlMs: 3_600_000, env: { RESYNC_CRON: '0 0 1 1 *' } });
  cloud = cloudReader(stack.sim);
});
afterAll(async () => {
  await stack?.close();
});

const tag = (tags: { Key?: string; Value?: string }[] | undefined, key: string) =>
  tags?.find((t) => t.Key === key)?.Value;

async function terminate(...ids: string[]) {
  await cloud.ec2.send(new TerminateInstancesCommand({ InstanceIds: ids }));
  await eventually(async () => {
    const live = await cloud.liveInstances();
    return !live.some((i) => ids.includes(i.InstanceId!) && i.State?.Name !== 'terminated');
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - started };
}

async function instanceOf(workspaceId: string) {
  const all = await cloud.liveInstances({ WorkspaceID: workspaceId });
  return all.filter((i) => i.State?.Name === 'pending' || i.State?.Name === 'running');
}

describe('a pin change reaches the desired state without a resync', () => {
  it('relaunches with the new AMI and image only the owners of the pinned runtime', async () => {
    expect((await stack.api('POST', '/cp/orgs', { slug: 'pinned' })).status).toBe(201);
    const hermes = (await stack.api('POST', '/cp/orgs/pinned/workspaces', { runtime: 'hermes', tier: 3 }))
      .body;
    const lang = (await stack.api('POST', '/cp/orgs/pinned/workspaces', { runtime: 'langgraph', tier: 3 }))
      .body;
    await eventually(async () => {
      const org = (await stack.api('GET', '/cp/orgs/pinned')).body;
      return org.status.ready && org.workspaces.every((w: { status: { ready: boolean } }) => w.status.ready);
    }, 30_000);
    const [first] = await instanceOf(hermes.id);
    expect(first!.ImageId).toBe(stack.config.EC2_AMI);
    const resyncedAt = stack.operator!.manager.readiness().lastResyncAt;

    // Both workspaces lose their instance out of band once the controllers have settled:
    // nothing looks until something wakes them.
    await stack.operator!.manager.idle();
    const [other] = await instanceOf(lang.id);
    await terminate(first!.InstanceId!, other!.InstanceId!);

    // An AMI pin for hermes: its workspace is queued and relaunches from the pinned AMI.
    const ami = await timed(async () => {
      expect((await stack.api('PUT', '/cp/admin/pins/amis/hermes/us-east-1', { amiId: AMI })).status).toBe(
        201,
      );
      return eventually(async () => {
        const [i] = await instanceOf(hermes.id);
        return i?.ImageId === AMI ? i : undefined;
      }, 15_000);
    });
    expect(tag(ami.value.Tags, 'Runtime')).toBe('hermes');
    expect(cloud.userData(ami.value.InstanceId!)).not.toContain(IMAGE);

    // An image pin: the pins cached a moment ago (for an hour) are dropped, so the next launch
    // runs the pinned image.
    await stack.operator!.manager.idle();
    await terminate(ami.value.InstanceId!);
    const image = await timed(async () => {
      expect((await stack.api('PUT', '/cp/admin/pins/runtime-images/hermes', { image: IMAGE })).status).toBe(
        201,
      );
      return eventually(async () => {
        const [i] = await instanceOf(hermes.id);
        return i && cloud.userData(i.InstanceId!).includes(IMAGE) ? i : undefined;
      }, 15_000);
    });
    expect(image.value.ImageId).toBe(AMI);

    // No resync ran: the notifications did it. The langgraph workspace was never queued by a
    // hermes pin: it waits for the resync without an instance.
    expect(stack.operator!.manager.readiness().lastResyncAt).toBe(resyncedAt);
    expect(await instanceOf(lang.id)).toEqual([]);
    console.info(
      `pin change → relaunch: AMI pin ${Math.round(ami.ms)} ms, image pin ${Math.round(image.ms)} ms (resync: yearly; pin cache: 1 h)`,
    );

    // An AMI pin of another region leaves hermes alone. The langgraph image pin after it is the
    // marker: once its workspace has relaunched and the queues are idle, a hermes relaunch queued
    // by the earlier notification would have happened.
    await stack.operator!.manager.idle();
    await terminate(image.value.InstanceId!);
    expect(
      (await stack.api('PUT', '/cp/admin/pins/amis/hermes/eu-west-1', { amiId: 'ami-0a1b2c3d' })).status,
    ).toBe(201);
    const LANG_IMAGE = 'ghcr.io/molecule-ai/langgraph:0.9.1';
    expect(
      (await stack.api('PUT', '/cp/admin/pins/runtime-images/langgraph', { image: LANG_IMAGE })).status,
    ).toBe(201);
    const langRelaunched = await eventually(async () => {
      const [i] = await instanceOf(lang.id);
      return i && cloud.userData(i.InstanceId!).includes(LANG_IMAGE) ? i : undefined;
    }, 15_000);
    expect(langRelaunched.ImageId).toBe(stack.config.EC2_AMI);
    await stack.operator!.manager.idle();
    expect(await instanceOf(hermes.id)).toEqual([]);
    expect(stack.operator!.manager.readiness().lastResyncAt).toBe(resyncedAt);

    // The audit trail has every change, newest first.
    const trail = (await stack.api('GET', '/cp/admin/pins/audit')).body.items;
    expect(
      trail.map((r: { pin: string; runtime: string; newValue: string }) => [r.pin, r.runtime, r.newValue]),
    ).toEqual([
      ['runtime_image', 'langgraph', LANG_IMAGE],
      ['ami', 'hermes', 'ami-0a1b2c3d'],
      ['runtime_image', 'hermes', IMAGE],
      ['ami', 'hermes', AMI],
    ]);
  });
});
