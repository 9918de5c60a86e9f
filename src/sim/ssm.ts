import {
  checkLength,
  checkRange,
  dropUndefined,
  epochSeconds,
  type JsonBody,
  jsonError,
  jsonResponse,
  optArray,
  optBool,
  optNumber,
  optString,
  parseJsonBody,
  reqString,
} from './awsjson.js';
import { type BucketSpec, SSM_BUCKETS } from './limits.js';
import { AwsError, type Prepared, type SimContext, type SimRequest } from './protocol.js';
import { fnv } from './query.js';
import { type SsmCommand, settle } from './state.js';
import { iso } from './xml.js';

/**
 * Systems Manager Run Command over awsJson1_1 (`x-amz-target: AmazonSSM.<Op>`): SendCommand
 * (AWS-RunShellScript only), ListCommands, ListCommandInvocations, GetCommandInvocation.
 * An invocation's status follows the simulated clock: invisible to GetCommandInvocation for
 * a moment, then Pending, InProgress, and Success (or Failed for the instances named by the
 * `ssmFailedInstances` fault when the command was sent).
 */

type Handler = (ctx: SimContext, b: JsonBody) => unknown;

const HANDLERS: Record<string, Handler> = {
  SendCommand: sendCommand,
  ListCommands: listCommands,
  ListCommandInvocations: listCommandInvocations,
  GetCommandInvocation: getCommandInvocation,
};

export const RUN_SHELL_SCRIPT = 'AWS-RunShellScript';
const PLUGIN = 'aws:runShellScript';
/** What a failed invocation writes to stderr (the tail a caller would surface). */
export const FAILED_STDERR =
  'simulated failure: the command exited with status 1\nfailed to run commands: exit status 1';

function bucketFor(op: string): { key: string; spec: BucketSpec } {
  if (op === 'SendCommand') return { key: 'ssm:SendCommand', spec: SSM_BUCKETS.SendCommand };
  return { key: 'ssm:read', spec: SSM_BUCKETS.read };
}

export function prepareSsm(ctx: SimContext, req: SimRequest, op: string): Prepared {
  const handler = HANDLERS[op];
  let body: JsonBody = {};
  let parseError: AwsError | undefined;
  try {
    body = parseJsonBody(req.body);
  } catch (e) {
    parseError = e as AwsError;
  }
  const target =
    typeof body.Comment === 'string'
      ? body.Comment
      : typeof body.CommandId === 'string'
        ? body.CommandId
        : undefined;
  return {
    service: 'ssm',
    operation: op,
    mutating: op === 'SendCommand',
    target,
    bucket: handler ? bucketFor(op) : undefined,
    run() {
      try {
        if (!handler) throw new AwsError('UnknownOperationException', `Unknown operation ${op}`);
        if (parseError) throw parseError;
        return jsonResponse(200, handler(ctx, body), req.requestId);
      } catch (e) {
        if (e instanceof AwsError) return jsonError(e, req.requestId);
        return jsonError(new AwsError('InternalServerError', String(e), 500), req.requestId);
      }
    },
    throttled: () => jsonError(new AwsError('ThrottlingException', 'Rate exceeded'), req.requestId),
    failed: () =>
      jsonError(new AwsError('InternalServerError', 'An internal error occurred.', 500), req.requestId),
  };
}

// --- status -------------------------------------------------------------------

type InvocationStatus = 'Pending' | 'InProgress' | 'Success' | 'Failed';

function invocationStatus(c: SsmCommand, instanceId: string, now: number): InvocationStatus {
  if (now < c.startsAt) return 'Pending';
  if (now < c.endsAt) return 'InProgress';
  return c.failedInstanceIds.includes(instanceId) ? 'Failed' : 'Success';
}

function commandStatus(c: SsmCommand, now: number): InvocationStatus {
  const all = c.instanceIds.map((id) => invocationStatus(c, id, now));
  if (all.every((s) => s === 'Pending')) return 'Pending';
  if (all.some((s) => s === 'Pending' || s === 'InProgress')) return 'InProgress';
  return all.includes('Failed') ? 'Failed' : 'Success';
}

