import type { Principal } from './iam.js';
import { AwsError } from './protocol.js';

/**
 * Resource-based policy evaluation for Secrets Manager (DESIGN §12), the subset the product
 * relies on: `Effect` Allow/Deny, `Principal` (`*` or `{AWS: arn | account | [..]}`),
 * `Action` / `Resource` with `*` and `?` wildcards, and `Condition` with ArnEquals, ArnLike,
 * ArnNotEquals, ArnNotLike, StringEquals, StringLike, StringNotEquals, StringNotLike (each
 * also `…IfExists`) and Null. Values of one key are ORed; keys and operators are ANDed. A key
 * the request does not carry fails a positive operator and satisfies a negated one, as in IAM.
 * An explicit Deny wins; otherwise an Allow grants; otherwise nothing does.
 */

export interface PolicyRequest {
  principal: Principal;
  action: string;
  resource: string;
  /** Condition keys of the request (`ec2:SourceInstanceARN`, `aws:PrincipalArn`, …). */
  context: Record<string, string>;
}

export type Decision = 'allow' | 'deny' | 'none';

interface Statement {
  Effect: 'Allow' | 'Deny';
  Principal?: unknown;
  Action?: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

const OPERATORS = new Set([
  'ArnEquals',
  'ArnLike',
  'ArnNotEquals',
  'ArnNotLike',
  'StringEquals',
  'StringLike',
  'StringNotEquals',
  'StringNotLike',
  'Null',
]);

const list = (v: unknown): string[] =>
  Array.isArray(v) ? v.map(String) : v === undefined ? [] : [String(v)];

function malformed(message: string): never {
  throw new AwsError('MalformedPolicyDocumentException', message);
}

/** Parses and checks a policy document as PutResourcePolicy does; throws MalformedPolicyDocumentException. */
export function parsePolicy(text: string): Statement[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    malformed('This resource policy contains a syntax error.');
  }
  if (!doc || typeof doc !== 'object') malformed('This resource policy contains a syntax error.');
  const d = doc as { Version?: unknown; Statement?: unknown };
  if (d.Version !== undefined && d.Version !== '2012-10-17' && d.Version !== '2008-10-17')
    malformed('The policy document has an unsupported Version.');
  const statements = Array.isArray(d.Statement) ? d.Statement : d.Statement ? [d.Statement] : [];
  if (statements.length === 0) malformed('The policy document has no Statement.');
  return statements.map((s: unknown) => {
    const st = s as Statement;
    if (st.Effect !== 'Allow' && st.Effect !== 'Deny')
      malformed('Each statement needs Effect Allow or Deny.');
    if (st.Principal === undefined) malformed('A resource policy statement needs a Principal.');
    if (st.Action === undefined) malformed('Each statement needs an Action.');
    for (const a of list(st.Action))
      if (a !== '*' && !a.toLowerCase().startsWith('secretsmanager:'))
        malformed(`Action ${a} does not apply to a secret.`);
    for (const [op, keys] of Object.entries(st.Condition ?? {})) {
      if (!OPERATORS.has(op.replace(/IfExists$/, '')))
        malformed(`Condition operator ${op} is not supported.`);
      if (!keys || typeof keys !== 'object') malformed(`Condition ${op} needs keys.`);
    }
    return st;
  });
}

/** True when the policy lets anyone in: a `*` principal Allow without a condition (BlockPublicPolicy). */
export function isPublic(statements: Statement[]): boolean {
  return statements.some(
    (s) =>
      s.Effect === 'Allow' &&
      !s.Condition &&
      (s.Principal === '*' || list((s.Principal as { AWS?: unknown } | undefined)?.AWS).includes('*')),
  );
}

/** `*` and `?` wildcards, case-sensitive (case-insensitive for actions). */
function like(pattern: string, value: string, ci = false): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    ci ? 'i' : '',
  );
  return re.test(value);
}

function principalMatches(spec: unknown, p: Principal): boolean {
  if (spec === '*') return true;
  const aws = list((spec as { AWS?: unknown } | undefined)?.AWS);
  return aws.some((name) => {
    if (name === '*') return true;
    if (name === p.account || name === `arn:aws:iam::${p.account}:root`) return true;
    return name === p.arn || (p.roleArn !== undefined && name === p.roleArn);
  });
}

function conditionHolds(op: string, key: string, want: string[], context: Record<string, string>): boolean {
  const ifExists = op.endsWith('IfExists');
  const base = op.replace(/IfExists$/, '');
  const have = context[key];
  if (base === 'Null') {
    // Null true: the key is absent; Null false: it is present.
    return want.some((w) => (w === 'true') === (have === undefined));
  }
  if (have === undefined) return ifExists || base.includes('Not');
  switch (base) {
    case 'ArnEquals':
    case 'StringEquals':
      return want.includes(have);
    case 'ArnLike':
    case 'StringLike':
      return want.some((w) => like(w, have));
    case 'ArnNotEquals':
    case 'StringNotEquals':
      return !want.includes(have);
    case 'ArnNotLike':
    case 'StringNotLike':
      return !want.some((w) => like(w, have));
    default:
      return false;
  }
}

function statementApplies(s: Statement, req: PolicyRequest): boolean {
  if (!principalMatches(s.Principal, req.principal)) return false;
  if (!list(s.Action).some((a) => like(a, req.action, true))) return false;
  const resources = list(s.Resource ?? '*');
  if (!resources.some((r) => like(r, req.resource))) return false;
  // Condition keys are case-insensitive.
  const context = Object.fromEntries(Object.entries(req.context).map(([k, v]) => [k.toLowerCase(), v]));
  for (const [op, keys] of Object.entries(s.Condition ?? {}))
    for (const [key, values] of Object.entries(keys))
      if (!conditionHolds(op, key.toLowerCase(), list(values), context)) return false;
  return true;
}

/** The resource policy's verdict on one request. */
export function evaluate(statements: Statement[], req: PolicyRequest): Decision {
  let allowed = false;
  for (const s of statements) {
    if (!statementApplies(s, req)) continue;
    if (s.Effect === 'Deny') return 'deny';
    allowed = true;
  }
  return allowed ? 'allow' : 'none';
}

/** Condition keys AWS adds for a caller (the ones the product's policies use). */
export function requestContext(p: Principal): Record<string, string> {
  return {
    'aws:PrincipalArn': p.roleArn ?? p.arn,
    'aws:PrincipalAccount': p.account,
    ...(p.sourceInstanceArn ? { 'ec2:SourceInstanceARN': p.sourceInstanceArn } : {}),
  };
}
