import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DeleteSecurityGroupCommand,
  DescribeSecurityGroupsCommand,
  paginateDescribeSecurityGroups,
  RevokeSecurityGroupIngressCommand,
  type SecurityGroup,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failure, type Harness, launch, startHarness, tags } from './helpers.js';

let h: Harness;
let n = 0;
beforeAll(async () => {
  h = await startHarness({ profile: 'realistic', faults: { buckets: false, latencyMs: 0 } });
});
afterAll(async () => {
  await h.close();
});

async function createGroup(groupTags: Record<string, string> = {}): Promise<string> {
  n++;
  const out = await h.ec2.send(
    new CreateSecurityGroupCommand({
      GroupName: `molecule-test-${n}`,
      Description: `group ${n}`,
      VpcId: h.sim.seed.vpcId,
      TagSpecifications: [
        { ResourceType: 'security-group', Tags: tags({ ManagedBy: 'molecule-operator', ...groupTags }) },
      ],
    }),
  );
  return out.GroupId!;
}

async function describeGroup(id: string): Promise<SecurityGroup> {
  const out = await h.ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [id] }));
  return out.SecurityGroups![0]!;
}

const ssh = (groupId: string) => ({
  IpProtocol: 'tcp',
  FromPort: 22,
  ToPort: 22,
  UserIdGroupPairs: [{ GroupId: groupId }],
});

describe('CreateSecurityGroup', () => {
  it('creates a group with a modern id, its tags and a default allow-all egress rule', async () => {
    const out = await h.ec2.send(
      new CreateSecurityGroupCommand({
        GroupName: 'molecule-dev-tenant-a',
        Description: 'tenant a',
        VpcId: h.sim.seed.vpcId,
        TagSpecifications: [{ ResourceType: 'security-group', Tags: tags({ OrgID: 'a' }) }],
      }),
    );
    expect(out.GroupId).toMatch(/^sg-[0-9a-f]{17}$/);
    expect(out.Tags).toEqual(tags({ OrgID: 'a' }));
    expect(out.SecurityGroupArn).toBe(`arn:aws:ec2:us-east-1:123456789012:security-group/${out.GroupId}`);
    const sg = await describeGroup(out.GroupId!);
    expect(sg).toMatchObject({
      GroupName: 'molecule-dev-tenant-a',
      Description: 'tenant a',
      VpcId: h.sim.seed.vpcId,
      OwnerId: '123456789012',
    });
    expect(sg.IpPermissions).toEqual([]);
    expect(sg.IpPermissionsEgress).toEqual([
      {
        IpProtocol: '-1',
        IpRanges: [{ CidrIp: '0.0.0.0/0' }],
        UserIdGroupPairs: [],
        Ipv6Ranges: [],
        PrefixListIds: [],
      },
    ]);
  });

  it('rejects a duplicate name in the VPC, case-insensitively', async () => {
    await h.ec2.send(
      new CreateSecurityGroupCommand({ GroupName: 'Dup-Name', Description: 'x', VpcId: h.sim.seed.vpcId }),
    );
    const e = await failure(
      h.ec2.send(
        new CreateSecurityGroupCommand({ GroupName: 'dup-name', Description: 'x', VpcId: h.sim.seed.vpcId }),
      ),
    );
    expect(e.name).toBe('InvalidGroup.Duplicate');
    expect(e.message).toBe(`The security group 'dup-name' already exists for VPC '${h.sim.seed.vpcId}'`);
    expect(e.$metadata.httpStatusCode).toBe(400);
  });

  it('rejects names in the sg-* format and unknown VPCs', async () => {
    const bad = await failure(
      h.ec2.send(
        new CreateSecurityGroupCommand({ GroupName: 'sg-x', Description: 'x', VpcId: h.sim.seed.vpcId }),
      ),
    );
    expect(bad.name).toBe('InvalidParameterValue');
    const vpc = await failure(
      h.ec2.send(
        new CreateSecurityGroupCommand({ GroupName: 'ok', Description: 'x', VpcId: 'vpc-00000000000000001' }),
      ),
    );
    expect(vpc.name).toBe('InvalidVpcID.NotFound');
  });
});

