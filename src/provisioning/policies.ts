/**
 * The resource policies of the secrets instances read at boot (DESIGN §12). The tenant and
 * workspace roles have no Secrets Manager permission of their own: what an instance may read
 * is decided here, on the secret.
 *
 * An instance's role is named after its instance profile (deploy/README: the profile and its
 * role share the name), in the secret's own account.
 */

export interface BundlePolicyInput {
  /** The account the secret (and the instances) live in. */
  account: string;
  /** The tenant instance profile / role name. */
  tenantRole: string;
  /** The workspace role name; the same as the tenant's when workspaces share its profile. */
  workspaceRole: string;
  /** ARNs of the org's live tenant instances (normally one; none before the first launch). */
  instanceArns: readonly string[];
}

const roleArn = (account: string, role: string) => `arn:aws:iam::${account}:role/${role}`;
export const instanceArn = (region: string, account: string, instanceId: string) =>
  `arn:aws:ec2:${region}:${account}:instance/${instanceId}`;

/** The account and region in an ARN (`arn:aws:<service>:<region>:<account>:…`). */
export function arnPlace(arn: string): { region: string; account: string } | undefined {
  const m = /^arn:aws[a-z-]*:[^:]+:([^:]*):(\d{12}):/.exec(arn);
  return m ? { region: m[1]!, account: m[2]! } : undefined;
}

/**
 * An org's bootstrap bundle: readable by the tenant role from the org's current tenant
 * instance only. The Deny statements hold even where a role still has an identity policy
 * that grants Secrets Manager reads (the layout before tenant isolation): the tenant role is
 * refused from any other instance, and the workspace role always.
 */
export function bundlePolicy(input: BundlePolicyInput): string {
  const tenant = roleArn(input.account, input.tenantRole);
  const arns = [...input.instanceArns].sort();
  const statements: Record<string, unknown>[] = [];
  if (arns.length > 0)
    statements.push({
      Sid: 'TenantInstanceReadsItsBundle',
      Effect: 'Allow',
      Principal: { AWS: tenant },
      Action: 'secretsmanager:GetSecretValue',
      Resource: '*',
      Condition: { ArnEquals: { 'ec2:SourceInstanceARN': arns } },
    });
  statements.push({
    Sid: 'NoOtherTenantInstance',
    Effect: 'Deny',
    Principal: { AWS: tenant },
    Action: 'secretsmanager:*',
    Resource: '*',
    ...(arns.length > 0 ? { Condition: { ArnNotEquals: { 'ec2:SourceInstanceARN': arns } } } : {}),
  });
  if (input.workspaceRole !== input.tenantRole)
    statements.push({
      Sid: 'NoWorkspace',
      Effect: 'Deny',
      Principal: { AWS: roleArn(input.account, input.workspaceRole) },
      Action: 'secretsmanager:*',
      Resource: '*',
    });
  return JSON.stringify({ Version: '2012-10-17', Statement: statements });
}

/** The env-wide workspace bootstrap secret: readable by the workspace role, from an instance. */
export function workspaceBootstrapPolicy(input: { account: string; workspaceRole: string }): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'WorkspaceInstancesRead',
        Effect: 'Allow',
        Principal: { AWS: roleArn(input.account, input.workspaceRole) },
        Action: 'secretsmanager:GetSecretValue',
        Resource: '*',
        Condition: { Null: { 'ec2:SourceInstanceARN': 'false' } },
      },
    ],
  });
}

/** Whether two policy documents say the same (key order, whitespace and one-element lists aside). */
export function samePolicy(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  try {
    return canonical(JSON.parse(a)) === canonical(JSON.parse(b));
  } catch {
    return false;
  }
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) {
    const items = v.map(canonical);
    // A one-element list means the same as the element; statement and value order do not matter.
    return items.length === 1 ? items[0]! : `[${items.sort().join(',')}]`;
  }
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}
