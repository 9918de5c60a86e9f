import {
  CreateSecurityGroupCommand,
  CreateTagsCommand,
  DeleteTagsCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeVpcsCommand,
  EC2Client,
  type Instance,
  ModifyInstanceAttributeCommand,
  paginateDescribeInstances,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AMI, eventually, failure, type Harness, launch, startHarness, tags } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  // A very long `pending` lets tests see each state and move on with advance().
  h = await startHarness({ profile: 'realistic', faults: { buckets: false, latencyMs: 0 } });
});
afterAll(async () => {
  await h.close();
});

async function describeOne(id: string): Promise<Instance> {
  const out = await h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  return out.Reservations![0]!.Instances![0]!;
}

describe('RunInstances', () => {
  it('launches a pending instance with everything the request asked for', async () => {
    const out = await h.ec2.send(
      new RunInstancesCommand({
        ImageId: AMI,
        InstanceType: 't3.medium',
        MinCount: 1,
        MaxCount: 1,
        KeyName: 'ops',
        SubnetId: h.sim.seed.subnetId,
        IamInstanceProfile: { Name: 'tenant-profile' },
        MetadataOptions: { HttpTokens: 'required' },
        UserData: Buffer.from('#!/bin/bash\necho hi').toString('base64'),
        BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeSize: 40, VolumeType: 'gp3' } }],
        TagSpecifications: [
          { ResourceType: 'instance', Tags: tags({ OrgID: 'org-1', Role: 'tenant' }) },
          { ResourceType: 'volume', Tags: tags({ OrgID: 'org-1' }) },
        ],
        ClientToken: 'org-1-1',
      }),
    );
    expect(out.$metadata.httpStatusCode).toBe(200);
    expect(out.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(out.ReservationId).toMatch(/^r-[0-9a-f]{17}$/);
    expect(out.OwnerId).toBe('123456789012');
    const i = out.Instances![0]!;
    expect(i.InstanceId).toMatch(/^i-[0-9a-f]{17}$/);
    expect(i.State).toEqual({ Code: 0, Name: 'pending' });
    expect(i).toMatchObject({
      ImageId: AMI,
      InstanceType: 't3.medium',
      KeyName: 'ops',
      SubnetId: h.sim.seed.subnetId,
      VpcId: h.sim.seed.vpcId,
      ClientToken: 'org-1-1',
      MetadataOptions: { HttpTokens: 'required' },
      Placement: { AvailabilityZone: 'us-east-1a' },
    });
    expect(i.IamInstanceProfile?.Arn).toBe('arn:aws:iam::123456789012:instance-profile/tenant-profile');
    expect(i.PrivateIpAddress).toMatch(/^10\.42\./);
    expect(i.LaunchTime).toBeInstanceOf(Date);
    expect(i.Tags).toEqual(expect.arrayContaining(tags({ OrgID: 'org-1', Role: 'tenant' })));
    const dumped = h.sim.dump().instances.find((x) => x.id === i.InstanceId)!;
    expect(dumped.userDataDecoded).toBe('#!/bin/bash\necho hi');
    expect(dumped.volumes[0]).toMatchObject({ size: 40, volumeType: 'gp3', tags: { OrgID: 'org-1' } });
  });

  it('replays a ClientToken: same reservation and instance, nothing new launched', async () => {
    const input: RunInstancesCommandInput = {
      ImageId: AMI,
      MinCount: 1,
      MaxCount: 1,
      ClientToken: 'ws-7-1',
      InstanceType: 't3.small',
    };
    const first = await h.ec2.send(new RunInstancesCommand(input));
    const before = h.sim.dump().instances.length;
    const again = await h.ec2.send(new RunInstancesCommand(input));
    expect(again.ReservationId).toBe(first.ReservationId);
    expect(again.Instances![0]!.InstanceId).toBe(first.Instances![0]!.InstanceId);
    expect(h.sim.dump().instances.length).toBe(before);
  });

  it('rejects a reused ClientToken with different parameters (IdempotentParameterMismatch)', async () => {
    await h.ec2.send(
      new RunInstancesCommand({ ImageId: AMI, MinCount: 1, MaxCount: 1, ClientToken: 'tok-mismatch' }),
    );
    const e = await failure(
      h.ec2.send(
        new RunInstancesCommand({
          ImageId: AMI,
          MinCount: 1,
          MaxCount: 1,
          ClientToken: 'tok-mismatch',
          InstanceType: 't3.large',
        }),
      ),
    );
    expect(e.name).toBe('IdempotentParameterMismatch');
    expect(e.$metadata.httpStatusCode).toBe(400);
  });

  it('honours MaxCount with one reservation and launch indexes', async () => {
    const out = await h.ec2.send(new RunInstancesCommand({ ImageId: AMI, MinCount: 3, MaxCount: 3 }));
    expect(out.Instances!.map((i) => i.AmiLaunchIndex)).toEqual([0, 1, 2]);
    const d = await h.ec2.send(
      new DescribeInstancesCommand({ InstanceIds: out.Instances!.map((i) => i.InstanceId!) }),
    );
    expect(d.Reservations).toHaveLength(1);
    expect(d.Reservations![0]!.Instances).toHaveLength(3);
  });

  it('rejects an unknown security group id', async () => {
    const e = await failure(launch(h, {}, { SecurityGroupIds: ['sg-0123456789abcdef0'] }));
    expect(e.name).toBe('InvalidGroup.NotFound');
  });

  it('answers DryRun with 412 DryRunOperation and keeps the token unused', async () => {
    const input = { ImageId: AMI, MinCount: 1, MaxCount: 1, ClientToken: 'dry-1' };
    const e = await failure(h.ec2.send(new RunInstancesCommand({ ...input, DryRun: true })));
    expect(e.name).toBe('DryRunOperation');
    expect(e.$metadata.httpStatusCode).toBe(412);
    const out = await h.ec2.send(new RunInstancesCommand(input));
    expect(out.Instances).toHaveLength(1);
  });

  it('validates UserData as base64', async () => {
    const e = await failure(launch(h, {}, { UserData: 'not base64!!' }));
    expect(e.name).toBe('InvalidParameterValue');
  });
});

