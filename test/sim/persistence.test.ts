import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunInstancesCommand } from '@aws-sdk/client-ec2';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  GetResourcePolicyCommand,
  PutResourcePolicyCommand,
} from '@aws-sdk/client-secrets-manager';
import { ListCommandsCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, describe, expect, it } from 'vitest';
import { type Simulator, STRICT_FIDELITY } from '../../src/sim/index.js';
import { AMI, failure, startHarness } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'sim-persist-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('state file', () => {
  it('keeps Run Commands, resource policies and blocked secret names across a restart', async () => {
    const stateFile = join(dir, 'state.json');
    let h = await startHarness({ stateFile });
    const opened: Simulator[] = [h.sim];
    const ssmOf = (url: string) =>
      new SSMClient({
        endpoint: url,
        region: 'us-east-1',
        credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
        maxAttempts: 1,
      });
    try {
      h.sim.setFaults({ secretNameReuseMs: 3_600_000 });
      const i = (await h.ec2.send(new RunInstancesCommand({ ImageId: AMI, MinCount: 1, MaxCount: 1 })))
        .Instances![0]!.InstanceId!;
      h.sim.advance(1_000);
      const ssm = ssmOf(h.sim.url);
      const sent = await ssm.send(
        new SendCommandCommand({
          DocumentName: 'AWS-RunShellScript',
          InstanceIds: [i],
          Parameters: { commands: ['true'] },
          Comment: 'kept',
        }),
      );
      ssm.destroy();
      await h.sm.send(new CreateSecretCommand({ Name: 'kept/policy', SecretString: 'x' }));
      const policy = JSON.stringify({
        Statement: [{ Effect: 'Deny', Principal: '*', Action: 'secretsmanager:*', Resource: '*' }],
      });
      await h.sm.send(new PutResourcePolicyCommand({ SecretId: 'kept/policy', ResourcePolicy: policy }));
      await h.sm.send(new CreateSecretCommand({ Name: 'kept/blocked', SecretString: 'x' }));
      await h.sm.send(
        new DeleteSecretCommand({ SecretId: 'kept/blocked', ForceDeleteWithoutRecovery: true }),
      );
      await h.close();

      h = await startHarness({ stateFile, faults: STRICT_FIDELITY });
      opened.push(h.sim);
      const again = ssmOf(h.sim.url);
      const listed = await again.send(new ListCommandsCommand({ InstanceId: i }));
      expect(listed.Commands?.map((c) => [c.CommandId, c.Comment])).toEqual([
        [sent.Command!.CommandId, 'kept'],
      ]);
      again.destroy();
      expect(
        (await h.sm.send(new GetResourcePolicyCommand({ SecretId: 'kept/policy' }))).ResourcePolicy,
      ).toBe(policy);
      expect(
        (await failure(h.sm.send(new CreateSecretCommand({ Name: 'kept/blocked', SecretString: 'y' })))).name,
      ).toBe('InvalidRequestException');
      expect(h.sim.dump().instances.find((x) => x.id === i)?.commands?.[0]?.comment).toBe('kept');
      await h.close();
    } finally {
      for (const s of opened) await s.close();
    }
  });
});
