import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ownerTags, TAG } from '../../src/provisioning/tags.js';
import { DEPLOY, placeholder, ROOT, readText } from './manifests.js';

type OneOrMany = string | string[];
interface Statement {
  Sid: string;
  Effect: 'Allow' | 'Deny';
  Action: OneOrMany;
  Resource: OneOrMany;
  Condition?: Record<string, Record<string, OneOrMany>>;
}
interface Policy {
  Version: string;
  Statement: Statement[];
}

const POLICY_FILE = join(DEPLOY, 'iam-policy.json');
const policyText = readText(POLICY_FILE);
const policy = JSON.parse(policyText) as Policy;
const list = (v: OneOrMany | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** IAM service prefix of each AWS SDK client package the operator uses. */
const SERVICE_PREFIX: Record<string, string> = {
  '@aws-sdk/client-ec2': 'ec2',
  '@aws-sdk/client-secrets-manager': 'secretsmanager',
  '@aws-sdk/client-resource-groups-tagging-api': 'tag',
  '@aws-sdk/client-sts': 'sts',
  '@aws-sdk/client-ssm': 'ssm',
};

/** Calls AWS answers whoever asks: no policy grants or could deny them. */
const NEEDS_NO_PERMISSION = new Set(['sts:GetCallerIdentity']);

/** What the operator's role is granted only when a canary target is configured. */
const ASSUME_FILE = join(DEPLOY, 'iam-canary-assume-policy.json');
const assumeText = readText(ASSUME_FILE);
const assume = JSON.parse(assumeText) as Policy;
/** The trust policy of the canary account's role. */
const TRUST_FILE = join(DEPLOY, 'iam-canary-trust-policy.json');
const trustText = readText(TRUST_FILE);
const trust = JSON.parse(trustText) as {
  Version: string;
  Statement: (Omit<Statement, 'Resource'> & { Principal: { AWS: OneOrMany } })[];
};

/**
 * The IAM actions the code can send: every `XCommand` imported from an AWS SDK client in the
 * cloud adapters (src/cloud/, the only layer that talks to AWS; the simulator and the demo's
 * seeding talk to the simulator only).
 */
function actionsSentByCode(): { actions: Set<string>; files: string[] } {
  const actions = new Set<string>();
  const files: string[] = [];
  for (const file of sources(join(ROOT, 'src', 'cloud'))) {
    const text = readText(file);
    const name = relative(ROOT, file);
    const imported: string[] = [];
    for (const m of text.matchAll(/import\s+(?:type\s+)?\{([^}]*)\}\s*from\s*'(@aws-sdk\/client-[\w-]+)'/g)) {
      const prefix = SERVICE_PREFIX[m[2]!];
      expect(prefix, `${name} imports ${m[2]}: add its IAM prefix to SERVICE_PREFIX`).toBeDefined();
      for (const spec of m[1]!.split(',').map((s) => s.trim())) {
        const command = /^(?!type\s)(\w+)Command(?:\s+as\s+\w+)?$/.exec(spec);
        if (!command) continue;
        imported.push(`${command[1]}Command`);
        actions.add(`${prefix}:${command[1]}`);
      }
    }
    // Every command sent is an imported SDK command, and every imported one is sent.
    const sent = [...text.matchAll(/new\s+(\w+Command)\s*\(/g)].map((m) => m[1]!);
    expect(new Set(sent), name).toEqual(new Set(imported));
    if (imported.length > 0) files.push(name);
  }
  return { actions, files };
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

const fromCode = actionsSentByCode();
const statements = policy.Statement;
const granting = (action: string) => statements.filter((s) => list(s.Action).includes(action));
const ENV = placeholder('MOLECULE_ENV');
const ROLE = placeholder('TENANT_ROLE_NAME');
const WORKSPACE_ROLE = placeholder('WORKSPACE_ROLE_NAME');
const VPC = placeholder('EC2_VPC_ID');
const AMI_OWNER = placeholder('AMI_OWNER');
const PLACEHOLDERS = ['MOLECULE_ENV', 'TENANT_ROLE_NAME', 'WORKSPACE_ROLE_NAME', 'EC2_VPC_ID', 'AMI_OWNER'];
const OURS = { ManagedBy: 'molecule-operator', MOLECULE_ENV: ENV };

/** True when the condition pins both ownership tags, on the resource or in the request. */
function pinsOwnership(s: Statement, kind: 'ResourceTag' | 'RequestTag'): boolean {
  const equals = s.Condition?.StringEquals ?? {};
  return Object.entries(OURS).every(([tag, value]) => list(equals[`aws:${kind}/${tag}`]).join() === value);
}

describe('IAM policy', () => {
  it('is an IAM policy document', () => {
    expect(policy.Version).toBe('2012-10-17');
    expect(statements.length).toBeGreaterThan(0);
    for (const s of statements) {
      expect(
        Object.keys(s).every((k) => ['Sid', 'Effect', 'Action', 'Resource', 'Condition'].includes(k)),
        s.Sid,
      ).toBe(true);
      expect(s.Sid).toMatch(/^[A-Za-z0-9]+$/);
      expect(s.Effect).toBe('Allow');
      expect(list(s.Action).length, s.Sid).toBeGreaterThan(0);
      expect(list(s.Resource).length, s.Sid).toBeGreaterThan(0);
      for (const a of list(s.Action)) expect(a, s.Sid).toMatch(/^[a-z0-9-]+:[A-Za-z]+$/);
    }
    expect(new Set(statements.map((s) => s.Sid)).size).toBe(statements.length);
    // Managed policies are limited to 6,144 characters, whitespace not counted.
    expect(JSON.stringify(policy).length).toBeLessThanOrEqual(6144);
  });

  it('finds the SDK commands in the adapters', () => {
    expect(fromCode.files.sort()).toEqual([
      'src/cloud/aws/credentials.ts',
      'src/cloud/aws/ec2.ts',
      'src/cloud/aws/secrets.ts',
      'src/cloud/aws/ssm.ts',
      'src/cloud/aws/tagging.ts',
      'src/cloud/index.ts',
    ]);
    expect(fromCode.actions).toContain('ec2:RunInstances');
    expect(fromCode.actions).toContain('secretsmanager:CreateSecret');
    expect(fromCode.actions).toContain('tag:GetResources');
    // Controllers reach AWS only through the ports (DESIGN §2), so the adapters are the whole list.
    for (const file of sources(join(ROOT, 'controllers'))) {
      expect(readText(file), relative(ROOT, file)).not.toMatch(/from '@aws-sdk\//);
    }
  });

  it('grants exactly the actions the code sends, plus iam:PassRole (sts:AssumeRole in its own document)', () => {
    const granted = new Set([...statements, ...assume.Statement].flatMap((s) => list(s.Action)));
    const needed = [...fromCode.actions].filter((a) => !NEEDS_NO_PERMISSION.has(a));
    expect(granted).toEqual(new Set([...needed, 'iam:PassRole']));
    expect(statements.flatMap((s) => list(s.Action))).not.toContain('sts:AssumeRole');
  });

  it('lets the operator assume exactly the canary role, and the canary role admit only the operator', () => {
    expect(assume.Statement).toHaveLength(1);
    const [a] = assume.Statement;
    expect(list(a!.Action)).toEqual(['sts:AssumeRole']);
    expect(list(a!.Resource)).toEqual([
      `arn:aws:iam::${placeholder('CANARY_ACCOUNT_ID')}:role/${placeholder('CANARY_ROLE_NAME')}`,
    ]);
    expect(trust.Version).toBe('2012-10-17');
    expect(trust.Statement).toHaveLength(1);
    const [t] = trust.Statement;
    expect(t!.Effect).toBe('Allow');
    expect(list(t!.Action)).toEqual(['sts:AssumeRole']);
    expect(list(t!.Principal.AWS)).toEqual([
      `arn:aws:iam::${placeholder('PRIMARY_ACCOUNT_ID')}:role/${placeholder('OPERATOR_ROLE_NAME')}`,
    ]);
    // The session name the operator uses (cloud/aws/credentials.ts).
    expect(t!.Condition).toEqual({ StringEquals: { 'sts:RoleSessionName': 'molecule-operator' } });
    const readme = readText(join(DEPLOY, 'README.md'));
    expect(readme).toContain('iam-canary-assume-policy.json');
    expect(readme).toContain('iam-canary-trust-policy.json');
  });

  it('passes only the tenant and workspace instance roles, only to EC2', () => {
    const [pass, ...more] = granting('iam:PassRole');
    expect(more).toEqual([]);
    expect(list(pass!.Action)).toEqual(['iam:PassRole']);
    expect(list(pass!.Resource)).toEqual([
      `arn:aws:iam::*:role/${ROLE}`,
      `arn:aws:iam::*:role/${WORKSPACE_ROLE}`,
    ]);
    expect(pass!.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } });
  });

  it('allows "*" only for reads that support no resource-level permissions', () => {
    for (const s of statements.filter((s) => list(s.Resource).includes('*'))) {
      for (const a of list(s.Action))
        expect(a, s.Sid).toMatch(
          /^(ec2:Describe\w+|secretsmanager:ListSecrets|tag:GetResources|ssm:ListCommands|ssm:GetCommandInvocation)$/,
        );
    }
    for (const a of fromCode.actions) {
      if (
        /^(ec2:Describe|secretsmanager:ListSecrets|tag:GetResources|ssm:ListCommands|ssm:GetCommandInvocation)/.test(
          a,
        )
      )
        continue;
      for (const s of granting(a)) expect(list(s.Resource), `${a} in ${s.Sid}`).not.toContain('*');
    }
  });

  it('sends Run Commands only with AWS-RunShellScript, only to instances tagged as this env’s', () => {
    const send = granting('ssm:SendCommand');
    expect(send.flatMap((s) => list(s.Resource)).sort()).toEqual([
      'arn:aws:ec2:*:*:instance/*',
      'arn:aws:ssm:*::document/AWS-RunShellScript',
    ]);
    const onInstances = send.find((s) => list(s.Resource).includes('arn:aws:ec2:*:*:instance/*'))!;
    expect(onInstances.Condition).toEqual({
      StringEquals: {
        'ssm:resourceTag/ManagedBy': ownerTags({ env: 'x', orgId: 'o', orgSlug: 's', name: 'n' })[
          TAG.managedBy
        ],
        'ssm:resourceTag/MOLECULE_ENV': ENV,
      },
    });
    const readme = readText(join(DEPLOY, 'README.md'));
    expect(readme).toContain('AmazonSSMManagedInstanceCore');
  });

  it('lets EC2 mutations touch only instances, volumes and security groups tagged as this env’s', () => {
    const mutating = [...fromCode.actions].filter(
      (a) => a.startsWith('ec2:') && !a.startsWith('ec2:Describe'),
    );
    expect(mutating.length).toBeGreaterThan(5);
    for (const action of mutating) {
      for (const s of granting(action)) {
        const owned = list(s.Resource).filter((r) => /:(instance|volume|security-group)\/\*$/.test(r));
        if (owned.length === 0) continue; // e.g. the subnet or image RunInstances uses
        const where = `${action} in ${s.Sid}`;
        const onCreate = list(s.Condition?.StringEquals?.['ec2:CreateAction']);
        if (action === 'ec2:CreateTags' && onCreate.length > 0) {
          expect(new Set(onCreate), where).toEqual(new Set(['RunInstances', 'CreateSecurityGroup']));
          expect(pinsOwnership(s, 'RequestTag'), where).toBe(true);
        } else if (action === 'ec2:RunInstances' && !owned.some((r) => r.endsWith(':security-group/*'))) {
          expect(pinsOwnership(s, 'RequestTag'), where).toBe(true);
        } else if (action === 'ec2:CreateSecurityGroup') {
          expect(pinsOwnership(s, 'RequestTag'), where).toBe(true);
        } else {
          expect(pinsOwnership(s, 'ResourceTag'), where).toBe(true);
        }
      }
    }
    // Re-tagging an existing resource cannot move it to another owner or env.
    const retag = granting('ec2:CreateTags').find((s) => pinsOwnership(s, 'ResourceTag'));
    expect(retag?.Condition?.StringEqualsIfExists).toEqual({
      'aws:RequestTag/ManagedBy': 'molecule-operator',
      'aws:RequestTag/MOLECULE_ENV': ENV,
    });
  });

  it('launches instances with IMDSv2 (one hop) and encrypted volumes only', () => {
    const run = granting('ec2:RunInstances');
    const instance = run.find((s) => list(s.Resource).some((r) => r.endsWith(':instance/*')));
    const volume = run.find((s) => list(s.Resource).some((r) => r.endsWith(':volume/*')));
    expect(instance?.Condition?.StringEquals?.['ec2:MetadataHttpTokens']).toBe('required');
    expect(instance?.Condition?.NumericLessThanEquals?.['ec2:MetadataHttpPutResponseHopLimit']).toBe('1');
    expect(volume?.Condition?.Bool?.['ec2:Encrypted']).toBe('true');
  });

  it('launches only into the configured VPC, from images of the allowed owner, and creates groups only there', () => {
    const run = granting('ec2:RunInstances');
    const resources = (kind: string) =>
      run.filter((s) => list(s.Resource).some((r) => r.includes(`:${kind}/`)));
    for (const kind of ['subnet', 'network-interface']) {
      const [s, ...more] = resources(kind);
      expect(more, kind).toEqual([]);
      expect(s!.Condition, kind).toEqual({ ArnLike: { 'ec2:Vpc': `arn:aws:ec2:*:*:vpc/${VPC}` } });
    }
    const [image, ...moreImages] = resources('image');
    expect(moreImages).toEqual([]);
    expect(image!.Condition).toEqual({ StringEquals: { 'ec2:Owner': AMI_OWNER } });
    const vpcGrants = granting('ec2:CreateSecurityGroup').filter((s) =>
      list(s.Resource).some((r) => r.includes(':vpc/')),
    );
    expect(vpcGrants.flatMap((s) => list(s.Resource))).toEqual([`arn:aws:ec2:*:*:vpc/${VPC}`]);
  });

  it('confines Secrets Manager to molecule/<env>/ and creates secrets only with our tags', () => {
    for (const action of [...fromCode.actions].filter((a) => a.startsWith('secretsmanager:'))) {
      for (const s of granting(action)) {
        if (action === 'secretsmanager:ListSecrets') continue;
        expect(list(s.Resource), `${action} in ${s.Sid}`).toEqual([
          `arn:aws:secretsmanager:*:*:secret:molecule/${ENV}/*`,
        ]);
      }
    }
    for (const s of granting('secretsmanager:CreateSecret'))
      expect(pinsOwnership(s, 'RequestTag'), s.Sid).toBe(true);
  });

  it('changes, deletes and retags only secrets tagged as this env’s, with only the tag keys the code writes', () => {
    const changing = [
      'secretsmanager:DeleteSecret',
      'secretsmanager:PutResourcePolicy',
      'secretsmanager:PutSecretValue',
      'secretsmanager:RestoreSecret',
      'secretsmanager:TagResource',
    ];
    for (const action of changing) {
      expect(fromCode.actions, action).toContain(action);
      for (const s of granting(action))
        expect(pinsOwnership(s, 'ResourceTag'), `${action} in ${s.Sid}`).toBe(true);
    }
    // Every tag key a secret is created or retagged with, from the code that builds the tags.
    const written = new Set([
      ...Object.keys(ownerTags({ env: 'e', orgId: 'o', orgSlug: 's', name: 'n' })),
      ...Object.keys(
        ownerTags({ env: 'e', orgId: 'o', orgSlug: 's', name: 'n', workspace: { id: 'w', runtime: 'r' } }),
      ),
      TAG.name,
      TAG.role,
    ]);
    for (const action of ['secretsmanager:CreateSecret', 'secretsmanager:TagResource'])
      for (const s of granting(action)) {
        const keys = new Set(list(s.Condition?.['ForAllValues:StringEquals']?.['aws:TagKeys']));
        expect(keys, `${action} in ${s.Sid}`).toEqual(written);
        if (action === 'secretsmanager:TagResource')
          expect(s.Condition?.StringEqualsIfExists, s.Sid).toEqual({
            'aws:RequestTag/ManagedBy': 'molecule-operator',
            'aws:RequestTag/MOLECULE_ENV': ENV,
          });
      }
  });

  it('has exactly the documented placeholders and is valid JSON once they are filled in', () => {
    const placeholders = new Set([...policyText.matchAll(/\$\{([^}]+)\}/g)].map((m) => m[1]));
    expect(placeholders).toEqual(new Set(PLACEHOLDERS));
    const readme = readText(join(DEPLOY, 'README.md'));
    expect(readme).toContain(
      `envsubst '${PLACEHOLDERS.map(placeholder).join(' ')}' < deploy/iam-policy.json`,
    );
    const rendered = policyText
      .replaceAll(ENV, 'prod')
      .replaceAll(ROLE, 'molecule-tenant-prod')
      .replaceAll(WORKSPACE_ROLE, 'molecule-workspace-prod')
      .replaceAll(VPC, 'vpc-0123456789abcdef0')
      .replaceAll(AMI_OWNER, 'amazon');
    expect(rendered).not.toMatch(/\$\{/);
    expect(JSON.parse(rendered).Statement).toHaveLength(statements.length);
  });
});
