import { DescribeInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import {
  CreateSecretCommand,
  DeleteResourcePolicyCommand,
  GetResourcePolicyCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  PutResourcePolicyCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failure, type Harness, launch, startHarness } from './helpers.js';

let h: Harness;
const ACCOUNT = '123456789012';
const TENANT_ROLE = `arn:aws:iam::${ACCOUNT}:role/molecule-tenant`;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

async function instance(profile: string): Promise<string> {
  const i = await launch(
    h,
    {},
    {
      IamInstanceProfile: { Name: profile },
      MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1, HttpEndpoint: 'enabled' },
    },
  );
  h.sim.advance(1_000);
  return i.InstanceId!;
}

/** A Secrets Manager client signed with what the instance's metadata service hands out. */
function asInstance(instanceId: string): SecretsManagerClient {
  const c = h.sim.instanceCredentials(instanceId);
  return new SecretsManagerClient({
    endpoint: h.sim.url,
    region: 'us-east-1',
    credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.Token },
    maxAttempts: 1,
  });
}

const bundlePolicy = (instanceId: string, extra: object[] = []) =>
  JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Principal: { AWS: TENANT_ROLE },
        Action: 'secretsmanager:GetSecretValue',
        Resource: '*',
        Condition: {
          ArnEquals: { 'ec2:SourceInstanceARN': `arn:aws:ec2:us-east-1:${ACCOUNT}:instance/${instanceId}` },
        },
      },
      ...extra,
    ],
  });

async function bundle(name: string, policy?: string): Promise<string> {
  const made = await h.sm.send(new CreateSecretCommand({ Name: name, SecretString: `{"of":"${name}"}` }));
  if (policy) await h.sm.send(new PutResourcePolicyCommand({ SecretId: name, ResourcePolicy: policy }));
  return made.ARN!;
}