describe('DescribeInstances', () => {
  it('raises InvalidInstanceID.NotFound with the singular and plural messages', async () => {
    const one = await failure(
      h.ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0000000000000000a'] })),
    );
    expect(one.name).toBe('InvalidInstanceID.NotFound');
    expect(one.message).toBe("The instance ID 'i-0000000000000000a' does not exist");
    expect(one.$metadata.httpStatusCode).toBe(400);
    const two = await failure(
      h.ec2.send(
        new DescribeInstancesCommand({ InstanceIds: ['i-0000000000000000a', 'i-0000000000000000b'] }),
      ),
    );
    expect(two.message).toBe("The instance IDs 'i-0000000000000000a, i-0000000000000000b' do not exist");
  });

  it('rejects malformed ids', async () => {
    const e = await failure(h.ec2.send(new DescribeInstancesCommand({ InstanceIds: ['ma1'] })));
    expect(e.name).toBe('InvalidInstanceID.Malformed');
    expect(e.message).toBe('Invalid id: "ma1"');
  });

  it('rejects MaxResults together with InstanceIds, and MaxResults below 5', async () => {
    const i = await launch(h);
    const combo = await failure(
      h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [i.InstanceId!], MaxResults: 5 })),
    );
    expect(combo.name).toBe('InvalidParameterCombination');
    expect(combo.message).toBe('The parameter instancesSet cannot be used with the parameter maxResults');
    const small = await failure(h.ec2.send(new DescribeInstancesCommand({ MaxResults: 1 })));
    expect(small.name).toBe('InvalidParameterValue');
    expect(small.message).toBe(
      'Value ( 1 ) for parameter maxResults is invalid. Expecting a value greater than 5.',
    );
  });

  it('filters by tag, tag-key, state, client token, vpc, subnet, group and id (values ORed, filters ANDed)', async () => {
    const sg = await h.ec2.send(
      new CreateSecurityGroupCommand({ GroupName: 'filter-sg', Description: 'd', VpcId: h.sim.seed.vpcId }),
    );
    const a = await launch(
      h,
      { FilterTest: 'alpha', Env: 'f1' },
      { SecurityGroupIds: [sg.GroupId!], ClientToken: 'filter-a' },
    );
    const b = await launch(h, { FilterTest: 'beta', Env: 'f1' });
    const ids = async (filters: { Name: string; Values: string[] }[]) => {
      const out = await h.ec2.send(new DescribeInstancesCommand({ Filters: filters }));
      return out.Reservations!.flatMap((r) => r.Instances!.map((i) => i.InstanceId)).sort();
    };
    const both = [a.InstanceId, b.InstanceId].sort();
    expect(await ids([{ Name: 'tag:FilterTest', Values: ['alpha', 'beta'] }])).toEqual(both);
    expect(await ids([{ Name: 'tag:FilterTest', Values: ['alpha'] }])).toEqual([a.InstanceId]);
    expect(await ids([{ Name: 'tag-key', Values: ['FilterTest'] }])).toEqual(both);
    expect(
      await ids([
        { Name: 'tag:Env', Values: ['f1'] },
        { Name: 'instance-state-name', Values: ['pending', 'running'] },
      ]),
    ).toEqual(both);
    expect(await ids([{ Name: 'client-token', Values: ['filter-a'] }])).toEqual([a.InstanceId]);
    expect(await ids([{ Name: 'instance.group-id', Values: [sg.GroupId!] }])).toEqual([a.InstanceId]);
    expect(await ids([{ Name: 'instance-id', Values: [b.InstanceId!] }])).toEqual([b.InstanceId]);
    expect(
      await ids([
        { Name: 'tag:Env', Values: ['f1'] },
        { Name: 'vpc-id', Values: [h.sim.seed.vpcId] },
        { Name: 'subnet-id', Values: [h.sim.seed.subnetId] },
      ]),
    ).toEqual(both);
    expect(await ids([{ Name: 'tag:FilterTest', Values: ['nomatch'] }])).toEqual([]);
  });

  it('supports * and ? wildcards in filter values', async () => {
    const a = await launch(h, { Wild: 'molecule-dev-123' });
    const ids = async (v: string) => {
      const out = await h.ec2.send(
        new DescribeInstancesCommand({ Filters: [{ Name: 'tag:Wild', Values: [v] }] }),
      );
      return out.Reservations!.flatMap((r) => r.Instances!.map((i) => i.InstanceId));
    };
    expect(await ids('molecule-*')).toEqual([a.InstanceId]);
    expect(await ids('molecule-dev-12?')).toEqual([a.InstanceId]);
    expect(await ids('molecule-prod-*')).toEqual([]);
  });

  it('rejects an unknown filter name', async () => {
    const e = await failure(
      h.ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'colour', Values: ['red'] }] })),
    );
    expect(e.name).toBe('InvalidParameterValue');
    expect(e.message).toBe("The filter 'colour' is invalid");
  });

  it('rejects more than 200 filter values in one call, and a value longer than 255 characters', async () => {
    const a = await launch(h, { Limit: 'v-0' });
    const values = (n: number) => Array.from({ length: n }, (_, i) => `v-${i}`);
    const ids = async (filters: { Name: string; Values: string[] }[]) => {
      const out = await h.ec2.send(new DescribeInstancesCommand({ Filters: filters }));
      return out.Reservations!.flatMap((r) => r.Instances!.map((i) => i.InstanceId));
    };
    // 200 in all is accepted, counted across filters.
    expect(
      await ids([
        { Name: 'tag:Limit', Values: values(198) },
        { Name: 'instance-state-name', Values: ['pending', 'running'] },
      ]),
    ).toEqual([a.InstanceId]);
    const many = await failure(
      h.ec2.send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: 'tag:Limit', Values: values(199) },
            { Name: 'instance-state-name', Values: ['pending', 'running'] },
          ],
        }),
      ),
    );
    expect(many.name).toBe('FilterLimitExceeded');
    expect(many.message).toBe('The maximum number of filter values specified on a single call is 200');
    expect(many.$metadata.httpStatusCode).toBe(400);
    const long = await failure(
      h.ec2.send(
        new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'tag:Limit', Values: ['x'.repeat(256)] }] }),
      ),
    );
    expect(long.name).toBe('FilterLimitExceeded');
    expect(long.message).toBe('The maximum length for a filter value is 255 characters');
  });

  it('paginates with MaxResults/NextToken through the SDK paginator', async () => {
    for (let n = 0; n < 4; n++) {
      await h.ec2.send(
        new RunInstancesCommand({
          ImageId: AMI,
          MinCount: 6,
          MaxCount: 6,
          TagSpecifications: [{ ResourceType: 'instance', Tags: tags({ Batch: 'paging' }) }],
        }),
      );
    }
    const seen: string[] = [];
    let pages = 0;
    for await (const page of paginateDescribeInstances(
      { client: h.ec2, pageSize: 5 },
      { Filters: [{ Name: 'tag:Batch', Values: ['paging'] }] },
    )) {
      pages++;
      const ids = page.Reservations!.flatMap((r) => r.Instances!.map((i) => i.InstanceId!));
      expect(ids.length).toBeLessThanOrEqual(5);
      seen.push(...ids);
    }
    expect(pages).toBe(5);
    expect(seen).toHaveLength(24);
    expect(new Set(seen).size).toBe(24);
  });

  it('rejects a forged NextToken', async () => {
    const e = await failure(h.ec2.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: 'bogus' })));
    expect(e.name).toBe('InvalidPaginationToken');
  });

  it('hides new instances for the eventual-consistency window', async () => {
    h.sim.setFaults({ eventualConsistencyMs: 5_000 });
    try {
      const i = await launch(h, { Consistency: 'yes' });
      const e = await failure(h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [i.InstanceId!] })));
      expect(e.name).toBe('InvalidInstanceID.NotFound');
      const filtered = await h.ec2.send(
        new DescribeInstancesCommand({ Filters: [{ Name: 'tag:Consistency', Values: ['yes'] }] }),
      );
      expect(filtered.Reservations).toEqual([]);
      h.sim.advance(5_000);
      expect((await describeOne(i.InstanceId!)).InstanceId).toBe(i.InstanceId);
    } finally {
      h.sim.setFaults({ eventualConsistencyMs: 0 });
    }
  });
});

