import {
  CreateSecurityGroupCommand,
  DeleteSecurityGroupCommand,
  DeleteTagsCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  GetResourcesCommand,
  type GetResourcesCommandInput,
  paginateGetResources,
} from '@aws-sdk/client-resource-groups-tagging-api';
import { CreateSecretCommand, DeleteSecretCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { failure, type Harness, HOUR, launch, startHarness, tags } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ profile: 'realistic', faults: { buckets: false, latencyMs: 0 } });
});
afterAll(async () => {
  await h.close();
});
beforeEach(() => {
  h.sim.reset();
});

const managed = (env: string, extra: Record<string, string> = {}) =>
  tags({ ManagedBy: 'molecule-operator', MOLECULE_ENV: env, ...extra });

async function arns(input: GetResourcesCommandInput): Promise<string[]> {
  const out = await h.tagging.send(new GetResourcesCommand(input));
  expect(out.PaginationToken).toBe('');
  return out.ResourceTagMappingList!.map((m) => m.ResourceARN!);
}

async function seedMixed() {
  const inst = await launch(h, { ManagedBy: 'molecule-operator', MOLECULE_ENV: 'dev', Role: 'tenant' });
  const sg = await h.ec2.send(
    new CreateSecurityGroupCommand({
      GroupName: 'tagged',
      Description: 'x',
      VpcId: h.sim.seed.vpcId,
      TagSpecifications: [{ ResourceType: 'security-group', Tags: managed('dev', { Role: 'workspace' }) }],
    }),
  );
  const secret = await h.sm.send(
    new CreateSecretCommand({ Name: 'molecule/dev/x', SecretString: 'x', Tags: managed('dev') }),
  );
  const other = await h.sm.send(
    new CreateSecretCommand({ Name: 'molecule/prod/x', SecretString: 'x', Tags: managed('prod') }),
  );
  return {
    instance: `arn:aws:ec2:us-east-1:123456789012:instance/${inst.InstanceId}`,
    instanceId: inst.InstanceId!,
    sg: `arn:aws:ec2:us-east-1:123456789012:security-group/${sg.GroupId}`,
    sgId: sg.GroupId!,
    secret: secret.ARN!,
    other: other.ARN!,
  };
}

