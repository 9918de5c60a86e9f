import {
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SendCommandCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { type CallContext, call } from '../instrument.js';
import type { CommandInvocation, RunCommand, SsmPort } from '../ports.js';
import { translateAwsError } from './errors.js';

/** The document every redeploy runs (deploy/iam-policy.json allows SendCommand on it alone). */
export const RUN_SHELL_SCRIPT = 'AWS-RunShellScript';
/** How much of a failed command's standard error a condition carries. */
const STDERR_TAIL = 400;

export class SsmAdapter implements SsmPort {
  constructor(
    private readonly client: SSMClient,
    private readonly ctx: CallContext,
    private readonly pageSize = 50,
  ) {}

  async sendShellCommand(input: {
    instanceId: string;
    script: string;
    comment: string;
    timeoutSeconds: number;
  }): Promise<string> {
    const res = await call(
      this.ctx,
      'ssm',
      'SendCommand',
      'ssm-send-command',
      () =>
        this.client.send(
          new SendCommandCommand({
            DocumentName: RUN_SHELL_SCRIPT,
            InstanceIds: [input.instanceId],
            Parameters: { commands: [input.script] },
            Comment: input.comment,
            TimeoutSeconds: input.timeoutSeconds,
          }),
        ),
      translateAwsError,
    );
    const id = res.Command?.CommandId;
    if (!id) throw translateAwsError({ name: 'InternalError' }, 'ssm', 'SendCommand');
    return id;
  }

  async findCommand(instanceId: string, comment: string): Promise<RunCommand | undefined> {
    let token: string | undefined;
    do {
      const res = await call(
        this.ctx,
        'ssm',
        'ListCommands',
        'ssm-read',
        () =>
          this.client.send(
            new ListCommandsCommand({
              InstanceId: instanceId,
              MaxResults: this.pageSize,
              NextToken: token,
            }),
          ),
        translateAwsError,
      );
      const c = (res.Commands ?? []).find((x) => x.CommandId && x.Comment === comment);
      if (c)
        return {
          id: c.CommandId!,
          comment,
          instanceIds: c.InstanceIds ?? [],
          requestedAt: c.RequestedDateTime,
          status: c.Status ?? '',
        };
      token = res.NextToken || undefined;
    } while (token);
    return undefined;
  }

  async getInvocation(commandId: string, instanceId: string): Promise<CommandInvocation> {
    const res = await call(
      this.ctx,
      'ssm',
      'GetCommandInvocation',
      'ssm-read',
      () =>
        this.client.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId })),
      translateAwsError,
    );
    return {
      status: res.Status ?? 'Pending',
      responseCode: res.ResponseCode ?? -1,
      stderrTail: (res.StandardErrorContent ?? '').slice(-STDERR_TAIL),
    };
  }
}
