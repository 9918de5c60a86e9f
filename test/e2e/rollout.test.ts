import { type Command, ListCommandsCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as runRollout } from '../../src/cli/rollout.js';
import { RolloutRepository } from '../../src/db/rollouts.js';
import { StatusRepository } from '../../src/db/status.js';
import { bootstrapSecretName } from '../../src/provisioning/names.js';
import { redeployComment } from '../../src/provisioning/rollout.js';
import { renderRedeployCommand } from '../../src/provisioning/userdata.js';
import { type Clock, systemClock } from '../../src/runtime/clock.js';
import { type CloudReader, cloudReader } from '../helpers/cloud.js';
import { eventually, SIM_CREDENTIALS, type Stack, startStack } from '../helpers/stack.js';

/**
 * Image rollouts (DESIGN §11) against the simulator: SSM redeploys in canary-first order, the
 * soak on an injected clock, a pause and its resume, a stopped instance, a crash between the
 * send and its record, explicit single-tenant and fleet redeploys.
 */

/** System time plus an offset the test moves: timers keep running, the soak and backoffs pass at once. */
class OffsetClock implements Clock {
  offset = 0;
  now = () => Date.now() + this.offset;
  setTimeout = systemClock.setTimeout;
  clearTimeout = systemClock.clearTimeout;
  sleep = systemClock.sleep;
}

const IMAGE_1 = 'ghcr.io/molecule-ai/platform-tenant:1';
const IMAGE_2 = 'ghcr.io/molecule-ai/platform-tenant:2';
const IMAGE_3 = 'ghcr.io/molecule-ai/platform-tenant:3';
const RUNTIME_IMAGE = 'ghcr.io/molecule-ai/hermes:7';
const MIN = 60_000;

let stack: Stack;
let cloud: CloudReader;
let ssm: SSMClient;
const clock = new OffsetClock();

interface Tenant {
  slug: string;
  id: string;
  instanceId: string;
}

beforeAll(async () => {
  stack = await startStack({
    clock,
    env: {
      TENANT_IMAGE: IMAGE_1,
      ROLLOUT_CANARY_SOAK: '10m',
      ROLLOUT_MAX_IN_FLIGHT: '2',
      ROLLOUT_MAX_FAILURES: '2',
    },
  });
  cloud = cloudReader(stack.sim);
  ssm = new SSMClient({
    endpoint: stack.sim.awsEndpoint,
    region: stack.sim.seed.region,
    credentials: SIM_CREDENTIALS,
    maxAttempts: 1,
  });
});
afterAll(async () => {
  ssm?.destroy();
  await stack?.close();
});

async function tenant(slug: string, isCanary = false): Promise<Tenant> {
  const org = (await stack.api('POST', '/cp/orgs', { slug, isCanary })).body as { id: string };
  return eventually(async () => {
    const o = (await stack.api('GET', `/cp/orgs/${slug}`)).body as { status: { ready: boolean } };
    if (!o.status.ready) return undefined;
    const [vm] = await cloud.liveInstances({ OrgID: org.id, Role: 'tenant' });
    if (vm?.State?.Name !== 'running') return undefined;
    return { slug, id: org.id, instanceId: vm.InstanceId! };
  }, 30_000);
}

async function commandsOn(instanceId: string): Promise<Command[]> {
  const out: Command[] = [];
  let token: string | undefined;
  do {
    const res = await ssm.send(new ListCommandsCommand({ InstanceId: instanceId, NextToken: token }));
    out.push(...(res.Commands ?? []));
    token = res.NextToken;
  } while (token);
  return out;
}

async function imageTag(instanceId: string): Promise<string | undefined> {
  const [vm] = (await cloud.liveInstances()).filter((i) => i.InstanceId === instanceId);
  return vm?.Tags?.find((t) => t.Key === 'Image')?.Value;
}

/** Wakes owners as a desired-state change would (their requeue after a backoff is on the real clock). */
function wake(tenants: Tenant[]) {
  for (const t of tenants) stack.operator!.manager.enqueueOwner({ kind: 'org', id: t.id });
}

/**
 * Polls `check`, waking `tenants` before each look. A redeploy polls its command with a backoff
 * that grows with the command's age on the injected clock, which the test jumps by minutes, while
 * the requeue itself waits on the real clock: without the wake, a command sent just before a jump
 * is looked at again only after the 30 s cap.
 */