describe('ingress rules', () => {
  it('authorizes SG-referencing and CIDR rules and returns the created rules', async () => {
    const id = await createGroup();
    const out = await h.ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: id,
        IpPermissions: [
          ssh(h.sim.seed.eicSecurityGroupId),
          {
            IpProtocol: 'tcp',
            FromPort: 8080,
            ToPort: 8080,
            IpRanges: [{ CidrIp: h.sim.seed.vpcCidr, Description: 'platform' }],
          },
        ],
      }),
    );
    expect(out.Return).toBe(true);
    expect(out.SecurityGroupRules).toHaveLength(2);
    expect(out.SecurityGroupRules![0]).toMatchObject({
      GroupId: id,
      IsEgress: false,
      IpProtocol: 'tcp',
      FromPort: 22,
      ToPort: 22,
      ReferencedGroupInfo: { GroupId: h.sim.seed.eicSecurityGroupId, UserId: '123456789012' },
    });
    expect(out.SecurityGroupRules![0]!.SecurityGroupRuleId).toMatch(/^sgr-[0-9a-f]{17}$/);
    expect(out.SecurityGroupRules![1]).toMatchObject({ CidrIpv4: '10.42.0.0/16', Description: 'platform' });
    const sg = await describeGroup(id);
    expect(sg.IpPermissions).toEqual([
      {
        IpProtocol: 'tcp',
        FromPort: 22,
        ToPort: 22,
        UserIdGroupPairs: [
          { UserId: '123456789012', GroupId: h.sim.seed.eicSecurityGroupId, VpcId: h.sim.seed.vpcId },
        ],
        IpRanges: [],
        Ipv6Ranges: [],
        PrefixListIds: [],
      },
      {
        IpProtocol: 'tcp',
        FromPort: 8080,
        ToPort: 8080,
        UserIdGroupPairs: [],
        IpRanges: [{ CidrIp: '10.42.0.0/16', Description: 'platform' }],
        Ipv6Ranges: [],
        PrefixListIds: [],
      },
    ]);
  });

  it('groups rules sharing protocol and ports into one permission', async () => {
    const id = await createGroup();
    await h.ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: id,
        IpPermissions: [
          { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, IpRanges: [{ CidrIp: '10.0.0.0/8' }] },
        ],
      }),
    );
    await h.ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: id,
        IpPermissions: [
          { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, IpRanges: [{ CidrIp: '192.168.0.0/16' }] },
        ],
      }),
    );
    const sg = await describeGroup(id);
    expect(sg.IpPermissions).toHaveLength(1);
    expect(sg.IpPermissions![0]!.IpRanges).toEqual([{ CidrIp: '10.0.0.0/8' }, { CidrIp: '192.168.0.0/16' }]);
  });

  it('fails a duplicate rule with InvalidPermission.Duplicate and the AWS message', async () => {
    const id = await createGroup();
    await h.ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: id,
        IpPermissions: [ssh(h.sim.seed.eicSecurityGroupId)],
      }),
    );
    const e = await failure(
      h.ec2.send(
        new AuthorizeSecurityGroupIngressCommand({
          GroupId: id,
          IpPermissions: [ssh(h.sim.seed.eicSecurityGroupId)],
        }),
      ),
    );
    expect(e.name).toBe('InvalidPermission.Duplicate');
    expect(e.message).toBe(
      `the specified rule "peer: ${h.sim.seed.eicSecurityGroupId}, TCP, from port: 22, to port: 22, ALLOW" already exists`,
    );
  });

  it('revokes matching rules and fails atomically with InvalidPermission.NotFound', async () => {
    const id = await createGroup();
    await h.ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: id,
        IpPermissions: [
          ssh(h.sim.seed.eicSecurityGroupId),
          { IpProtocol: 'tcp', FromPort: 80, ToPort: 80, IpRanges: [{ CidrIp: '10.1.0.0/16' }] },
        ],
      }),
    );
    const e = await failure(
      h.ec2.send(
        new RevokeSecurityGroupIngressCommand({
          GroupId: id,
          IpPermissions: [
            ssh(h.sim.seed.eicSecurityGroupId),
            { IpProtocol: 'tcp', FromPort: 81, ToPort: 81, IpRanges: [{ CidrIp: '10.1.0.0/16' }] },
          ],
        }),
      ),
    );
    expect(e.name).toBe('InvalidPermission.NotFound');
    expect((await describeGroup(id)).IpPermissions).toHaveLength(2);
    const out = await h.ec2.send(
      new RevokeSecurityGroupIngressCommand({
        GroupId: id,
        IpPermissions: [ssh(h.sim.seed.eicSecurityGroupId)],
      }),
    );
    expect(out.Return).toBe(true);
    expect(out.RevokedSecurityGroupRules).toHaveLength(1);
    expect(out.RevokedSecurityGroupRules![0]).toMatchObject({
      ReferencedGroupId: h.sim.seed.eicSecurityGroupId,
      FromPort: 22,
    });
    expect((await describeGroup(id)).IpPermissions!.map((p) => p.FromPort)).toEqual([80]);
  });

  it('revokes by security group rule id', async () => {
    const id = await createGroup();
    const auth = await h.ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: id,
        IpPermissions: [
          { IpProtocol: 'udp', FromPort: 53, ToPort: 53, IpRanges: [{ CidrIp: '10.2.0.0/16' }] },
        ],
      }),
    );
    await h.ec2.send(
      new RevokeSecurityGroupIngressCommand({
        GroupId: id,
        SecurityGroupRuleIds: [auth.SecurityGroupRules![0]!.SecurityGroupRuleId!],
      }),
    );
    expect((await describeGroup(id)).IpPermissions).toEqual([]);
  });

  it('validates protocols, ports and CIDRs', async () => {
    const id = await createGroup();
    const noPorts = await failure(
      h.ec2.send(
        new AuthorizeSecurityGroupIngressCommand({
          GroupId: id,
          IpPermissions: [{ IpProtocol: 'tcp', IpRanges: [{ CidrIp: '10.0.0.0/8' }] }],
        }),
      ),
    );
    expect(noPorts.name).toBe('InvalidParameterValue');
    const cidr = await failure(
      h.ec2.send(
        new AuthorizeSecurityGroupIngressCommand({
          GroupId: id,
          IpPermissions: [
            { IpProtocol: 'tcp', FromPort: 1, ToPort: 2, IpRanges: [{ CidrIp: '10.0.0.0/33' }] },
          ],
        }),
      ),
    );
    expect(cidr.message).toBe('CIDR block 10.0.0.0/33 is malformed');
  });
});

