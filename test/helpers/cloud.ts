import {
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  EC2Client,
  type Filter,
} from '@aws-sdk/client-ec2';
import {
  GetSecretValueCommand,
  ListSecretsCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import Cloudflare from 'cloudflare';
import type { Simulator } from '../../src/sim/index.js';
import { SIM_CREDENTIALS } from './stack.js';

/**
 * Clients signed with what the instance's metadata service would hand it (its role, with its
 * ARN as `ec2:SourceInstanceARN`); undefined unless it is running with a profile.
 */
export function asInstance(sim: Simulator, instanceId: string, region = sim.seed.region) {
  let creds: ReturnType<Simulator['instanceCredentials']>;
  try {
    creds = sim.instanceCredentials(instanceId);
  } catch {
    return undefined; // not running, or no instance profile
  }
  const aws = {
    endpoint: sim.awsEndpoint,
    region,
    credentials: {
      accessKeyId: creds.AccessKeyId,
      secretAccessKey: creds.SecretAccessKey,
      sessionToken: creds.Token,
    },
    maxAttempts: 1,
  };
  const sm = new SecretsManagerClient(aws);
  return {
    ec2: new EC2Client(aws),
    sm,
    /** The secret's value, or the error code AWS answered with. */
    async read(secretId: string): Promise<{ value?: string; error?: string }> {
      try {
        const res = await sm.send(new GetSecretValueCommand({ SecretId: secretId }));
        return { value: res.SecretString ?? '' };
      } catch (e) {
        return { error: (e as { name?: string }).name ?? String(e) };
      }
    },
  };
}

/**
 * Reads the simulated cloud with the raw SDKs, independently of the operator's own adapters
 * and database: what tests assert against.
 */
export function cloudReader(sim: Simulator, as?: { roleArn: string; region: string }) {
  const aws = {
    endpoint: sim.awsEndpoint,
    region: as?.region ?? sim.seed.region,
    credentials: as ? assumed(sim, as.roleArn) : SIM_CREDENTIALS,
    maxAttempts: 1,
  };
  const ec2 = new EC2Client(aws);
  const sm = new SecretsManagerClient(aws);
  const cf = new Cloudflare({ apiToken: sim.seed.apiToken, baseURL: sim.cloudflareBaseUrl, maxRetries: 0 });
  const tagFilters = (tags: Record<string, string>): Filter[] =>
    Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] }));

  return {
    ec2,
    sm,
    cf,
    /** Instances that are not terminated, optionally filtered by tags. */
    async liveInstances(tags: Record<string, string> = {}) {
      const res = await ec2.send(
        new DescribeInstancesCommand({
          Filters: [
            ...tagFilters(tags),
            {
              Name: 'instance-state-name',
              Values: ['pending', 'running', 'stopping', 'stopped', 'shutting-down'],
            },
          ],
        }),
      );
      return (res.Reservations ?? []).flatMap((r) => r.Instances ?? []);
    },
    async securityGroups(tags: Record<string, string> = {}) {
      const res = await ec2.send(new DescribeSecurityGroupsCommand({ Filters: tagFilters(tags) }));
      return (res.SecurityGroups ?? []).filter((g) => g.GroupId !== sim.seed.eicSecurityGroupId);
    },
    /** Secrets not scheduled for deletion. */
    async liveSecrets(prefix = 'molecule/') {
      const res = await sm.send(
        new ListSecretsCommand({
          Filters: [{ Key: 'name', Values: [prefix] }],
          IncludePlannedDeletion: true,
        }),
      );
      return (res.SecretList ?? []).filter((s) => !s.DeletedDate);
    },
    async secretValue(name: string): Promise<Record<string, string>> {
      const res = await sm.send(new GetSecretValueCommand({ SecretId: name }));
      return JSON.parse(res.SecretString ?? '{}');
    },
    async liveTunnels() {
      const out = [];
      for await (const t of cf.zeroTrust.tunnels.cloudflared.list({
        account_id: sim.seed.cloudflareAccountId,
        is_deleted: false,
      }))
        out.push(t);
      return out;
    },
    async dnsRecords() {
      const out = [];
      for await (const r of cf.dns.records.list({ zone_id: sim.seed.cloudflareZoneId })) out.push(r);
      return out;
    },
    async tunnelConfig(id: string) {
      return cf.zeroTrust.tunnels.cloudflared.configurations.get(id, {
        account_id: sim.seed.cloudflareAccountId,
      });
    },
    /** Decoded user-data of an instance, from the simulator's state dump. */
    userData(instanceId: string): string {
      return sim.dump().instances.find((i) => i.id === instanceId)?.userDataDecoded ?? '';
    },
    /** Root volume size of an instance, from the simulator's state dump. */
    volumeGb(instanceId: string): number | undefined {
      return sim.dump().instances.find((i) => i.id === instanceId)?.volumes[0]?.size;
    },
  };
}

export type CloudReader = ReturnType<typeof cloudReader>;

/**
 * Credentials of a role in another account, assumed from the test credentials. Assumed anew for
 * every call: tests move the simulator's clock past any session's expiry.
 */
function assumed(sim: Simulator, roleArn: string) {
  const sts = new STSClient({
    endpoint: sim.awsEndpoint,
    region: sim.seed.region,
    credentials: SIM_CREDENTIALS,
    maxAttempts: 1,
  });
  return async () => {
    const c = (await sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: 'test-reader' })))
      .Credentials!;
    return {
      accessKeyId: c.AccessKeyId!,
      secretAccessKey: c.SecretAccessKey!,
      sessionToken: c.SessionToken!,
      expiration: new Date(),
    };
  };
}
