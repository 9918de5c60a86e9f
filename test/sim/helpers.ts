import { EC2Client, RunInstancesCommand, type RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { ResourceGroupsTaggingAPIClient } from '@aws-sdk/client-resource-groups-tagging-api';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import Cloudflare from 'cloudflare';
import { type SimOptions, type Simulator, startSimulator } from '../../src/sim/index.js';

/** Real SDK clients pointed at a simulator on an ephemeral port. */
export interface Harness {
  sim: Simulator;
  ec2: EC2Client;
  sm: SecretsManagerClient;
  tagging: ResourceGroupsTaggingAPIClient;
  cf: Cloudflare;
  close(): Promise<void>;
}

export async function startHarness(opts: SimOptions = {}, maxAttempts = 1): Promise<Harness> {
  const sim = await startSimulator({ port: 0, seed: 42, ...opts });
  const cfg = {
    endpoint: sim.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts,
  };
  const ec2 = new EC2Client(cfg);
  const sm = new SecretsManagerClient(cfg);
  const tagging = new ResourceGroupsTaggingAPIClient(cfg);
  const cf = new Cloudflare({
    apiToken: 'sim-cloudflare-token',
    baseURL: sim.cloudflareBaseUrl,
    maxRetries: 0,
  });
  return {
    sim,
    ec2,
    sm,
    tagging,
    cf,
    async close() {
      ec2.destroy();
      sm.destroy();
      tagging.destroy();
      await sim.close();
    },
  };
}

export const AMI = 'ami-0ea3c35c5c3284d82';

export function tags(t: Record<string, string>): { Key: string; Value: string }[] {
  return Object.entries(t).map(([Key, Value]) => ({ Key, Value }));
}

export async function launch(
  h: Harness,
  instanceTags: Record<string, string> = {},
  extra: Partial<RunInstancesCommandInput> = {},
) {
  const out = await h.ec2.send(
    new RunInstancesCommand({
      ImageId: AMI,
      InstanceType: 't3.small',
      MinCount: 1,
      MaxCount: 1,
      SubnetId: h.sim.seed.subnetId,
      TagSpecifications: [{ ResourceType: 'instance', Tags: tags(instanceTags) }],
      ...extra,
    }),
  );
  return out.Instances![0]!;
}

/** Captures the rejection of a promise (the SDK's error object). */
export async function failure(p: Promise<unknown>): Promise<{
  name: string;
  message: string;
  $metadata: { httpStatusCode?: number; attempts?: number };
  status?: number;
  errors?: { code: number; message: string }[];
}> {
  try {
    await p;
  } catch (e) {
    return e as never;
  }
  throw new Error('expected the call to fail');
}

/** Polls until `check` passes or the deadline expires (no fixed sleeps). */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error('condition not met before the deadline');
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