describe('DescribeSecurityGroups', () => {
  it('raises NotFound for unknown ids and Malformed for bad ones', async () => {
    const missing = await failure(
      h.ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: ['sg-0123456789abcdef1'] })),
    );
    expect(missing.name).toBe('InvalidGroup.NotFound');
    expect(missing.message).toBe("The security group 'sg-0123456789abcdef1' does not exist");
    const bad = await failure(h.ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: ['nope'] })));
    expect(bad.name).toBe('InvalidGroupId.Malformed');
  });

  it('filters by group-name, vpc-id, tag and referenced group', async () => {
    const a = await createGroup({ Team: 'filters' });
    await h.ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: a,
        IpPermissions: [ssh(h.sim.seed.eicSecurityGroupId)],
      }),
    );
    const names = async (filters: { Name: string; Values: string[] }[]) => {
      const out = await h.ec2.send(new DescribeSecurityGroupsCommand({ Filters: filters }));
      return out.SecurityGroups!.map((g) => g.GroupId);
    };
    const name = (await describeGroup(a)).GroupName!;
    expect(await names([{ Name: 'group-name', Values: [name] }])).toEqual([a]);
    expect(
      await names([
        { Name: 'tag:Team', Values: ['filters'] },
        { Name: 'vpc-id', Values: [h.sim.seed.vpcId] },
      ]),
    ).toEqual([a]);
    expect(
      await names([
        { Name: 'ip-permission.group-id', Values: [h.sim.seed.eicSecurityGroupId] },
        { Name: 'tag:Team', Values: ['filters'] },
      ]),
    ).toEqual([a]);
    expect(await names([{ Name: 'group-id', Values: [h.sim.seed.eicSecurityGroupId] }])).toEqual([
      h.sim.seed.eicSecurityGroupId,
    ]);
  });

  it('paginates with the SDK paginator', async () => {
    for (let k = 0; k < 12; k++) await createGroup({ Batch: 'sg-paging' });
    const seen: string[] = [];
    for await (const page of paginateDescribeSecurityGroups(
      { client: h.ec2, pageSize: 5 },
      { Filters: [{ Name: 'tag:Batch', Values: ['sg-paging'] }] },
    )) {
      expect(page.SecurityGroups!.length).toBeLessThanOrEqual(5);
      seen.push(...page.SecurityGroups!.map((g) => g.GroupId!));
    }
    expect(new Set(seen).size).toBe(12);
  });

  it('answers GroupName lookups with VPCIdNotSpecified (no default VPC)', async () => {
    const e = await failure(h.ec2.send(new DescribeSecurityGroupsCommand({ GroupNames: ['anything'] })));
    expect(e.name).toBe('VPCIdNotSpecified');
  });
});