const TERMINAL = new Set<string>(['Success', 'Failed']);

function output(c: SsmCommand, instanceId: string, now: number): { stdout: string; stderr: string } {
  const status = invocationStatus(c, instanceId, now);
  if (!TERMINAL.has(status)) return { stdout: '', stderr: '' };
  const lines = c.parameters.commands?.length ?? 0;
  const stdout = `simulated: ran ${lines} command${lines === 1 ? '' : 's'} on ${instanceId}\n`;
  return status === 'Failed' ? { stdout, stderr: FAILED_STDERR } : { stdout, stderr: '' };
}

// --- validation ------------------------------------------------------------------

const INSTANCE_ID = /^(i-([0-9a-f]{8}|[0-9a-f]{17})|mi-[0-9a-f]{17})$/;
const COMMAND_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SHELL_PARAMETERS = new Set(['commands', 'workingDirectory', 'executionTimeout']);

function invalidInstance(): AwsError {
  // NOTE: the service sends this error without a message naming the instance.
  return new AwsError('InvalidInstanceId', 'Instances not in a valid state for account');
}

function checkCommandId(id: string): void {
  if (!COMMAND_ID.test(id)) throw new AwsError('InvalidCommandId', `Invalid command ID: ${id}`);
}

function readParameters(b: JsonBody): Record<string, string[]> {
  const raw = b.Parameters;
  if (raw === undefined || raw === null)
    throw new AwsError('InvalidParameters', 'Parameter "commands" is required.');
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new AwsError('SerializationException', 'Expected a map for Parameters');
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (!SHELL_PARAMETERS.has(k))
      throw new AwsError(
        'InvalidParameters',
        `Parameter "${k}" is not defined in the document ${RUN_SHELL_SCRIPT}.`,
      );
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
      throw new AwsError('SerializationException', `Expected a list of strings for Parameters.${k}`);
    Object.defineProperty(out, k, { value: [...v], enumerable: true, writable: true });
  }
  if ((out.commands ?? []).length === 0)
    throw new AwsError('InvalidParameters', 'Parameter "commands" is required.');
  return out;
}

// --- operations -------------------------------------------------------------------

function sendCommand(ctx: SimContext, b: JsonBody): unknown {
  const now = ctx.clock.now();
  const documentName = reqString(b, 'DocumentName');
  if (documentName !== RUN_SHELL_SCRIPT)
    throw new AwsError('InvalidDocument', `Document ${documentName} does not exist in your account.`);
  if (b.Targets !== undefined && b.Targets !== null)
    throw new AwsError('InvalidParameters', 'The simulator sends commands by InstanceIds only.');
  const instanceIds = (optArray(b, 'InstanceIds') ?? []).map(String);
  if (instanceIds.length === 0)
    throw new AwsError('ValidationException', 'You must specify InstanceIds or Targets.');
  if (instanceIds.length > 50)
    throw new AwsError(
      'ValidationException',
      "1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50",
    );
  if (new Set(instanceIds).size !== instanceIds.length)
    throw new AwsError(
      'DuplicateInstanceId',
      'You cannot specify an instance ID in more than one association.',
    );
  for (const id of instanceIds) {
    if (!INSTANCE_ID.test(id)) throw invalidInstance();
    const i = ctx.state.instances.get(id);
    if (i) settle(i, now);
    // NOTE: only a running instance has an agent to take the command; any other state, or
    // an instance of another account or region, is InvalidInstanceId.
    if (i?.state !== 'running') throw invalidInstance();
  }
  const comment = optString(b, 'Comment') ?? '';
  checkLength('comment', comment, 0, 100);
  const timeoutSeconds = optNumber(b, 'TimeoutSeconds');
  if (timeoutSeconds !== undefined) checkRange('timeoutSeconds', timeoutSeconds, 30, 2_592_000);
  const parameters = readParameters(b);
  const failing = new Set(ctx.faults().ssmFailedInstances ?? []);
  const d = ctx.durations;
  const c: SsmCommand = {
    seq: ctx.state.nextSeq(),
    id: ctx.rng.uuid(),
    documentName,
    comment,
    parameters,
    instanceIds,
    failedInstanceIds: instanceIds.filter((id) => failing.has(id)),
    ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
    requestedAt: now,
    visibleAt: now + d.ssmInvocationVisible,
    startsAt: now + d.ssmDelivery,
    endsAt: now + d.ssmDelivery + d.ssmRun,
  };
  ctx.state.addCommand(c);
  return { Command: renderCommand(c, now) };
}

