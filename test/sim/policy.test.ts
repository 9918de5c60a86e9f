import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/sim/iam.js';
import { evaluate, isPublic, parsePolicy } from '../../src/sim/policy.js';
import { AwsError } from '../../src/sim/protocol.js';

const ACCOUNT = '123456789012';
const TENANT = `arn:aws:iam::${ACCOUNT}:role/molecule-tenant`;
const WORKSPACE = `arn:aws:iam::${ACCOUNT}:role/molecule-workspace`;
const instance = (id: string) => `arn:aws:ec2:us-east-1:${ACCOUNT}:instance/${id}`;
const SECRET = `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:molecule/test/tenant/o/bootstrap-AbCdEf`;

const roleSession = (role: string, instanceId?: string): Principal => ({
  account: ACCOUNT,
  arn: `arn:aws:sts::${ACCOUNT}:assumed-role/${role.split('/').at(-1)}/${instanceId ?? 'session'}`,
  userId: 'AROAEXAMPLE:session',
  roleArn: role,
  ...(instanceId ? { sourceInstanceArn: instance(instanceId) } : {}),
});
const admin: Principal = { account: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/admin`, userId: 'AIDA' };

const decide = (policy: unknown, principal: Principal, action = 'secretsmanager:GetSecretValue') =>
  evaluate(parsePolicy(JSON.stringify(policy)), {
    principal,
    action,
    resource: SECRET,
  });

/** The bundle policy's shape: allow from the current instance, deny the role from any other. */
const bundle = (current: string[]) => ({
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Principal: { AWS: TENANT },
      Action: 'secretsmanager:GetSecretValue',
      Resource: '*',
      Condition: { ArnEquals: { 'ec2:SourceInstanceARN': current.map(instance) } },
    },
    {
      Effect: 'Deny',
      Principal: { AWS: TENANT },
      Action: 'secretsmanager:*',
      Resource: '*',
      Condition: { ArnNotEquals: { 'ec2:SourceInstanceARN': current.map(instance) } },
    },
    { Effect: 'Deny', Principal: { AWS: WORKSPACE }, Action: 'secretsmanager:*', Resource: '*' },
  ],
});

describe('resource policy evaluation', () => {
  it('allows the tenant role from the named instance only', () => {
    const p = bundle(['i-current']);
    expect(decide(p, roleSession(TENANT, 'i-current'))).toBe('allow');
    expect(decide(p, roleSession(TENANT, 'i-other'))).toBe('explicitDeny');
    // The role's credentials used off an instance carry no SourceInstanceARN: a negated
    // operator on a missing key holds, so the Deny applies.
    expect(decide(p, roleSession(TENANT))).toBe('explicitDeny');
    expect(decide(p, roleSession(WORKSPACE, 'i-current'))).toBe('explicitDeny');
    // Statements about other principals say nothing about the administrator.
    expect(decide(p, admin)).toBe('implicitDeny');
  });

  it('lets an explicit Deny win over an Allow, and matches actions and resources with wildcards', () => {
    const p = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: '*', Action: 'secretsmanager:Get*', Resource: '*' },
        {
          Effect: 'Deny',
          Principal: { AWS: ACCOUNT },
          Action: 'secretsmanager:GetSecretValue',
          Resource: 'arn:aws:secretsmanager:*:*:secret:molecule/test/tenant/*',
        },
      ],
    };
    expect(decide(p, admin)).toBe('explicitDeny');
    expect(decide(p, admin, 'secretsmanager:GetResourcePolicy')).toBe('allow');
    expect(decide(p, admin, 'secretsmanager:PutSecretValue')).toBe('implicitDeny');
  });

  it('evaluates Like, Null and IfExists as IAM does', () => {
    const like = {
      Statement: [
        {
          Effect: 'Allow',
          Principal: { AWS: [TENANT, WORKSPACE] },
          Action: 'secretsmanager:GetSecretValue',
          Condition: { ArnLike: { 'ec2:SourceInstanceArn': `arn:aws:ec2:*:${ACCOUNT}:instance/i-a*` } },
        },
      ],
    };
    expect(decide(like, roleSession(TENANT, 'i-abc'))).toBe('allow');
    expect(decide(like, roleSession(TENANT, 'i-bcd'))).toBe('implicitDeny');
    const fromInstance = {
      Statement: [
        {
          Effect: 'Allow',
          Principal: { AWS: WORKSPACE },
          Action: 'secretsmanager:GetSecretValue',
          Condition: { Null: { 'ec2:SourceInstanceARN': 'false' } },
        },
      ],
    };
    expect(decide(fromInstance, roleSession(WORKSPACE, 'i-w'))).toBe('allow');
    expect(decide(fromInstance, roleSession(WORKSPACE))).toBe('implicitDeny');
    const ifExists = {
      Statement: [
        {
          Effect: 'Allow',
          Principal: '*',
          Action: '*',
          Condition: { StringEqualsIfExists: { 'ec2:SourceInstanceARN': instance('i-x') } },
        },
      ],
    };
    expect(decide(ifExists, admin)).toBe('allow');
    expect(decide(ifExists, roleSession(TENANT, 'i-y'))).toBe('implicitDeny');
  });

  it('refuses malformed documents and flags public ones', () => {
    const malformed = (text: string) => {
      try {
        parsePolicy(text);
        return undefined;
      } catch (e) {
        return (e as AwsError).code;
      }
    };
    expect(malformed('{')).toBe('MalformedPolicyDocumentException');
    expect(malformed(JSON.stringify({ Statement: [] }))).toBe('MalformedPolicyDocumentException');
    expect(malformed(JSON.stringify({ Statement: [{ Effect: 'Allow', Action: 'secretsmanager:*' }] }))).toBe(
      'MalformedPolicyDocumentException',
    );
    expect(
      malformed(
        JSON.stringify({
          Statement: [{ Effect: 'Allow', Principal: '*', Action: '*', Condition: { DateGreaterThan: {} } }],
        }),
      ),
    ).toBe('MalformedPolicyDocumentException');
    const open = parsePolicy(
      JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: '*' }] }),
    );
    expect(isPublic(open)).toBe(true);
    expect(isPublic(parsePolicy(JSON.stringify(bundle(['i-1']))))).toBe(false);
    expect(new AwsError('x', 'y').status).toBe(400);
  });
});
