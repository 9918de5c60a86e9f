import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateSecurityGroupCommand,
  DescribeSecurityGroupsCommand,
  DescribeVpcsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { ListSecretsCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Simulator, startSimulator } from '../../src/sim/index.js';

const CANARY_ROLE = 'arn:aws:iam::222222222222:role/molecule-operator-canary';
const STATIC = { accessKeyId: 'AKIDSTATIC', secretAccessKey: 'static' };

let sim: Simulator;
const client = <C>(make: new (c: object) => C, credentials: object, region = 'us-east-1'): C =>
  new make({ endpoint: sim.url, region, credentials, maxAttempts: 1 });

async function assume(roleArn = CANARY_ROLE, DurationSeconds = 900) {
  const sts = client(STSClient, STATIC);
  const out = await sts.send(
    new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: 'molecule-operator', DurationSeconds }),
  );
  sts.destroy();
  const c = out.Credentials!;
  return {
    accessKeyId: c.AccessKeyId!,
    secretAccessKey: c.SecretAccessKey!,
    sessionToken: c.SessionToken!,
    expiration: c.Expiration!,
  };
}

beforeAll(async () => {
  sim = await startSimulator({ port: 0, seed: 7 });
});
afterAll(async () => {
  await sim.close();
});

describe('accounts and regions', () => {
  it('answers who is calling: keys it never issued are the default account', async () => {
    const sts = client(STSClient, STATIC);
    const me = await sts.send(new GetCallerIdentityCommand({}));
    expect(me.Account).toBe(sim.seed.accountId);
    expect(me.Arn).toMatch(/^arn:aws:iam::123456789012:/);
    sts.destroy();
  });

  it('AssumeRole hands out credentials of the role’s account, which see only that account', async () => {
    const creds = await assume();
    expect(creds.accessKeyId).toMatch(/^ASIA/);
    expect(creds.expiration.getTime()).toBeGreaterThan(sim.now());
    const sts = client(STSClient, creds);
    const me = await sts.send(new GetCallerIdentityCommand({}));
    expect(me).toMatchObject({
      Account: '222222222222',
      Arn: 'arn:aws:sts::222222222222:assumed-role/molecule-operator-canary/molecule-operator',
    });
    sts.destroy();

    // A new account comes with a default VPC and subnets, and none of the default account's objects.
    const canary = client(EC2Client, creds);
    const vpcs = (await canary.send(new DescribeVpcsCommand({}))).Vpcs ?? [];
    expect(vpcs).toEqual([
      expect.objectContaining({ IsDefault: true, CidrBlock: '172.31.0.0/16', OwnerId: '222222222222' }),
    ]);
    expect(vpcs[0]!.VpcId).toBe(sim.network('222222222222').vpcId);
    const made = await canary.send(
      new CreateSecurityGroupCommand({
        GroupName: 'only-in-canary',
        Description: 'd',
        VpcId: vpcs[0]!.VpcId,
      }),
    );
    const primary = client(EC2Client, STATIC);
    const seen = await primary.send(new DescribeSecurityGroupsCommand({}));
    expect((seen.SecurityGroups ?? []).map((g) => g.GroupId)).not.toContain(made.GroupId);
    expect((await primary.send(new DescribeVpcsCommand({}))).Vpcs?.map((v) => v.VpcId)).toEqual([
      sim.seed.vpcId,
    ]);
    // The region of the signature is a partition of its own.
    const west = client(EC2Client, creds, 'us-west-2');
    const westGroups = (await west.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups ?? [];
    expect(westGroups.map((g) => g.GroupName)).toEqual(['default']);
    expect(
      sim
        .dump()
        .partitions.map((p) => `${p.account}/${p.region}`)
        .sort(),
    ).toEqual(['222222222222/us-east-1', '222222222222/us-west-2']);
    for (const c of [canary, primary, west]) c.destroy();
  });

  it('refuses expired credentials with each protocol’s ExpiredToken, and forged session tokens', async () => {
    const creds = await assume(CANARY_ROLE, 900);
    sim.advance(901_000);
    const sts = client(STSClient, creds);
    await expect(sts.send(new GetCallerIdentityCommand({}))).rejects.toMatchObject({
      name: 'ExpiredToken',
      $metadata: { httpStatusCode: 403 },
    });
    const ec2 = client(EC2Client, creds);
    await expect(ec2.send(new DescribeVpcsCommand({}))).rejects.toMatchObject({ name: 'ExpiredToken' });
    const sm = client(SecretsManagerClient, creds);
    await expect(sm.send(new ListSecretsCommand({}))).rejects.toMatchObject({
      name: 'ExpiredTokenException',
    });

    const forged = client(STSClient, { ...STATIC, sessionToken: 'never-issued' });
    await expect(forged.send(new GetCallerIdentityCommand({}))).rejects.toMatchObject({
      name: 'InvalidClientTokenId',
    });
    const forgedEc2 = client(EC2Client, { ...STATIC, sessionToken: 'never-issued' });
    await expect(forgedEc2.send(new DescribeVpcsCommand({}))).rejects.toMatchObject({ name: 'AuthFailure' });
    for (const c of [sts, ec2, sm, forged, forgedEc2]) c.destroy();
  });

  it('validates AssumeRole and refuses a role it is told to deny', async () => {
    await expect(assume('arn:aws:iam::2222:role/x')).rejects.toMatchObject({ name: 'ValidationError' });
    await expect(assume(CANARY_ROLE, 60)).rejects.toMatchObject({ name: 'ValidationError' });
    sim.setFaults({ deniedRoles: [CANARY_ROLE] });
    try {
      await expect(assume()).rejects.toMatchObject({ name: 'AccessDenied' });
    } finally {
      sim.setFaults({ deniedRoles: [] });
    }
  });

  it('admits only the principals a role trusts', async () => {
    // By default the default account's own credentials may assume any role; a role session may not.
    const session = await assume();
    const chained = client(STSClient, session);
    await expect(
      chained.send(new AssumeRoleCommand({ RoleArn: CANARY_ROLE, RoleSessionName: 'chained' })),
    ).rejects.toMatchObject({ name: 'AccessDenied' });
    chained.destroy();
    const OPERATOR_ROLE = 'arn:aws:iam::123456789012:role/molecule-operator';
    sim.setFaults({ roleTrust: { [CANARY_ROLE]: [OPERATOR_ROLE] } });
    try {
      await expect(assume()).rejects.toMatchObject({
        name: 'AccessDenied',
        $metadata: { httpStatusCode: 403 },
      });
      const operator = client(STSClient, await assume(OPERATOR_ROLE));
      const out = await operator.send(new AssumeRoleCommand({ RoleArn: CANARY_ROLE, RoleSessionName: 'op' }));
      expect(out.AssumedRoleUser?.Arn).toBe(
        'arn:aws:sts::222222222222:assumed-role/molecule-operator-canary/op',
      );
      operator.destroy();
    } finally {
      sim.setFaults({ roleTrust: {} });
    }
  });

  it('keeps every account’s objects and the credentials it issued across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-accounts-'));
    const opened: Simulator[] = [];
    try {
      const stateFile = join(dir, 'state.json');
      let s = await startSimulator({ port: 0, seed: 9, stateFile });
      opened.push(s);
      const sts = new STSClient({
        endpoint: s.url,
        region: 'us-east-1',
        credentials: STATIC,
        maxAttempts: 1,
      });
      const c = (await sts.send(new AssumeRoleCommand({ RoleArn: CANARY_ROLE, RoleSessionName: 'restart' })))
        .Credentials!;
      const creds = {
        accessKeyId: c.AccessKeyId!,
        secretAccessKey: c.SecretAccessKey!,
        sessionToken: c.SessionToken!,
      };
      const ec2 = new EC2Client({ endpoint: s.url, region: 'us-east-1', credentials: creds, maxAttempts: 1 });
      const made = await ec2.send(new CreateSecurityGroupCommand({ GroupName: 'kept', Description: 'd' }));
      await s.close();
      s = await startSimulator({ port: 0, seed: 9, stateFile });
      opened.push(s);
      const again = new EC2Client({
        endpoint: s.url,
        region: 'us-east-1',
        credentials: creds,
        maxAttempts: 1,
      });
      const groups = (await again.send(new DescribeSecurityGroupsCommand({ GroupIds: [made.GroupId!] })))
        .SecurityGroups;
      expect(groups?.[0]?.OwnerId).toBe('222222222222');
      for (const x of [sts, ec2, again]) x.destroy();
      await s.close();
    } finally {
      for (const o of opened) await o.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