describe('instance lifecycle', () => {
  it('moves pending → running as simulated time passes', async () => {
    const i = await launch(h);
    expect((await describeOne(i.InstanceId!)).State?.Name).toBe('pending');
    h.sim.advance(15_000);
    const running = await describeOne(i.InstanceId!);
    expect(running.State).toEqual({ Code: 16, Name: 'running' });
    expect(running.StateReason).toBeUndefined();
  });

  it('stops, refuses invalid transitions with IncorrectInstanceState, and starts again', async () => {
    const i = await launch(h);
    const early = await failure(h.ec2.send(new StopInstancesCommand({ InstanceIds: [i.InstanceId!] })));
    expect(early.name).toBe('IncorrectInstanceState');
    h.sim.advance(15_000);
    const stop = await h.ec2.send(new StopInstancesCommand({ InstanceIds: [i.InstanceId!] }));
    expect(stop.StoppingInstances![0]).toMatchObject({
      InstanceId: i.InstanceId,
      PreviousState: { Code: 16, Name: 'running' },
      CurrentState: { Code: 64, Name: 'stopping' },
    });
    const whileStopping = await failure(
      h.ec2.send(new StartInstancesCommand({ InstanceIds: [i.InstanceId!] })),
    );
    expect(whileStopping.name).toBe('IncorrectInstanceState');
    h.sim.advance(20_000);
    const stopped = await describeOne(i.InstanceId!);
    expect(stopped.State?.Name).toBe('stopped');
    expect(stopped.StateTransitionReason).toMatch(/^User initiated \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT\)$/);
    const start = await h.ec2.send(new StartInstancesCommand({ InstanceIds: [i.InstanceId!] }));
    expect(start.StartingInstances![0]).toMatchObject({
      PreviousState: { Name: 'stopped' },
      CurrentState: { Code: 0, Name: 'pending' },
    });
    h.sim.advance(15_000);
    expect((await describeOne(i.InstanceId!)).State?.Name).toBe('running');
  });

  it('changes the instance type only while stopped', async () => {
    const i = await launch(h);
    h.sim.advance(15_000);
    const running = await failure(
      h.ec2.send(
        new ModifyInstanceAttributeCommand({
          InstanceId: i.InstanceId!,
          InstanceType: { Value: 't3.large' },
        }),
      ),
    );
    expect(running.name).toBe('IncorrectInstanceState');
    await h.ec2.send(new StopInstancesCommand({ InstanceIds: [i.InstanceId!] }));
    h.sim.advance(20_000);
    await h.ec2.send(
      new ModifyInstanceAttributeCommand({ InstanceId: i.InstanceId!, InstanceType: { Value: 't3.large' } }),
    );
    expect((await describeOne(i.InstanceId!)).InstanceType).toBe('t3.large');
  });

  it('terminates idempotently and reports previous and current state', async () => {
    const i = await launch(h);
    h.sim.advance(15_000);
    const first = await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [i.InstanceId!] }));
    expect(first.TerminatingInstances![0]).toMatchObject({
      PreviousState: { Code: 16, Name: 'running' },
      CurrentState: { Code: 32, Name: 'shutting-down' },
    });
    h.sim.advance(20_000);
    const again = await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [i.InstanceId!] }));
    expect(again.TerminatingInstances![0]).toMatchObject({
      PreviousState: { Code: 48, Name: 'terminated' },
      CurrentState: { Code: 48, Name: 'terminated' },
    });
    const gone = await describeOne(i.InstanceId!);
    expect(gone.SecurityGroups).toEqual([]);
    expect(gone.StateReason?.Code).toBe('Client.UserInitiatedShutdown');
  });

  it('terminates nothing when one id of the request is unknown', async () => {
    const i = await launch(h);
    const e = await failure(
      h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [i.InstanceId!, 'i-0000000000000000c'] })),
    );
    expect(e.name).toBe('InvalidInstanceID.NotFound');
    expect((await describeOne(i.InstanceId!)).State?.Name).toBe('pending');
  });

  it('keeps terminated instances visible for about an hour, then forgets them', async () => {
    const i = await launch(h, { Lifetime: 'hour' });
    await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [i.InstanceId!] }));
    h.sim.advance(20_000 + 59 * 60_000);
    expect((await describeOne(i.InstanceId!)).State?.Name).toBe('terminated');
    h.sim.advance(2 * 60_000);
    const e = await failure(h.ec2.send(new DescribeInstancesCommand({ InstanceIds: [i.InstanceId!] })));
    expect(e.name).toBe('InvalidInstanceID.NotFound');
    const filtered = await h.ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: 'tag:Lifetime', Values: ['hour'] }] }),
    );
    expect(filtered.Reservations).toEqual([]);
  });
});