function eventuallyWaking(tenants: Tenant[], check: () => Promise<boolean>, timeoutMs = 20_000) {
  return eventually(async () => {
    wake(tenants);
    return check();
  }, timeoutMs);
}

async function gauge(name: string, labels = ''): Promise<number> {
  const text = await stack.metrics.registry.getSingleMetricAsString(name);
  const line = text.split('\n').find((l) => l.startsWith(labels ? `${name}{${labels}}` : `${name} `));
  return Number(line?.split(' ').at(-1));
}

async function redeployCondition(ownerId: string) {
  return new StatusRepository(stack.tdb.database.db).get('redeploy', ownerId);
}

/**
 * Sets the `tenant` image pin through the API: its notification alone must reach every owner
 * (nothing here resyncs or wakes them).
 */
async function pinTenantImage(image: string) {
  const res = await stack.api('PUT', '/cp/admin/pins/runtime-images/tenant', { image });
  expect(res.status).toBeLessThan(300);
}

describe('image rollouts', () => {
  let canary: Tenant;
  let others: Tenant[];

  it('tags the image at launch and records it as deployed', async () => {
    canary = await tenant('ro-canary', true);
    others = [await tenant('ro-one'), await tenant('ro-two'), await tenant('ro-three')];
    for (const t of [canary, ...others]) {
      expect(await imageTag(t.instanceId)).toBe(IMAGE_1);
      const row = await eventually(async () => {
        const r = await redeployCondition(t.id);
        return r?.reason === 'Deployed' ? r : undefined;
      });
      expect(row.ready).toBe(true);
      expect(await commandsOn(t.instanceId)).toEqual([]);
    }
  });

  it('redeploys canaries first, the others only after the soak', async () => {
    await pinTenantImage(IMAGE_2);
    // The canary is redeployed; nobody else while it runs and soaks.
    await eventually(async () => (await imageTag(canary.instanceId)) === IMAGE_2, 20_000);
    const [sent] = await commandsOn(canary.instanceId);
    expect(sent).toMatchObject({ DocumentName: 'AWS-RunShellScript', Status: 'Success' });
    expect(sent!.Comment).toBe(redeployComment(canary.id, 0, 1, IMAGE_2));
    // The command is the boot script's container section with the new image, and no secret.
    const script = sent!.Parameters!.commands!.join('\n');
    expect(script).toBe(
      renderRedeployCommand({
        role: 'tenant',
        env: 'test',
        region: stack.sim.seed.region,
        orgId: canary.id,
        image: IMAGE_2,
        secretName: bootstrapSecretName('test', canary.id),
        cpBaseUrl: stack.config.CP_BASE_URL,
      }),
    );
    expect(script).not.toContain(stack.config.GHCR_PULL_TOKEN!);
    expect(script).not.toContain(stack.config.PROVISION_SHARED_SECRET!);
    const soaking = await eventually(async () => {
      const r = (await stack.api('GET', '/cp/admin/rollouts')).body.rollouts.find(
        (x: { image: string }) => x.image === IMAGE_2,
      );
      return r?.stage === 'soaking' ? r : undefined;
    });
    expect(soaking.counts).toMatchObject({ done: 1, pending: 3 });
    const held = await eventually(async () => {
      const r = await redeployCondition(others[0]!.id);
      return r?.reason === 'CanarySoaking' ? r : undefined;
    });
    expect(held.ready).toBe(false);
    for (const t of others) expect(await commandsOn(t.instanceId)).toEqual([]);
    // `plan` follows the same order: it would send nothing to the held owners (and takes no slot).
    const planned = (await stack.operator!.plan()).filter((p) => p.controller === 'redeploy');
    expect(planned.find((p) => p.owner.id === canary.id)).toMatchObject({ action: 'none' });
    for (const t of others)
      expect(planned.find((p) => p.owner.id === t.id)).toMatchObject({
        action: 'wait',
        detail: 'CanarySoaking',
      });

    // The soak passes (on the injected clock, so the gate's timer for its end, set on the real
    // one, is stood in for by the periodic refresh): the rest follow, two at a time, each woken
    // by the gate when a slot frees (nothing else wakes them here).
    clock.offset += 10 * MIN;
    await stack.operator!.rollouts.refresh();
    for (const t of others) await eventually(async () => (await imageTag(t.instanceId)) === IMAGE_2);
    for (const t of [canary, ...others]) {
      const sentTo = await commandsOn(t.instanceId);
      expect(sentTo.map((c) => c.Comment)).toEqual([redeployComment(t.id, 0, 1, IMAGE_2)]);
    }
    const starts = (await Promise.all(others.map((t) => commandsOn(t.instanceId)))).map((c) =>
      c[0]!.RequestedDateTime!.getTime(),
    );
    // At most ROLLOUT_MAX_IN_FLIGHT (2) at once: the third started after one of the first two.
    expect(Math.max(...starts)).toBeGreaterThan(Math.min(...starts));
    const audit = await stack.tdb.database.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM tenant_resources WHERE controller = 'redeploy' AND kind = 'ssm_command' AND action = 'created'`,
    );
    expect(audit[0]!.n).toBe(4);
  });

  it('pauses a rollout after ROLLOUT_MAX_FAILURES failures, until resumed', {
    timeout: 120_000,
  }, async () => {
    stack.sim.setFaults({ ssmFailedInstances: others.map((t) => t.instanceId) });
    await pinTenantImage(IMAGE_3);
    clock.offset += 10 * MIN; // the canary's soak
    await eventuallyWaking([canary], async () => (await imageTag(canary.instanceId)) === IMAGE_3);
    // Recorded as deployed (the soak counts from the record) before the clock jumps past the soak.
    await eventually(async () => (await redeployCondition(canary.id))?.message.includes(`runs ${IMAGE_3}`));
    clock.offset += 10 * MIN;
    await stack.operator!.rollouts.refresh();
    const rolloutOf = async () =>
      (await stack.api('GET', '/cp/admin/rollouts')).body.rollouts.find(
        (x: { image: string }) => x.image === IMAGE_3,
      );
    const paused = await eventually(async () => {
      const r = await rolloutOf();
      return r?.paused && r.counts.in_flight === 0 ? r : undefined;
    }, 20_000);
    expect(paused.stage).toBe('paused');
    expect(paused.failures).toBeGreaterThanOrEqual(2);
    expect(paused.failed[0].message).toMatch(/Failed \(exit 1\).*simulated failure/);
    await eventually(async () => (await gauge('molecule_rollout_paused')) === 1);
    // The CLI shows the same, from the database.
    let out = '';
    const code = await runRollout(['status'], {
      env: { DATABASE_URL: stack.tdb.url, TENANT_IMAGE: IMAGE_1, ROLLOUT_MAX_FAILURES: '2' },
      stdout: (t) => (out += t),
      stderr: () => {},
    });
    expect(code).toBe(0);
    expect(out).toMatch(new RegExp(`${IMAGE_3.replace(/[.]/g, '\\.')}\\s+tenant\\s+paused`));
    expect(out).toContain('Failed redeploys:');
    expect(out).toMatch(/RedeployFailed: command Failed \(exit 1\)/);
    const sent = async () =>
      (await Promise.all(others.map((t) => commandsOn(t.instanceId)))).map(
        (c) => c.filter((x) => x.Comment?.endsWith(IMAGE_3)).length,
      );
    const atPause = await sent();
    expect(atPause.every((n) => n <= 1)).toBe(true);
    // Nothing more starts: not the rest, not a retry, however long it waits.
    clock.offset += 60 * MIN;
    wake(others);
    for (const t of others)
      await eventually(async () => (await redeployCondition(t.id))?.reason === 'RolloutPaused');
    expect(await sent()).toEqual(atPause);
    for (const t of others) expect(await imageTag(t.instanceId)).toBe(IMAGE_2);

    // Resume: the failed ones are retried (the fault is gone now) and the rest go on.
    stack.sim.setFaults({ ssmFailedInstances: [] });
    const bad = await stack.api('POST', '/cp/admin/rollouts/resume', { image: 'not an image' });
    expect(bad.status).toBe(400);
    const unknown = await stack.api('POST', '/cp/admin/rollouts/resume', { image: 'ghcr.io/x/y:404' });
    expect(unknown.status).toBe(404);
    // The resume is announced on the desired-state channel: the operator wakes the held owners.
    const heard: { kind: string; image?: string }[] = [];
    const sub = await stack.tdb.database.listen('molecule_desired', {
      onMessage: (p) => heard.push(JSON.parse(p)),
    });
    const resumed = await stack.api('POST', '/cp/admin/rollouts/resume', { image: IMAGE_3 });
    expect(resumed.status).toBe(200);
    await eventually(async () => heard.some((m) => m.kind === 'rollout' && m.image === IMAGE_3), 5_000);
    await sub.close();
    expect(resumed.body.rollouts.find((x: { image: string }) => x.image === IMAGE_3).paused).toBe(false);
    clock.offset += 30 * MIN; // the failed ones' retry backoff
    wake(others);
    for (const t of others)
      await eventuallyWaking(others, async () => (await imageTag(t.instanceId)) === IMAGE_3, 30_000);
    const after = await sent();
    for (const [i, n] of after.entries()) expect(n).toBe(atPause[i]! + 1);
    await eventually(async () => (await gauge('molecule_rollout_paused')) === 0);
  });

  it('sends nothing to a stopped instance; once started it is redeployed and its tag follows', async () => {
    const t = others[2]!;
    expect((await stack.api('POST', `/cp/admin/tenants/${t.slug}/stop`)).status).toBe(202);
    await eventually(async () => (await cloud.liveInstances({ OrgID: t.id }))[0]?.State?.Name === 'stopped');
    const before = (await commandsOn(t.instanceId)).length;
    expect((await stack.api('POST', `/cp/admin/tenants/${t.slug}/redeploy`)).body).toEqual({ requested: 1 });
    const row = await eventually(async () => {
      const r = await redeployCondition(t.id);
      return r?.reason === 'InstanceStopped' ? r : undefined;
    });
    expect(row.message).toMatch(/stopped/);
    expect(await commandsOn(t.instanceId)).toHaveLength(before);
    expect((await stack.api('POST', `/cp/admin/tenants/${t.slug}/start`)).status).toBe(202);
    await eventuallyWaking([t], async () => (await redeployCondition(t.id))?.reason === 'Deployed');
    const after = await commandsOn(t.instanceId);
    expect(after).toHaveLength(before + 1);
    expect(after[0]!.Comment).toBe(redeployComment(t.id, 1, 1, IMAGE_3));
    expect(await imageTag(t.instanceId)).toBe(IMAGE_3);
  });

  it('adopts a command sent but never recorded: exactly one per generation', async () => {
    const t = others[1]!;
    await stack.stopOperator();
    // The process died right after SendCommand: the marker is written, the command exists,
    // its id was never recorded.
    expect(await new RolloutRepository(stack.tdb.database.db).requestOrgRedeploy(t.id)).toBe(true);
    const comment = redeployComment(t.id, 1, 1, IMAGE_3);
    await ssm.send(
      new SendCommandCommand({
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: [t.instanceId],
        Parameters: { commands: ['true'] },
        Comment: comment,
      }),
    );
    const status = new StatusRepository(stack.tdb.database.db);
    const row = (await status.get('redeploy', t.id))!;
    await status.upsert(
      { controller: 'redeploy', ownerId: t.id, ownerKind: 'org', orgId: t.id },
      {
        pending: { token: comment, startedAt: new Date(clock.now()).toISOString() },
        state: {
          ...row.state,
          token: comment,
          attempt: { image: IMAGE_3, generation: 1, try: 1 },
          nextComment: comment,
        },
      },
    );
    await stack.startOperator();
    await eventually(async () => {
      const r = await redeployCondition(t.id);
      return r?.reason === 'Deployed' && r.message.includes('redeploy generation 1');
    }, 20_000);
    const sent = (await commandsOn(t.instanceId)).filter((c) => c.Comment === comment);
    expect(sent).toHaveLength(1);
    const adopted = await stack.tdb.database.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM tenant_resources WHERE controller = 'redeploy' AND owner_id = $1 AND action = 'adopted'`,
      [t.id],
    );
    expect(adopted[0]!.n).toBe(1);
  });

  it('redeploys one tenant on request: the same tag pulled again, once', async () => {
    const t = others[0]!;
    const before = await commandsOn(t.instanceId);
    const untouched = (await commandsOn(others[1]!.instanceId)).length;
    const res = await stack.api('POST', `/cp/admin/tenants/${t.slug}/redeploy`);
    expect(res).toEqual({ status: 202, body: { requested: 1 } });
    await eventually(async () => {
      const r = await redeployCondition(t.id);
      return r?.reason === 'Deployed' && r.message.includes('redeploy generation 1');
    }, 20_000);
    const after = await commandsOn(t.instanceId);
    expect(after).toHaveLength(before.length + 1);
    expect(after[0]!.Comment).toBe(redeployComment(t.id, 1, 1, IMAGE_3));
    expect(await imageTag(t.instanceId)).toBe(IMAGE_3);
    // Nobody else was touched.
    expect(await commandsOn(others[1]!.instanceId)).toHaveLength(untouched);
    expect((await stack.api('POST', '/cp/admin/tenants/no-such-org/redeploy')).status).toBe(404);
  });

  it('redeploys the workspace fleet: each workspace with an image pin, once', {
    timeout: 120_000,
  }, async () => {
    await stack.tdb.database.query(`INSERT INTO runtime_image_pins (runtime, image) VALUES ('hermes', $1)`, [
      RUNTIME_IMAGE,
    ]);
    const ws = await Promise.all(
      [canary, others[0]!].map(async (t) => {
        const w = (await stack.api('POST', `/cp/orgs/${t.slug}/workspaces`, { runtime: 'hermes', tier: 3 }))
          .body as { id: string };
        return eventually(async () => {
          const [vm] = await cloud.liveInstances({ WorkspaceID: w.id });
          const r = await redeployCondition(w.id);
          return vm?.State?.Name === 'running' && r?.reason === 'Deployed'
            ? { id: w.id, instanceId: vm.InstanceId! }
            : undefined;
        }, 30_000);
      }),
    );
    for (const w of ws) expect(await imageTag(w.instanceId)).toBe(RUNTIME_IMAGE);
    const res = await stack.api('POST', '/cp/admin/tenants/workspaces/redeploy-fleet', {});
    expect(res).toEqual({ status: 202, body: { requested: 2 } });
    // The canary's workspace first, done before the clock moves (its soak starts when it
    // succeeds); the other after the soak.
    await eventually(async () => {
      stack.operator!.manager.enqueueOwner({ kind: 'workspace', id: ws[0]!.id });
      const r = await redeployCondition(ws[0]!.id);
      return r?.reason === 'Deployed' && r.message.includes('redeploy generation 1');
    }, 20_000);
    expect((await redeployCondition(ws[1]!.id))?.reason).toMatch(/CanarySoaking|WaitingForCanaries/);
    expect(await commandsOn(ws[1]!.instanceId)).toEqual([]);
    clock.offset += 10 * MIN;
    for (const w of ws) stack.operator!.manager.enqueueOwner({ kind: 'workspace', id: w.id });
    for (const w of ws) {
      await eventually(async () => {
        for (const x of ws) stack.operator!.manager.enqueueOwner({ kind: 'workspace', id: x.id });
        const r = await redeployCondition(w.id);
        return r?.reason === 'Deployed' && r.message.includes('redeploy generation 1');
      }, 20_000);
      expect((await commandsOn(w.instanceId)).map((c) => c.Comment)).toEqual([
        redeployComment(w.id, 1, 1, RUNTIME_IMAGE),
      ]);
    }
    const bad = await stack.api('POST', '/cp/admin/tenants/workspaces/redeploy-fleet', {
      runtime: 'Bad Name',
    });
    expect(bad.status).toBe(400);
  });
});

