import {
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  SendCommandCommand,
  type SendCommandCommandInput,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failure, type Harness, launch, startHarness } from './helpers.js';

let h: Harness;
let ssm: SSMClient;

beforeAll(async () => {
  h = await startHarness({ profile: 'realistic', faults: { buckets: false, latencyMs: 0 } });
  ssm = new SSMClient({
    endpoint: h.sim.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
});
afterAll(async () => {
  ssm.destroy();
  await h.close();
});

async function runningInstance(): Promise<string> {
  const i = await launch(h, { Role: 'tenant' });
  h.sim.advance(15_000);
  return i.InstanceId!;
}

const redeploy = (instanceId: string, extra: Partial<SendCommandCommandInput> = {}) =>
  new SendCommandCommand({
    DocumentName: 'AWS-RunShellScript',
    InstanceIds: [instanceId],
    Parameters: { commands: ['docker pull ghcr.io/x/y:2', 'docker restart y'] },
    Comment: 'molecule redeploy org-1 gen 3',
    TimeoutSeconds: 600,
    ...extra,
  });

describe('SSM Run Command', () => {
  it('runs a command Pending → InProgress → Success on the simulated clock', async () => {
    const id = await runningInstance();
    const sent = (await ssm.send(redeploy(id))).Command!;
    expect(sent).toMatchObject({
      DocumentName: 'AWS-RunShellScript',
      Status: 'Pending',
      InstanceIds: [id],
      Comment: 'molecule redeploy org-1 gen 3',
      TimeoutSeconds: 600,
      TargetCount: 1,
      Parameters: { commands: ['docker pull ghcr.io/x/y:2', 'docker restart y'] },
    });
    expect(sent.RequestedDateTime).toBeInstanceOf(Date);
    const ask = () =>
      ssm.send(new GetCommandInvocationCommand({ CommandId: sent.CommandId!, InstanceId: id }));
    // Right after sending, the invocation does not exist yet.
    expect((await failure(ask())).name).toBe('InvocationDoesNotExist');
    h.sim.advance(1_000);
    expect(await ask()).toMatchObject({ Status: 'Pending', ResponseCode: -1, ExecutionStartDateTime: '' });
    h.sim.advance(1_000);
    expect(await ask()).toMatchObject({ Status: 'InProgress', StatusDetails: 'In Progress' });
    h.sim.advance(15_000);
    const done = await ask();
    expect(done).toMatchObject({
      Status: 'Success',
      ResponseCode: 0,
      PluginName: 'aws:runShellScript',
      StandardErrorContent: '',
    });
    expect(Date.parse(done.ExecutionEndDateTime!)).toBeGreaterThan(Date.parse(done.ExecutionStartDateTime!));
    const listed = await ssm.send(new ListCommandsCommand({ CommandId: sent.CommandId }));
    expect(listed.Commands?.[0]).toMatchObject({ Status: 'Success', CompletedCount: 1, ErrorCount: 0 });
    // What ran is kept per instance, visible in the state dump.
    const dumped = h.sim.dump().instances.find((i) => i.id === id)!;
    expect(dumped.commands).toEqual([
      expect.objectContaining({
        commandId: sent.CommandId,
        comment: 'molecule redeploy org-1 gen 3',
        status: 'Success',
      }),
    ]);
  });

  it('ends commands on the instances named by ssmFailedInstances Failed, with stderr', async () => {
    const id = await runningInstance();
    h.sim.setFaults({ ssmFailedInstances: [id] });
    try {
      const sent = (await ssm.send(redeploy(id))).Command!;
      h.sim.advance(20_000);
      const inv = await ssm.send(
        new GetCommandInvocationCommand({ CommandId: sent.CommandId!, InstanceId: id }),
      );
      expect(inv).toMatchObject({ Status: 'Failed', ResponseCode: 1 });
      expect(inv.StandardErrorContent).toMatch(/exit status 1/);
      const detailed = await ssm.send(
        new ListCommandInvocationsCommand({ CommandId: sent.CommandId, Details: true }),
      );
      expect(detailed.CommandInvocations?.[0]?.CommandPlugins?.[0]).toMatchObject({
        Name: 'aws:runShellScript',
        Status: 'Failed',
        ResponseCode: 1,
      });
      expect(
        (await ssm.send(new ListCommandsCommand({ CommandId: sent.CommandId }))).Commands?.[0]?.Status,
      ).toBe('Failed');
    } finally {
      h.sim.setFaults({ ssmFailedInstances: [] });
    }
  });

  it('refuses other documents, instances not running, and bad parameters', async () => {
    const id = await runningInstance();
    expect((await failure(ssm.send(redeploy(id, { DocumentName: 'AWS-RunPowerShellScript' })))).name).toBe(
      'InvalidDocument',
    );
    const pending = (await launch(h)).InstanceId!;
    expect((await failure(ssm.send(redeploy(pending)))).name).toBe('InvalidInstanceId');
    expect((await failure(ssm.send(redeploy('i-0123456789abcdef0')))).name).toBe('InvalidInstanceId');
    expect((await failure(ssm.send(redeploy(id, { Comment: 'x'.repeat(101) })))).name).toBe(
      'ValidationException',
    );
    expect((await failure(ssm.send(redeploy(id, { TimeoutSeconds: 5 })))).name).toBe('ValidationException');
    expect((await failure(ssm.send(redeploy(id, { Parameters: { commands: [] } })))).name).toBe(
      'InvalidParameters',
    );
    // An instance of another account is not the caller's.
    const sts = new STSClient({
      endpoint: h.sim.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
      maxAttempts: 1,
    });
    const c = (
      await sts.send(
        new AssumeRoleCommand({ RoleArn: 'arn:aws:iam::222222222222:role/canary', RoleSessionName: 'ssm' }),
      )
    ).Credentials!;
    const canary = new SSMClient({
      endpoint: h.sim.url,
      region: 'us-east-1',
      credentials: {
        accessKeyId: c.AccessKeyId!,
        secretAccessKey: c.SecretAccessKey!,
        sessionToken: c.SessionToken!,
      },
      maxAttempts: 1,
    });
    expect((await failure(canary.send(redeploy(id)))).name).toBe('InvalidInstanceId');
    canary.destroy();
    sts.destroy();
  });

  it('lists commands by instance, comment and filters, paginated', async () => {
    const id = await runningInstance();
    const ids: string[] = [];
    for (let n = 0; n < 5; n++)
      ids.push((await ssm.send(redeploy(id, { Comment: `gen ${n}` }))).Command!.CommandId!);
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await ssm.send(
        new ListCommandsCommand({ InstanceId: id, MaxResults: 2, NextToken: token }),
      );
      seen.push(...(page.Commands ?? []).map((c) => c.Comment!));
      token = page.NextToken;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toEqual(['gen 4', 'gen 3', 'gen 2', 'gen 1', 'gen 0']);
    const executing = await ssm.send(
      new ListCommandsCommand({ InstanceId: id, Filters: [{ key: 'ExecutionStage', value: 'Executing' }] }),
    );
    expect(executing.Commands).toHaveLength(5);
    h.sim.advance(20_000);
    const done = await ssm.send(
      new ListCommandsCommand({ InstanceId: id, Filters: [{ key: 'Status', value: 'Success' }] }),
    );
    expect(done.Commands?.map((c) => c.CommandId).sort()).toEqual([...ids].sort());
    expect(
      (await failure(ssm.send(new ListCommandsCommand({ Filters: [{ key: 'Nope' as never, value: 'x' }] }))))
        .name,
    ).toBe('InvalidFilterKey');
    const invocations = await ssm.send(new ListCommandInvocationsCommand({ InstanceId: id }));
    expect(invocations.CommandInvocations?.map((i) => i.Comment)).toEqual([
      'gen 4',
      'gen 3',
      'gen 2',
      'gen 1',
      'gen 0',
    ]);
    expect(h.sim.dump().instances.find((i) => i.id === id)?.commands).toHaveLength(5);
    expect(h.sim.calls().some((c) => c.service === 'ssm' && c.operation === 'SendCommand')).toBe(true);
  });
});