describe('instance credentials and secret resource policies', () => {
  it('hands out the profile role’s credentials, carrying the instance ARN', async () => {
    const id = await instance('molecule-tenant');
    const c = h.sim.instanceCredentials(id);
    expect(c).toMatchObject({
      Code: 'Success',
      Type: 'AWS-HMAC',
      RoleArn: TENANT_ROLE,
      InstanceArn: `arn:aws:ec2:us-east-1:${ACCOUNT}:instance/${id}`,
    });
    expect(c.AccessKeyId).toMatch(/^ASIA/);
    const sts = new STSClient({
      endpoint: h.sim.url,
      region: 'us-east-1',
      credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.Token },
      maxAttempts: 1,
    });
    expect(await sts.send(new GetCallerIdentityCommand({}))).toMatchObject({
      Account: ACCOUNT,
      Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/molecule-tenant/${id}`,
    });
    sts.destroy();
    // MetadataOptions are stored and described.
    const described = await h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(described.Reservations?.[0]?.Instances?.[0]?.MetadataOptions).toMatchObject({
      HttpTokens: 'required',
      HttpPutResponseHopLimit: 1,
      HttpEndpoint: 'enabled',
    });
  });

  it('refuses unknown, terminated and profile-less instances over the admin API', async () => {
    const get = (id: string) => fetch(`${h.sim.url}/_sim/instance-credentials/${id}`);
    expect((await get('i-0123456789abcdef0')).status).toBe(404);
    const bare = (await launch(h)).InstanceId!;
    h.sim.advance(1_000);
    expect((await get(bare)).status).toBe(404);
    const id = await instance('molecule-tenant');
    const ok = await get(id);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { RoleArn: string }).RoleArn).toBe(TENANT_ROLE);
    await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    h.sim.advance(1_000);
    expect((await get(id)).status).toBe(409);
  });

  it('lets only the org’s current tenant instance read its bundle', async () => {
    const a = await instance('molecule-tenant');
    const b = await instance('molecule-tenant');
    const ws = await instance('molecule-workspace');
    await bundle('molecule/test/tenant/a/bootstrap', bundlePolicy(a));
    await bundle('molecule/test/tenant/b/bootstrap', bundlePolicy(b));
    await bundle('molecule/test/tenant/none/bootstrap');
    const read = async (who: string, name: string) => {
      const sm = asInstance(who);
      try {
        const out = await sm.send(new GetSecretValueCommand({ SecretId: name }));
        return out.SecretString;
      } catch (e) {
        return (e as Error).name;
      } finally {
        sm.destroy();
      }
    };
    const matrix = {
      'a reads a': await read(a, 'molecule/test/tenant/a/bootstrap'),
      'a reads b': await read(a, 'molecule/test/tenant/b/bootstrap'),
      'b reads a': await read(b, 'molecule/test/tenant/a/bootstrap'),
      'workspace reads a': await read(ws, 'molecule/test/tenant/a/bootstrap'),
      'a reads a secret without policy': await read(a, 'molecule/test/tenant/none/bootstrap'),
      'a reads a missing secret': await read(a, 'molecule/test/tenant/missing/bootstrap'),
    };
    expect(matrix).toEqual({
      'a reads a': '{"of":"molecule/test/tenant/a/bootstrap"}',
      'a reads b': 'AccessDeniedException',
      'b reads a': 'AccessDeniedException',
      'workspace reads a': 'AccessDeniedException',
      'a reads a secret without policy': 'AccessDeniedException',
      'a reads a missing secret': 'AccessDeniedException',
    });
    // The role has no permission of its own: listing is denied too.
    const sm = asInstance(a);
    expect((await failure(sm.send(new ListSecretsCommand({})))).name).toBe('AccessDeniedException');
    sm.destroy();
  });

  it('follows a replaced instance: old credentials denied, new allowed; an explicit Deny wins', async () => {
    const old = await instance('molecule-tenant');
    const name = 'molecule/test/tenant/replaced/bootstrap';
    await bundle(name, bundlePolicy(old));
    const oldClient = asInstance(old);
    expect((await oldClient.send(new GetSecretValueCommand({ SecretId: name }))).SecretString).toContain(
      name,
    );
    await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [old] }));
    const next = await instance('molecule-tenant');
    await h.sm.send(new PutResourcePolicyCommand({ SecretId: name, ResourcePolicy: bundlePolicy(next) }));
    expect((await failure(oldClient.send(new GetSecretValueCommand({ SecretId: name })))).name).toBe(
      'AccessDeniedException',
    );
    const nextClient = asInstance(next);
    expect((await nextClient.send(new GetSecretValueCommand({ SecretId: name }))).SecretString).toContain(
      name,
    );
    await h.sm.send(
      new PutResourcePolicyCommand({
        SecretId: name,
        ResourcePolicy: bundlePolicy(next, [
          {
            Effect: 'Deny',
            Principal: { AWS: '*' },
            Action: 'secretsmanager:*',
            Resource: '*',
            Condition: { StringLike: { 'aws:PrincipalArn': ['arn:aws:iam::*:role/molecule-*'] } },
          },
        ]),
      }),
    );
    const denied = await failure(nextClient.send(new GetSecretValueCommand({ SecretId: name })));
    expect(denied.name).toBe('AccessDeniedException');
    expect(denied.message).toMatch(/explicit deny/);
    oldClient.destroy();
    nextClient.destroy();
  });

  it('stores, returns and deletes policies; BlockPublicPolicy refuses a public one', async () => {
    const name = 'molecule/test/tenant/policy/bootstrap';
    await bundle(name);
    expect(
      (await h.sm.send(new GetResourcePolicyCommand({ SecretId: name }))).ResourcePolicy,
    ).toBeUndefined();
    const policy = bundlePolicy('i-0123456789abcdef0');
    await h.sm.send(new PutResourcePolicyCommand({ SecretId: name, ResourcePolicy: policy }));
    expect((await h.sm.send(new GetResourcePolicyCommand({ SecretId: name }))).ResourcePolicy).toBe(policy);
    const open = JSON.stringify({
      Statement: [
        { Effect: 'Allow', Principal: '*', Action: 'secretsmanager:GetSecretValue', Resource: '*' },
      ],
    });
    expect(
      (
        await failure(
          h.sm.send(
            new PutResourcePolicyCommand({ SecretId: name, ResourcePolicy: open, BlockPublicPolicy: true }),
          ),
        )
      ).name,
    ).toBe('PublicPolicyException');
    expect(
      (
        await failure(
          h.sm.send(new PutResourcePolicyCommand({ SecretId: name, ResourcePolicy: '{"Statement":' })),
        )
      ).name,
    ).toBe('MalformedPolicyDocumentException');
    await h.sm.send(new DeleteResourcePolicyCommand({ SecretId: name }));
    expect(
      (await h.sm.send(new GetResourcePolicyCommand({ SecretId: name }))).ResourcePolicy,
    ).toBeUndefined();
    expect(h.sim.dump().secrets.find((s) => s.name === name)?.resourcePolicy).toBeUndefined();
  });
});