function renderCommand(c: SsmCommand, now: number): Record<string, unknown> {
  const statuses = c.instanceIds.map((id) => invocationStatus(c, id, now));
  const status = commandStatus(c, now);
  return {
    CommandId: c.id,
    DocumentName: c.documentName,
    DocumentVersion: '$DEFAULT',
    Comment: c.comment,
    ExpiresAfter: epochSeconds(c.requestedAt + (c.timeoutSeconds ?? 3600) * 1000),
    Parameters: c.parameters,
    InstanceIds: [...c.instanceIds],
    Targets: [],
    RequestedDateTime: epochSeconds(c.requestedAt),
    Status: status,
    StatusDetails: status === 'InProgress' ? 'In Progress' : status,
    OutputS3Region: '',
    OutputS3BucketName: '',
    OutputS3KeyPrefix: '',
    MaxConcurrency: '50',
    MaxErrors: '0',
    TargetCount: c.instanceIds.length,
    CompletedCount: statuses.filter((s) => TERMINAL.has(s)).length,
    ErrorCount: statuses.filter((s) => s === 'Failed').length,
    DeliveryTimedOutCount: 0,
    ServiceRole: '',
    NotificationConfig: { NotificationArn: '', NotificationEvents: [], NotificationType: '' },
    CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
    TimeoutSeconds: c.timeoutSeconds ?? 3600,
  };
}

const LIST_COMMANDS_FILTERS = ['InvokedAfter', 'InvokedBefore', 'Status', 'ExecutionStage', 'DocumentName'];

/** `Filters` (`key`/`value`, lower-case on the wire): different keys ANDed. */
function compileFilters(
  raw: unknown[],
  allowed: string[],
  statusOf: (c: SsmCommand, now: number) => string,
): (c: SsmCommand, now: number) => boolean {
  const tests = raw.map((f) => {
    const o = (f ?? {}) as JsonBody;
    const key = optString(o, 'key') ?? '';
    const value = optString(o, 'value') ?? '';
    if (!allowed.includes(key)) throw new AwsError('InvalidFilterKey', `The filter key ${key} is not valid.`);
    if (key === 'InvokedAfter' || key === 'InvokedBefore') {
      const t = Date.parse(value);
      if (Number.isNaN(t))
        throw new AwsError('InvalidFilterValue', `The filter value ${value} is not valid.`);
      return key === 'InvokedAfter'
        ? (c: SsmCommand) => c.requestedAt >= t
        : (c: SsmCommand) => c.requestedAt <= t;
    }
    if (key === 'DocumentName') return (c: SsmCommand) => c.documentName === value;
    if (key === 'ExecutionStage') {
      if (value !== 'Executing' && value !== 'Complete')
        throw new AwsError('InvalidFilterValue', `The filter value ${value} is not valid.`);
      return (c: SsmCommand, now: number) => TERMINAL.has(commandStatus(c, now)) === (value === 'Complete');
    }
    return (c: SsmCommand, now: number) => statusOf(c, now) === value;
  });
  return (c, now) => tests.every((t) => t(c, now));
}

function pageLimit(b: JsonBody): number {
  const max = optNumber(b, 'MaxResults') ?? 50;
  checkRange('maxResults', max, 1, 50);
  return max;
}

/** Tokens name the next item's position and are bound to the other request parameters. */
function readToken(b: JsonBody, fingerprint: string): string | undefined {
  const token = optString(b, 'NextToken');
  if (token === undefined) return undefined;
  const text = Buffer.from(token, 'base64url').toString();
  const dot = text.lastIndexOf('.');
  if (dot < 0 || text.slice(dot + 1) !== fingerprint)
    throw new AwsError('InvalidNextToken', 'The specified token is not valid.');
  return text.slice(0, dot);
}

