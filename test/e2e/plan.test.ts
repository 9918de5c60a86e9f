import { TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPlan } from '../../src/cli/plan.js';
import { cloudReader } from '../helpers/cloud.js';
import { eventually, SIM_CREDENTIALS, type Stack, startStack } from '../helpers/stack.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

async function plan(json: boolean) {
  let out = '';
  const code = await runPlan(
    json ? ['--json'] : [],
    {
      env: { MOLECULE_ENV: stack.config.MOLECULE_ENV, ...envOf(stack) },
      stdout: (t) => (out += t),
      stderr: () => {},
    },
    { database: stack.tdb.database, cloud: { awsCredentials: SIM_CREDENTIALS } },
  );
  return { code, out };
}

const envOf = (s: Stack): Record<string, string> =>
  Object.fromEntries(Object.entries(s.config).filter(([, v]) => typeof v === 'string')) as Record<
    string,
    string
  >;

describe('molecule-operator plan', () => {
  it('exits 0 with no changes on a converged fleet, and 2 with the intended actions on a drifted one', async () => {
    const org = (await stack.api('POST', '/cp/orgs', { slug: 'planned' })).body;
    const ws = (await stack.api('POST', '/cp/orgs/planned/workspaces', { runtime: 'langgraph', tier: 4 }))
      .body;
    await eventually(async () => {
      const o = (await stack.api('GET', '/cp/orgs/planned')).body;
      return o.status.ready && o.workspaces.every((w: { status: { ready: boolean } }) => w.status.ready);
    }, 20_000);

    const converged = await plan(true);
    expect(converged.code).toBe(0);
    const body = JSON.parse(converged.out);
    expect(body).toMatchObject({ converged: true, changes: 0 });
    expect(body.actions).toHaveLength(8); // 5 org controllers + 3 workspace controllers
    expect(body.actions.every((a: { action: string }) => a.action === 'none')).toBe(true);
    expect((await plan(false)).out).toMatch(/^No changes/m);

    // Drift the cloud behind the operator's back, with the controllers stopped.
    await stack.stopOperator();
    const cloud = cloudReader(stack.sim);
    const [instance] = await cloud.liveInstances({ WorkspaceID: ws.id });
    await cloud.ec2.send(new TerminateInstancesCommand({ InstanceIds: [instance!.InstanceId!] }));
    await stack.api('POST', '/cp/admin/tenants/planned/stop');

    const drifted = await plan(true);
    expect(drifted.code).toBe(2);
    const actions = JSON.parse(drifted.out).actions as {
      ownerId: string;
      controller: string;
      action: string;
      diff: string[];
      detail: string;
    }[];
    const wsInstance = actions.find((a) => a.ownerId === ws.id && a.controller === 'instance')!;
    expect(wsInstance.action).toBe('create');
    expect(wsInstance.detail).toContain(`${ws.id}-2`); // the next launch generation
    const tenant = actions.find((a) => a.ownerId === org.id && a.controller === 'instance')!;
    expect(tenant).toMatchObject({ action: 'update', diff: ['power: running → stopped'] });
    // The workspace's redeploy waits for the instance the plan would launch, and says so.
    expect(actions.filter((a) => a.action === 'wait')).toEqual([
      expect.objectContaining({ ownerId: ws.id, controller: 'redeploy', detail: 'WaitingForInstance' }),
    ]);
    expect(actions.filter((a) => a.action === 'none')).toHaveLength(5);
    expect((await plan(false)).out).toContain('3 change(s) pending; nothing was executed.');

    // Plan executed nothing: the instance is still gone and the tenant still running.
    expect(await cloud.liveInstances({ WorkspaceID: ws.id })).toHaveLength(0);
    const [tenantInstance] = await cloud.liveInstances({ OrgID: org.id, Role: 'tenant' });
    expect(tenantInstance?.State?.Name).toBe('running');
  });
});