describe('outdated instances', () => {
  it('reports a changed AMI on a running instance and replaces nothing', { timeout: 120_000 }, async () => {
    const t = await tenant('ro-outdated');
    const before = await cloud.liveInstances({ OrgID: t.id });
    await stack.tdb.database.query(
      `INSERT INTO ami_pins (runtime, region, ami_id) VALUES ('tenant', $1, $2)`,
      [stack.sim.seed.region, 'ami-0123456789abcdef0'],
    );
    stack.operator!.manager.enqueueOwner({ kind: 'org', id: t.id });
    const row = await eventually(async () => {
      const r = await redeployCondition(t.id);
      return r?.reason === 'AMIChanged' ? r : undefined;
    });
    expect(row.message).toMatch(/^Outdated: AMI ami-\w+ → ami-0123456789abcdef0/);
    // The gauges are refreshed every minute while no redeploy asks for an admission: ask now.
    await stack.operator!.rollouts.refresh();
    expect(await gauge('molecule_outdated_instances', 'reason="AMIChanged"')).toBeGreaterThanOrEqual(1);
    const after = await cloud.liveInstances({ OrgID: t.id });
    expect(after.map((i) => [i.InstanceId, i.State?.Name])).toEqual(
      before.map((i) => [i.InstanceId, i.State?.Name]),
    );
    expect(await commandsOn(t.instanceId)).toEqual([]);
    await stack.tdb.database.query(`DELETE FROM ami_pins`);
  });
});