describe('DeleteSecurityGroup', () => {
  it('fails with DependencyViolation while an instance uses the group, and succeeds once it terminated', async () => {
    const id = await createGroup();
    const i = await launch(h, {}, { SecurityGroupIds: [id] });
    const e = await failure(h.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id })));
    expect(e.name).toBe('DependencyViolation');
    expect(e.message).toBe(`resource ${id} has a dependent object`);
    await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [i.InstanceId!] }));
    const shuttingDown = await failure(h.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id })));
    expect(shuttingDown.name).toBe('DependencyViolation');
    h.sim.advance(20_000);
    const out = await h.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id }));
    expect(out.GroupId).toBe(id);
    const gone = await failure(h.ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [id] })));
    expect(gone.name).toBe('InvalidGroup.NotFound');
  });

  it('fails while another group references it, and succeeds after the rule is revoked', async () => {
    const target = await createGroup();
    const other = await createGroup();
    await h.ec2.send(
      new AuthorizeSecurityGroupIngressCommand({ GroupId: other, IpPermissions: [ssh(target)] }),
    );
    const e = await failure(h.ec2.send(new DeleteSecurityGroupCommand({ GroupId: target })));
    expect(e.name).toBe('DependencyViolation');
    await h.ec2.send(new RevokeSecurityGroupIngressCommand({ GroupId: other, IpPermissions: [ssh(target)] }));
    await h.ec2.send(new DeleteSecurityGroupCommand({ GroupId: target }));
  });

  it('never deletes the seeded EIC endpoint group (held by an ENI)', async () => {
    const e = await failure(
      h.ec2.send(new DeleteSecurityGroupCommand({ GroupId: h.sim.seed.eicSecurityGroupId })),
    );
    expect(e.name).toBe('DependencyViolation');
  });

  it('raises InvalidGroup.NotFound for unknown and already-deleted groups, and frees the name', async () => {
    const id = await createGroup();
    const name = (await describeGroup(id)).GroupName!;
    await h.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id }));
    const again = await failure(h.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id })));
    expect(again.name).toBe('InvalidGroup.NotFound');
    const reused = await h.ec2.send(
      new CreateSecurityGroupCommand({ GroupName: name, Description: 'again', VpcId: h.sim.seed.vpcId }),
    );
    expect(reused.GroupId).not.toBe(id);
  });
});
