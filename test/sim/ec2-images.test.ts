import { DescribeImagesCommand, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

describe('EC2 DescribeImages and the root device', () => {
  it('describes any well-formed AMI with its root device name', async () => {
    const res = await h.ec2.send(new DescribeImagesCommand({ ImageIds: ['ami-0ea3c35c5c3284d82'] }));
    expect(res.Images).toHaveLength(1);
    expect(res.Images?.[0]).toMatchObject({
      ImageId: 'ami-0ea3c35c5c3284d82',
      RootDeviceName: '/dev/xvda',
      RootDeviceType: 'ebs',
      State: 'available',
    });
  });

  it('rejects a malformed AMI id', async () => {
    await expect(h.ec2.send(new DescribeImagesCommand({ ImageIds: ['ami-nope'] }))).rejects.toMatchObject({
      name: 'InvalidAMIID.Malformed',
      $metadata: { httpStatusCode: 400 },
    });
  });

  it('sizes the root volume only when the mapping names the root device', async () => {
    const launch = async (DeviceName: string) => {
      const r = await h.ec2.send(
        new RunInstancesCommand({
          ImageId: 'ami-0ea3c35c5c3284d82',
          MinCount: 1,
          MaxCount: 1,
          BlockDeviceMappings: [{ DeviceName, Ebs: { VolumeSize: 30 } }],
        }),
      );
      return h.sim
        .dump()
        .instances.find((i) => i.id === r.Instances?.[0]?.InstanceId)!
        .volumes.map((v) => v.size);
    };
    expect(await launch('/dev/xvda')).toEqual([30]);
    expect(await launch('/dev/sda1')).toEqual([8, 30]); // an extra data volume, as AWS would attach
  });
});