describe('tags', () => {
  it('CreateTags overwrites keys; DeleteTags honours key-only, value match and empty value', async () => {
    const i = await launch(h, { A: '1', B: '2', C: '', D: '4' });
    await h.ec2.send(new CreateTagsCommand({ Resources: [i.InstanceId!], Tags: tags({ A: 'one', E: '5' }) }));
    await h.ec2.send(
      new DeleteTagsCommand({
        Resources: [i.InstanceId!],
        Tags: [{ Key: 'B' }, { Key: 'C', Value: '' }, { Key: 'D', Value: 'not-4' }],
      }),
    );
    const got = Object.fromEntries((await describeOne(i.InstanceId!)).Tags!.map((t) => [t.Key, t.Value]));
    expect(got).toEqual({ A: 'one', D: '4', E: '5' });
    await h.ec2.send(new DeleteTagsCommand({ Resources: [i.InstanceId!] }));
    expect((await describeOne(i.InstanceId!)).Tags).toEqual([]);
  });

  it('rejects unknown resources and reserved aws: keys', async () => {
    const unknown = await failure(
      h.ec2.send(new CreateTagsCommand({ Resources: ['i-0000000000000000d'], Tags: tags({ A: '1' }) })),
    );
    expect(unknown.name).toBe('InvalidInstanceID.NotFound');
    const i = await launch(h);
    const reserved = await failure(
      h.ec2.send(new CreateTagsCommand({ Resources: [i.InstanceId!], Tags: tags({ 'aws:x': '1' }) })),
    );
    expect(reserved.name).toBe('InvalidParameterValue');
  });
});