function makeToken(position: string, fingerprint: string): string {
  return Buffer.from(`${position}.${fingerprint}`).toString('base64url');
}

/** The commands a listing covers, newest first. */
function commandsFor(ctx: SimContext, b: JsonBody): SsmCommand[] {
  const commandId = optString(b, 'CommandId');
  const instanceId = optString(b, 'InstanceId');
  if (commandId !== undefined) checkCommandId(commandId);
  if (instanceId !== undefined && !INSTANCE_ID.test(instanceId)) throw invalidInstance();
  let out: SsmCommand[];
  if (commandId !== undefined) {
    const c = ctx.state.commands.get(commandId);
    // NOTE: an unknown (well-formed) command id lists nothing.
    out = c ? [c] : [];
  } else if (instanceId !== undefined) out = [...(ctx.state.commandsByInstance.get(instanceId) ?? [])];
  else out = [...ctx.state.commands.values()];
  if (instanceId !== undefined) out = out.filter((c) => c.instanceIds.includes(instanceId));
  return out.sort((a, b2) => b2.seq - a.seq);
}

function listCommands(ctx: SimContext, b: JsonBody): unknown {
  const now = ctx.clock.now();
  const limit = pageLimit(b);
  const filter = compileFilters(optArray(b, 'Filters') ?? [], LIST_COMMANDS_FILTERS, commandStatus);
  const fingerprint = fnv(JSON.stringify([b.CommandId ?? null, b.InstanceId ?? null, b.Filters ?? null]));
  const from = readToken(b, fingerprint);
  const all = commandsFor(ctx, b).filter((c) => filter(c, now));
  if (from !== undefined && !/^\d+$/.test(from))
    throw new AwsError('InvalidNextToken', 'The specified token is not valid.');
  const start = from === undefined ? 0 : all.findIndex((c) => c.seq <= Number(from));
  const page = start < 0 ? [] : all.slice(start, start + limit);
  const next = start < 0 ? undefined : all[start + limit];
  return dropUndefined({
    Commands: page.map((c) => renderCommand(c, now)),
    NextToken: next === undefined ? undefined : makeToken(String(next.seq), fingerprint),
  });
}

function renderInvocation(c: SsmCommand, instanceId: string, now: number, details: boolean): unknown {
  const status = invocationStatus(c, instanceId, now);
  const out = output(c, instanceId, now);
  const terminal = TERMINAL.has(status);
  return {
    CommandId: c.id,
    InstanceId: instanceId,
    InstanceName: '',
    Comment: c.comment,
    DocumentName: c.documentName,
    DocumentVersion: '$DEFAULT',
    RequestedDateTime: epochSeconds(c.requestedAt),
    Status: status,
    StatusDetails: status === 'InProgress' ? 'In Progress' : status,
    TraceOutput: '',
    StandardOutputUrl: '',
    StandardErrorUrl: '',
    CommandPlugins: details
      ? [
          dropUndefined({
            Name: PLUGIN,
            Status: status,
            StatusDetails: status === 'InProgress' ? 'In Progress' : status,
            ResponseCode: terminal ? (status === 'Failed' ? 1 : 0) : -1,
            ResponseStartDateTime: now >= c.startsAt ? epochSeconds(c.startsAt) : undefined,
            ResponseFinishDateTime: terminal ? epochSeconds(c.endsAt) : undefined,
            Output:
              status === 'Failed'
                ? `${out.stdout}\n\n----------ERROR-------\n${out.stderr}`
                : terminal
                  ? out.stdout
                  : '',
            StandardOutputUrl: '',
            StandardErrorUrl: '',
            OutputS3Region: '',
            OutputS3BucketName: '',
            OutputS3KeyPrefix: '',
          }),
        ]
      : [],
    ServiceRole: '',
    NotificationConfig: { NotificationArn: '', NotificationEvents: [], NotificationType: '' },
    CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
  };
}

