import type { Principal } from './iam.js';
import { AwsError } from './protocol.js';

/**
 * Resource-based policies (DESIGN §12), as Secrets Manager evaluates a secret's policy for a
 * role session: statements with Effect Allow/Deny, `Principal` (`*` or `{"AWS": …}`), `Action`
 * and `Resource` with `*`/`?` wildcards, and `Condition` with the Arn and String operators
 * (each also `…IfExists`) and `Null`.
 * An explicit Deny wins; without a matching Allow the request is denied.
 */

export interface PolicyRequest {
  /** `secretsmanager:GetSecretValue`. */
  action: string;
  /** The resource's ARN. */
  resource: string;
  principal: Principal;
}

export type Decision = 'allow' | 'explicitDeny' | 'implicitDeny';

interface Statement {
  effect: 'Allow' | 'Deny';
  principals: string[];
  actions: string[];
  resources: string[];
  conditions: { operator: string; key: string; values: string[] }[];
}

const OPERATORS = new Set([
  'ArnEquals',
  'ArnLike',
  'ArnNotEquals',
  'ArnNotLike',
  'StringEquals',
  'StringNotEquals',
  'StringLike',
  'StringNotLike',
  'StringEqualsIgnoreCase',
  'Null',
]);

export const MAX_POLICY_LENGTH = 20_480;

function malformed(detail: string): AwsError {
  return new AwsError(
    'MalformedPolicyDocumentException',
    `This resource policy contains a syntax error: ${detail}`,
  );
}

function strings(v: unknown, what: string): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string')) return v as string[];
  throw malformed(`${what} must be a string or a non-empty list of strings`);
}

/** Parses and validates a policy document; throws MalformedPolicyDocumentException. */
export function parsePolicy(text: string): Statement[] {
  if (text.length > MAX_POLICY_LENGTH) throw malformed(`longer than ${MAX_POLICY_LENGTH} characters`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw malformed('not valid JSON');
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw malformed('not a JSON object');
  const raw = (doc as Record<string, unknown>).Statement;
  const list = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw];
  if (list.length === 0) throw malformed('no Statement');
  return list.map((s, n) => {
    if (!s || typeof s !== 'object') throw malformed(`statement ${n + 1} is not an object`);
    const st = s as Record<string, unknown>;
    if (st.Effect !== 'Allow' && st.Effect !== 'Deny') throw malformed(`statement ${n + 1}: Effect`);
    for (const unsupported of ['NotPrincipal', 'NotAction', 'NotResource'])
      if (st[unsupported] !== undefined)
        throw malformed(`statement ${n + 1}: ${unsupported} is not supported`);
    let principals: string[];
    if (st.Principal === '*') principals = ['*'];
    else if (st.Principal && typeof st.Principal === 'object' && !Array.isArray(st.Principal)) {
      const p = st.Principal as Record<string, unknown>;
      const keys = Object.keys(p);
      if (keys.length !== 1 || keys[0] !== 'AWS')
        throw malformed(`statement ${n + 1}: only Principal.AWS is supported`);
      principals = strings(p.AWS, 'Principal.AWS');
    } else throw malformed(`statement ${n + 1}: Principal`);
    const actions = strings(st.Action, 'Action');
    const resources = st.Resource === undefined ? ['*'] : strings(st.Resource, 'Resource');
    const conditions: Statement['conditions'] = [];
    if (st.Condition !== undefined) {
      if (!st.Condition || typeof st.Condition !== 'object' || Array.isArray(st.Condition))
        throw malformed(`statement ${n + 1}: Condition`);
      for (const [operator, block] of Object.entries(st.Condition as Record<string, unknown>)) {
        if (!OPERATORS.has(operator.replace(/IfExists$/, '')))
          throw malformed(`condition operator ${operator} is not supported`);
        if (!block || typeof block !== 'object' || Array.isArray(block))
          throw malformed(`statement ${n + 1}: Condition.${operator}`);
        for (const [key, values] of Object.entries(block as Record<string, unknown>))
          conditions.push({
            operator,
            key: key.toLowerCase(),
            values: strings(values, `${operator}.${key}`),
          });
      }
    }
    return { effect: st.Effect, principals, actions, resources, conditions };
  });
}