describe('VPCs and protocol details', () => {
  it('describes the seeded VPC and rejects unknown VPC ids', async () => {
    const out = await h.ec2.send(new DescribeVpcsCommand({ VpcIds: [h.sim.seed.vpcId] }));
    expect(out.Vpcs).toHaveLength(1);
    expect(out.Vpcs![0]).toMatchObject({
      VpcId: 'vpc-0a1b2c3d4e5f60718',
      CidrBlock: '10.42.0.0/16',
      State: 'available',
      IsDefault: false,
    });
    const e = await failure(h.ec2.send(new DescribeVpcsCommand({ VpcIds: ['vpc-00000000000000000'] })));
    expect(e.name).toBe('InvalidVpcID.NotFound');
  });

  it('answers an unknown Action with 400 InvalidAction in the EC2 error XML', async () => {
    const res = await fetch(h.sim.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=LaunchRockets&Version=2016-11-15',
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
    const body = await res.text();
    expect(body).toContain('<Response><Errors><Error><Code>InvalidAction</Code>');
    expect(body).toContain('<RequestID>');
  });

  it('settles transitions in real time under the fast profile', async () => {
    const fast = await startHarness({ profile: 'fast' });
    try {
      const i = await launch(fast);
      await eventually(async () => {
        const out = await fast.ec2.send(new DescribeInstancesCommand({ InstanceIds: [i.InstanceId!] }));
        return out.Reservations![0]!.Instances![0]!.State?.Name === 'running';
      });
    } finally {
      await fast.close();
    }
  });

  it('parses the region from the SigV4 scope into ARNs and availability zones', async () => {
    const west = new EC2Client({
      endpoint: h.sim.url,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
      maxAttempts: 1,
    });
    try {
      const out = await west.send(new RunInstancesCommand({ ImageId: AMI, MinCount: 1, MaxCount: 1 }));
      expect(out.Instances![0]!.Placement?.AvailabilityZone).toBe('eu-west-1a');
    } finally {
      west.destroy();
    }
  });
});