function listCommandInvocations(ctx: SimContext, b: JsonBody): unknown {
  const now = ctx.clock.now();
  const limit = pageLimit(b);
  const details = optBool(b, 'Details') ?? false;
  const instanceId = optString(b, 'InstanceId');
  const filters = optArray(b, 'Filters') ?? [];
  const statusTests = filters.filter((f) => (f as JsonBody)?.key === 'Status');
  const filter = compileFilters(
    filters.filter((f) => (f as JsonBody)?.key !== 'Status'),
    LIST_COMMANDS_FILTERS.filter((k) => k !== 'ExecutionStage'),
    commandStatus,
  );
  const fingerprint = fnv(
    JSON.stringify([b.CommandId ?? null, instanceId ?? null, b.Filters ?? null, details]),
  );
  const from = readToken(b, fingerprint);
  // One row per (command, instance), invisible until the invocation exists.
  const rows: { c: SsmCommand; instanceId: string; position: string }[] = [];
  for (const c of commandsFor(ctx, b)) {
    if (now < c.visibleAt || !filter(c, now)) continue;
    c.instanceIds.forEach((id, n) => {
      if (instanceId !== undefined && id !== instanceId) return;
      const status = invocationStatus(c, id, now);
      if (statusTests.some((f) => (f as JsonBody).value !== status)) return;
      rows.push({ c, instanceId: id, position: `${c.seq}:${n}` });
    });
  }
  const start = from === undefined ? 0 : rows.findIndex((r) => r.position === from);
  if (start < 0) throw new AwsError('InvalidNextToken', 'The specified token is not valid.');
  const page = rows.slice(start, start + limit);
  const next = rows[start + limit];
  return dropUndefined({
    CommandInvocations: page.map((r) => renderInvocation(r.c, r.instanceId, now, details)),
    NextToken: next === undefined ? undefined : makeToken(next.position, fingerprint),
  });
}

function elapsed(ms: number): string {
  return `PT${(ms / 1000).toFixed(3)}S`;
}

function getCommandInvocation(ctx: SimContext, b: JsonBody): unknown {
  const now = ctx.clock.now();
  const commandId = reqString(b, 'CommandId');
  const instanceId = reqString(b, 'InstanceId');
  checkCommandId(commandId);
  if (!INSTANCE_ID.test(instanceId)) throw invalidInstance();
  const plugin = optString(b, 'PluginName');
  if (plugin !== undefined && plugin !== PLUGIN)
    throw new AwsError('InvalidPluginName', `The plugin name ${plugin} is not valid.`);
  const c = ctx.state.commands.get(commandId);
  // NOTE: right after SendCommand the invocation does not exist yet, as on AWS.
  if (!c?.instanceIds.includes(instanceId) || now < c.visibleAt)
    throw new AwsError('InvocationDoesNotExist', '');
  const status = invocationStatus(c, instanceId, now);
  const out = output(c, instanceId, now);
  const started = now >= c.startsAt;
  const terminal = TERMINAL.has(status);
  return {
    CommandId: c.id,
    InstanceId: instanceId,
    Comment: c.comment,
    DocumentName: c.documentName,
    DocumentVersion: '$DEFAULT',
    PluginName: PLUGIN,
    ResponseCode: terminal ? (status === 'Failed' ? 1 : 0) : -1,
    ExecutionStartDateTime: started ? iso(c.startsAt) : '',
    ExecutionElapsedTime: started ? elapsed((terminal ? c.endsAt : now) - c.startsAt) : '',
    ExecutionEndDateTime: terminal ? iso(c.endsAt) : '',
    Status: status,
    StatusDetails: status === 'InProgress' ? 'In Progress' : status,
    StandardOutputContent: out.stdout,
    StandardOutputUrl: '',
    StandardErrorContent: out.stderr,
    StandardErrorUrl: '',
    CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
  };
}

/** What ran on an instance, for the state dump. */
export function commandsOn(
  commands: SsmCommand[] | undefined,
  instanceId: string,
  now: number,
): { commandId: string; comment: string; documentName: string; requestedAt: number; status: string }[] {
  return (commands ?? []).map((c) => ({
    commandId: c.id,
    comment: c.comment,
    documentName: c.documentName,
    requestedAt: c.requestedAt,
    status: invocationStatus(c, instanceId, now),
  }));
}