/** A policy that allows anyone with no condition narrowing it (what BlockPublicPolicy refuses). */
export function isPublic(statements: Statement[]): boolean {
  return statements.some(
    (s) => s.effect === 'Allow' && s.principals.includes('*') && s.conditions.length === 0,
  );
}

const patternCache = new Map<string, RegExp>();

function like(pattern: string, value: string, ignoreCase = false): boolean {
  const key = `${ignoreCase ? 'i' : 's'}${pattern}`;
  let re = patternCache.get(key);
  if (!re) {
    const body = pattern
      .split('')
      .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')))
      .join('');
    re = new RegExp(`^${body}$`, ignoreCase ? 'is' : 's');
    if (patternCache.size > 1000) patternCache.clear();
    patternCache.set(key, re);
  }
  return re.test(value);
}

/** The request context keys a statement's Condition may read. */
function contextValue(key: string, p: Principal): string | undefined {
  switch (key) {
    case 'ec2:sourceinstancearn':
      return p.sourceInstanceArn;
    case 'aws:principalarn':
      return p.roleArn ?? p.arn;
    case 'aws:principalaccount':
      return p.account;
    case 'aws:userid':
      return p.userId;
    default:
      return undefined;
  }
}

function conditionHolds(c: Statement['conditions'][number], p: Principal): boolean {
  const have = contextValue(c.key, p);
  // Null: "true" when the key is absent, "false" when it is present.
  if (c.operator === 'Null') return c.values.some((v) => (v === 'true') === (have === undefined));
  const ifExists = c.operator.endsWith('IfExists');
  const operator = ifExists ? c.operator.slice(0, -'IfExists'.length) : c.operator;
  const negated = operator.includes('Not');
  // NOTE: a missing key fails a positive operator and satisfies a negated one, as IAM does;
  // …IfExists holds when the key is missing.
  if (have === undefined) return ifExists || negated;
  const hit = c.values.some((want) => {
    switch (operator) {
      case 'ArnEquals':
      case 'ArnNotEquals':
      case 'StringEquals':
      case 'StringNotEquals':
        return want === have;
      case 'StringEqualsIgnoreCase':
        return want.toLowerCase() === have.toLowerCase();
      default:
        return like(want, have);
    }
  });
  return negated ? !hit : hit;
}

function principalMatches(s: Statement, p: Principal): boolean {
  return s.principals.some(
    (x) =>
      x === '*' ||
      x === p.roleArn ||
      x === p.arn ||
      x === p.account ||
      x === `arn:aws:iam::${p.account}:root`,
  );
}

export function evaluate(statements: Statement[], req: PolicyRequest): Decision {
  let allowed = false;
  for (const s of statements) {
    if (!principalMatches(s, req.principal)) continue;
    if (!s.actions.some((a) => like(a, req.action, true))) continue;
    if (!s.resources.some((r) => like(r, req.resource))) continue;
    if (!s.conditions.every((c) => conditionHolds(c, req.principal))) continue;
    if (s.effect === 'Deny') return 'explicitDeny';
    allowed = true;
  }
  return allowed ? 'allow' : 'implicitDeny';
}

export function accessDenied(req: PolicyRequest, decision: Decision | 'noIdentityPolicy'): AwsError {
  const why =
    decision === 'explicitDeny'
      ? 'with an explicit deny in a resource-based policy'
      : decision === 'noIdentityPolicy'
        ? `because no identity-based policy allows the ${req.action} action`
        : `because no resource-based policy allows the ${req.action} action`;
  return new AwsError(
    'AccessDeniedException',
    `User: ${req.principal.arn} is not authorized to perform: ${req.action} on resource: ${req.resource} ${why}`,
  );
}
