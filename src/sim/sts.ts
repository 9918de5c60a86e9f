import { ROLE_ARN } from './iam.js';
import { AwsError, type Prepared, type SimContext, type SimRequest, type SimResponse } from './protocol.js';
import { QueryParams } from './query.js';
import { SEED } from './seed.js';
import { el, escapeXml, iso } from './xml.js';

/** STS over the Query protocol (Version 2011-06-15): AssumeRole and GetCallerIdentity. */

const NS = 'https://sts.amazonaws.com/doc/2011-06-15/';

function xml(status: number, body: string, requestId: string): SimResponse {
  return { status, headers: { 'content-type': 'text/xml', 'x-amzn-requestid': requestId }, body };
}

export function stsError(e: AwsError, requestId: string): SimResponse {
  const type = e.status >= 500 ? 'Receiver' : 'Sender';
  return xml(
    e.status,
    `<ErrorResponse xmlns="${NS}"><Error><Type>${type}</Type><Code>${escapeXml(e.code)}</Code><Message>${escapeXml(e.message)}</Message></Error><RequestId>${e.status}-${requestId}</RequestId></ErrorResponse>`,
    requestId,
  );
}

function ok(action: string, result: string, requestId: string): SimResponse {
  return xml(
    200,
    `<${action}Response xmlns="${NS}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`,
    requestId,
  );
}

export function prepareSts(ctx: SimContext, req: SimRequest): Prepared {
  const p = QueryParams.parse(req.method === 'GET' ? req.query.toString() : req.body);
  const action = p.get('Action') ?? '';
  return {
    service: 'sts',
    operation: action || 'MissingAction',
    mutating: false,
    ...(action === 'AssumeRole' ? { target: p.get('RoleArn') } : {}),
    run() {
      try {
        if (action === 'GetCallerIdentity') {
          const c = ctx.caller;
          return ok(
            action,
            el('Arn', c.arn) + el('UserId', c.userId) + el('Account', c.account),
            req.requestId,
          );
        }
        if (action === 'AssumeRole') return ok(action, assumeRole(ctx, p), req.requestId);
        throw new AwsError('InvalidAction', `Could not find operation ${action} for version 2011-06-15`);
      } catch (e) {
        if (e instanceof AwsError) return stsError(e, req.requestId);
        throw e;
      }
    },
    throttled: () => stsError(new AwsError('Throttling', 'Rate exceeded'), req.requestId),
    failed: () => stsError(new AwsError('InternalFailure', 'An internal error occurred', 500), req.requestId),
  };
}

/**
 * NOTE: trust is simulated in two simple ways: `roleTrust` lists who may assume a role; a role
 * it does not list trusts the default account's own credentials (not role sessions or
 * instance credentials). `deniedRoles` refuses a role to everyone. The credentials belong to
 * the role ARN's account.
 */
function trusted(ctx: SimContext, roleArn: string): boolean {
  const c = ctx.caller;
  const admitted = ctx.faults().roleTrust?.[roleArn];
  if (admitted === undefined) return c.account === SEED.accountId && c.roleArn === undefined;
  return admitted.some(
    (p) => p === c.arn || p === c.roleArn || p === c.account || p === `arn:aws:iam::${c.account}:root`,
  );
}

function assumeRole(ctx: SimContext, p: QueryParams): string {
  const roleArn = p.get('RoleArn');
  const session = p.get('RoleSessionName');
  if (!roleArn) throw new AwsError('MissingParameter', 'The request must contain the parameter RoleArn');
  if (!session)
    throw new AwsError('MissingParameter', 'The request must contain the parameter RoleSessionName');
  const m = ROLE_ARN.exec(roleArn);
  if (!m) throw new AwsError('ValidationError', `${roleArn} is invalid`);
  if (!/^[\w+=,.@-]{2,64}$/.test(session))
    throw new AwsError(
      'ValidationError',
      `1 validation error detected: Value '${session}' at 'roleSessionName' failed to satisfy constraint`,
    );
  const duration = Number(p.get('DurationSeconds') ?? 3600);
  if (!Number.isInteger(duration) || duration < 900 || duration > 43_200)
    throw new AwsError(
      'ValidationError',
      `1 validation error detected: Value '${duration}' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200`,
    );
  if ((ctx.faults().deniedRoles ?? []).includes(roleArn) || !trusted(ctx, roleArn))
    throw new AwsError(
      'AccessDenied',
      `User: ${ctx.caller.arn} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`,
      403,
    );
  const [, account, path, name] = m;
  const roleId = `AROA${ctx.rng.alnum(17).toUpperCase()}`;
  const creds = ctx.identities.issue(
    {
      account: account!,
      arn: `arn:aws:sts::${account}:assumed-role/${name}/${session}`,
      userId: `${roleId}:${session}`,
      roleArn: `arn:aws:iam::${account}:role/${path}${name}`,
    },
    ctx.clock.now(),
    duration * 1000,
    ctx.rng,
  );
  return (
    `<Credentials>${el('AccessKeyId', creds.accessKeyId)}${el('SecretAccessKey', creds.secretAccessKey)}` +
    `${el('SessionToken', creds.sessionToken)}${el('Expiration', iso(creds.expiresAt))}</Credentials>` +
    `<AssumedRoleUser>${el('AssumedRoleId', `${roleId}:${session}`)}${el('Arn', creds.principal.arn)}</AssumedRoleUser>`
  );
}