describe('GetResources', () => {
  it('ANDs tag filters across keys, ORs values, and treats a key without values as any value', async () => {
    const r = await seedMixed();
    expect(
      (
        await arns({
          TagFilters: [
            { Key: 'ManagedBy', Values: ['molecule-operator'] },
            { Key: 'MOLECULE_ENV', Values: ['dev'] },
          ],
        })
      ).sort(),
    ).toEqual([r.instance, r.sg, r.secret].sort());
    expect((await arns({ TagFilters: [{ Key: 'MOLECULE_ENV', Values: ['dev', 'prod'] }] })).length).toBe(4);
    expect((await arns({ TagFilters: [{ Key: 'Role' }] })).sort()).toEqual([r.instance, r.sg].sort());
    expect(
      await arns({
        TagFilters: [
          { Key: 'Role', Values: ['tenant'] },
          { Key: 'MOLECULE_ENV', Values: ['prod'] },
        ],
      }),
    ).toEqual([]);
  });

  it('filters by resource type (service alone or service:type)', async () => {
    const r = await seedMixed();
    expect(await arns({ ResourceTypeFilters: ['ec2:instance'] })).toEqual([r.instance]);
    expect(await arns({ ResourceTypeFilters: ['ec2:security-group'] })).toEqual([r.sg]);
    expect((await arns({ ResourceTypeFilters: ['ec2'] })).sort()).toEqual([r.instance, r.sg].sort());
    expect((await arns({ ResourceTypeFilters: ['secretsmanager:secret'] })).sort()).toEqual(
      [r.secret, r.other].sort(),
    );
    expect((await arns({ ResourceTypeFilters: ['secretsmanager'] })).length).toBe(2);
  });

  it('paginates with ResourcesPerPage and ends with an empty PaginationToken', async () => {
    for (let k = 0; k < 7; k++) await launch(h, { Batch: 'tag-paging' });
    const tokens: (string | undefined)[] = [];
    const seen: string[] = [];
    for await (const page of paginateGetResources(
      { client: h.tagging, pageSize: 3 },
      { TagFilters: [{ Key: 'Batch', Values: ['tag-paging'] }] },
    )) {
      tokens.push(page.PaginationToken);
      seen.push(...page.ResourceTagMappingList!.map((m) => m.ResourceARN!));
      expect(page.ResourceTagMappingList!.length).toBeLessThanOrEqual(3);
    }
    expect(new Set(seen).size).toBe(7);
    expect(tokens.at(-1)).toBe('');
    expect(tokens).toHaveLength(3);
  });

  it('validates ResourcesPerPage and ResourceARNList exclusivity', async () => {
    const big = await failure(h.tagging.send(new GetResourcesCommand({ ResourcesPerPage: 101 })));
    expect(big.name).toBe('InvalidParameterException');
    expect(big.$metadata.httpStatusCode).toBe(400);
    const combo = await failure(
      h.tagging.send(
        new GetResourcesCommand({
          ResourceARNList: ['arn:aws:ec2:us-east-1:123456789012:instance/i-0'],
          TagFilters: [{ Key: 'A' }],
        }),
      ),
    );
    expect(combo.name).toBe('InvalidParameterException');
  });

  it('looks up a ResourceARNList, skipping unknown ARNs', async () => {
    const r = await seedMixed();
    const out = await h.tagging.send(
      new GetResourcesCommand({
        ResourceARNList: [r.sg, 'arn:aws:ec2:us-east-1:123456789012:instance/i-00000000000000000', r.secret],
      }),
    );
    expect(out.ResourceTagMappingList!.map((m) => m.ResourceARN)).toEqual([r.sg, r.secret]);
  });

  it('lists tagged volumes from RunInstances TagSpecifications', async () => {
    const out = await launch(
      h,
      { Kind: 'with-volume' },
      {
        TagSpecifications: [
          { ResourceType: 'instance', Tags: tags({ Kind: 'with-volume' }) },
          { ResourceType: 'volume', Tags: tags({ Kind: 'with-volume' }) },
        ],
      },
    );
    const volumes = await arns({ ResourceTypeFilters: ['ec2:volume'] });
    expect(volumes).toHaveLength(1);
    expect(volumes[0]).toMatch(/^arn:aws:ec2:us-east-1:123456789012:volume\/vol-[0-9a-f]{17}$/);
    expect(out.InstanceId).toBeDefined();
  });

  it('keeps listing a resource whose tags were all removed, with Tags: [] and only without tag filters', async () => {
    const r = await seedMixed();
    await h.ec2.send(new DeleteTagsCommand({ Resources: [r.instanceId] }));
    const out = await h.tagging.send(new GetResourcesCommand({ ResourceTypeFilters: ['ec2:instance'] }));
    expect(out.ResourceTagMappingList).toEqual([{ ResourceARN: r.instance, Tags: [] }]);
    expect(await arns({ TagFilters: [{ Key: 'ManagedBy' }], ResourceTypeFilters: ['ec2:instance'] })).toEqual(
      [],
    );
  });
});

describe('ghosts', () => {
  it('keeps listing a terminated instance with its tags after DescribeInstances forgot it, then drops it', async () => {
    const r = await seedMixed();
    await h.ec2.send(new TerminateInstancesCommand({ InstanceIds: [r.instanceId] }));
    h.sim.advance(HOUR + 60_000);
    const out = await h.tagging.send(new GetResourcesCommand({ ResourceTypeFilters: ['ec2:instance'] }));
    expect(out.ResourceTagMappingList![0]!.ResourceARN).toBe(r.instance);
    expect(out.ResourceTagMappingList![0]!.Tags).toEqual(expect.arrayContaining(tags({ Role: 'tenant' })));
    h.sim.advance(HOUR);
    expect(await arns({ ResourceTypeFilters: ['ec2:instance'] })).toEqual([]);
  });

  it('keeps listing deleted security groups and secrets (scheduled or forced) for about an hour', async () => {
    const r = await seedMixed();
    await h.ec2.send(new DeleteSecurityGroupCommand({ GroupId: r.sgId }));
    await h.sm.send(new DeleteSecretCommand({ SecretId: r.secret, ForceDeleteWithoutRecovery: true }));
    await h.sm.send(new DeleteSecretCommand({ SecretId: r.other, RecoveryWindowInDays: 7 }));
    const filter = { ResourceTypeFilters: ['ec2:security-group', 'secretsmanager:secret'] };
    expect((await arns(filter)).sort()).toEqual([r.sg, r.secret, r.other].sort());
    h.sim.advance(HOUR + 1);
    expect(await arns(filter)).toEqual([r.other]);
  });
});
