import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  CreateTagsCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ec2Adapter } from '../../src/cloud/aws/ec2.js';
import {
  decodeInstancesPage,
  decodeSecurityGroupsPage,
  pageParts,
  UnsupportedXml,
} from '../../src/cloud/aws/ec2-listing.js';
import { decodeListSecretsPage, SecretsAdapter } from '../../src/cloud/aws/secrets.js';
import { unlimited } from '../../src/cloud/ratelimit.js';
import { type Simulator, startSimulator } from '../../src/sim/index.js';
import { SIM_CREDENTIALS } from '../helpers/stack.js';

/**
 * The inventory's two listings are decoded from the XML by ec2-listing.ts rather than by the
 * SDK's deserializer (a benchmark-driven optimisation): both paths must give the same objects.
 */

let sim: Simulator;
let client: EC2Client;
const OURS = { ManagedBy: 'molecule-operator', MOLECULE_ENV: 'listing' };
const tagList = (t: Record<string, string>) => Object.entries(t).map(([Key, Value]) => ({ Key, Value }));

beforeAll(async () => {
  sim = await startSimulator({ port: 0, profile: 'fast', seed: 7 });
  client = new EC2Client({
    endpoint: sim.url,
    region: sim.seed.region,
    credentials: SIM_CREDENTIALS,
    maxAttempts: 1,
  });
  const tricky = {
    ...OURS,
    Name: `a&b <c> "d" 'e'`,
    Spaces: '  padded  ',
    Empty: '',
    Unicode: 'żółw — 🐢',
  };
  const groups: string[] = [];
  for (let g = 0; g < 7; g++) {
    const res = await client.send(
      new CreateSecurityGroupCommand({
        GroupName: `listing-${g}`,
        Description: `group <${g}> & co`,
        VpcId: sim.seed.vpcId,
        TagSpecifications: [{ ResourceType: 'security-group', Tags: tagList(g === 0 ? tricky : OURS) }],
      }),
    );
    groups.push(res.GroupId!);
  }
  await client.send(
    new AuthorizeSecurityGroupIngressCommand({
      GroupId: groups[0],
      IpPermissions: [
        {
          IpProtocol: 'tcp',
          FromPort: 22,
          ToPort: 22,
          UserIdGroupPairs: [{ GroupId: sim.seed.eicSecurityGroupId, Description: 'EIC & friends' }],
          IpRanges: [{ CidrIp: '10.42.0.0/16', Description: 'vpc' }, { CidrIp: '10.1.0.0/16' }],
        },
        { IpProtocol: 'tcp', FromPort: 8080, ToPort: 8080, IpRanges: [{ CidrIp: '10.42.0.0/16' }] },
        { IpProtocol: '-1', IpRanges: [{ CidrIp: '192.168.0.0/24', Description: 'all' }] },
      ],
    }),
  );
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) {
    const res = await client.send(
      new RunInstancesCommand({
        ImageId: 'ami-0ea3c35c5c3284d82',
        InstanceType: i % 2 ? 't3.large' : 't3.medium',
        MinCount: 1,
        MaxCount: 1,
        SubnetId: sim.seed.subnetId,
        SecurityGroupIds: i === 4 ? [] : groups.slice(0, 1 + (i % 3)),
        ...(i !== 3 ? { IamInstanceProfile: { Name: 'molecule-tenant' } } : {}),
        ...(i !== 2 ? { ClientToken: `token-${i}` } : {}),
        TagSpecifications: [
          { ResourceType: 'instance', Tags: tagList(i === 0 ? tricky : { ...OURS, N: String(i) }) },
        ],
      }),
    );
    ids.push(res.Instances![0]!.InstanceId!);
  }
  await client.send(new TerminateInstancesCommand({ InstanceIds: [ids[1]!] }));
  // Let every transition finish (fast profile: 20 ms), so two listings see the same states.
  await new Promise((r) => setTimeout(r, 100));
});

afterAll(async () => {
  client.destroy();
  await sim.close();
});

const adapter = (decode: boolean, pageSize: number) =>
  new Ec2Adapter(client, { limiter: unlimited, target: 'primary' }, pageSize, decode);

describe('EC2 listings decoded from the XML equal the SDK path', () => {
  it.each([5, 1000])('DescribeInstances, page size %i', async (pageSize) => {
    const fast = await adapter(true, pageSize).describeInstances({ tags: OURS });
    const sdk = await adapter(false, pageSize).describeInstances({ tags: OURS });
    expect(fast).toHaveLength(12);
    expect(fast).toEqual(sdk);
    expect(fast.some((i) => i.state !== 'pending' && i.state !== 'running')).toBe(true);
  });

  it.each([5, 1000])('DescribeSecurityGroups, page size %i', async (pageSize) => {
    const fast = await adapter(true, pageSize).describeSecurityGroups({ tags: OURS });
    const sdk = await adapter(false, pageSize).describeSecurityGroups({ tags: OURS });
    expect(fast).toHaveLength(7);
    expect(fast).toEqual(sdk);
    expect(fast[0]!.ingress.length).toBeGreaterThanOrEqual(4);
  });

  it('by name and VPC, as the live view asks', async () => {
    const filter = { names: ['listing-0'], vpcId: sim.seed.vpcId };
    expect(await adapter(true, 1000).describeSecurityGroups(filter)).toEqual(
      await adapter(false, 1000).describeSecurityGroups(filter),
    );
  });
});

describe('raw listings: pages kept undecoded, with a digest of what they list', () => {
  it.each([5, 1000])(
    'give what the describe calls give, and the same digest while nothing changes (page size %i)',
    async (pageSize) => {
      const ec2 = adapter(true, pageSize);
      const [instances, groups] = [
        await ec2.describeInstancePages({ tags: OURS }),
        await ec2.describeSecurityGroupPages({ tags: OURS }),
      ];
      expect(await instances.items()).toEqual(await ec2.describeInstances({ tags: OURS }));
      expect(await groups.items()).toEqual(await ec2.describeSecurityGroups({ tags: OURS }));
      expect(await instances.items()).toHaveLength(12); // every page followed
      expect(instances.digest).toMatch(/^[A-Za-z0-9+/]{43}=$/);
      // Another call has other request ids (and page tokens): the same digest.
      expect((await ec2.describeInstancePages({ tags: OURS })).digest).toBe(instances.digest);
      expect((await ec2.describeSecurityGroupPages({ tags: OURS })).digest).toBe(groups.digest);
      expect(instances.digest).not.toBe(groups.digest);
      // Not kept: the same digest; the objects, if asked for all the same, are listed again.
      const unkept = await ec2.describeInstancePages({ tags: OURS }, { keep: false });
      expect(unkept.digest).toBe(instances.digest);
      expect(await unkept.items()).toEqual(await instances.items());
    },
  );

  it('change their digest when any object changes', async () => {
    const ec2 = adapter(true, 5);
    const before = await ec2.describeInstancePages({ tags: OURS });
    const [last] = (await before.items()).slice(-1);
    await client.send(
      new CreateTagsCommand({ Resources: [last!.id], Tags: [{ Key: 'N', Value: 'changed' }] }),
    );
    const after = await ec2.describeInstancePages({ tags: OURS });
    expect(after.digest).not.toBe(before.digest);
    await client.send(
      new CreateTagsCommand({ Resources: [last!.id], Tags: [{ Key: 'N', Value: last!.tags.N! }] }),
    );
    expect((await ec2.describeInstancePages({ tags: OURS })).digest).toBe(before.digest);
  });
});

describe('ListSecrets pages decoded from the JSON equal the SDK path', () => {
  it.each([2, 100])('page size %i', async (pageSize) => {
    const secrets = new SecretsManagerClient({
      endpoint: sim.url,
      region: sim.seed.region,
      credentials: SIM_CREDENTIALS,
      maxAttempts: 1,
    });
    const prefix = `listing/${pageSize}/`;
    for (let i = 0; i < 5; i++)
      await secrets.send(
        new CreateSecretCommand({
          Name: `${prefix}s${i}`,
          SecretString: `{"n":${i}}`,
          Tags:
            i === 0
              ? []
              : [
                  { Key: 'ManagedBy', Value: 'molecule-operator' },
                  { Key: 'Odd', Value: `a&b "${i}" 🐢` },
                ],
        }),
      );
    await secrets.send(new PutSecretValueCommand({ SecretId: `${prefix}s1`, SecretString: '{"n":"again"}' }));
    await secrets.send(new DeleteSecretCommand({ SecretId: `${prefix}s2`, RecoveryWindowInDays: 7 }));
    const ctx = { limiter: unlimited, target: 'primary' };
    const fast = await new SecretsAdapter(secrets, ctx, pageSize, true).listSecrets(prefix);
    const sdk = await new SecretsAdapter(secrets, ctx, pageSize, false).listSecrets(prefix);
    secrets.destroy();
    expect(fast).toHaveLength(5);
    expect(fast).toEqual(sdk);
    expect(fast.find((s) => s.name.endsWith('s2'))?.deletedDate).toBeInstanceOf(Date);
    expect(fast.find((s) => s.name.endsWith('s3'))?.tags.Odd).toBe('a&b "3" 🐢');
  });

  it('leaves to the SDK a page it does not expect', () => {
    for (const body of [
      'not json',
      '[]',
      '{"SecretList":{}}',
      '{"SecretList":[{"DeletedDate":"soon"}]}',
      '{"SecretList":[{"Tags":[{"Value":"x"}]}]}',
    ])
      expect(decodeListSecretsPage(Buffer.from(body))).toBeUndefined();
    expect(
      decodeListSecretsPage(
        Buffer.from('{"SecretList":[{"Name":"n","DeletedDate":1700000000.1234}],"NextToken":"t"}'),
      ),
    ).toEqual({
      secrets: [
        {
          arn: '',
          name: 'n',
          tags: {},
          currentVersionId: undefined,
          deletedDate: new Date(1700000000123),
          lastChangedDate: undefined,
        },
      ],
      nextToken: 't',
    });
  });
});

describe('pageParts', () => {
  const page = (token: string) =>
    `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">\n` +
    `  <requestId>REQ-${token}</requestId>\n  <reservationSet><item><reservationId>r-1</reservationId></item></reservationSet>\n` +
    (token ? `  <nextToken>${token}</nextToken>\n` : '') +
    '</DescribeInstancesResponse>\n';
  const joined = (parts: Buffer[]) => Buffer.concat(parts).toString();

  it('leaves the request id and the token out, wherever the chunks were cut', () => {
    const bytes = Buffer.from(page('tok&amp;1'));
    const whole = pageParts([bytes], 'reservationSet')!;
    expect(whole.token).toBe('tok&1');
    expect(joined(whole.content)).not.toMatch(/REQ|tok/);
    expect(joined(whole.content)).toContain('<reservationId>r-1</reservationId>');
    expect(joined(pageParts([Buffer.from(page('other'))], 'reservationSet')!.content)).toBe(
      joined(whole.content),
    );
    for (let a = 1; a < bytes.length - 1; a += 7)
      for (const b of [a + 1, a + 13, bytes.length - 3]) {
        if (b <= a || b >= bytes.length) continue;
        const cut = pageParts(
          [bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b)],
          'reservationSet',
        )!;
        expect(cut.token).toBe('tok&1');
        expect(joined(cut.content)).toBe(joined(whole.content));
      }
    const last = pageParts([Buffer.from(page(''))], 'reservationSet')!;
    expect(last.token).toBeUndefined();
    expect(joined(last.content)).toContain('<reservationId>r-1</reservationId>');
    expect(joined(last.content)).not.toMatch(/REQ/);
  });

  it('concludes nothing from a page laid out otherwise', () => {
    const odd = [
      page('t').replace('<requestId>', '<!-- c --><requestId>'), // something before the request id
      page('t')
        .replace('<nextToken>t</nextToken>', '')
        .replace('<reservationSet>', '<nextToken>t</nextToken><reservationSet>'),
      page('t').replace('</reservationSet>', '</reservationSet><extra/>'),
      page('t').replaceAll('reservationSet', 'securityGroupInfo'),
      '<DescribeInstancesResponse/>',
    ];
    for (const xml of odd) expect(pageParts([Buffer.from(xml)], 'reservationSet')).toBeUndefined();
    expect(
      pageParts(
        [Buffer.from(page('t').replaceAll('reservationSet', 'securityGroupInfo'))],
        'securityGroupInfo',
      ),
    ).toBeDefined();
  });
});

describe('the XML reader', () => {
  it('reads pretty-printed XML, entities, comments and IPv6 ranges', () => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <!-- a comment between elements -->
  <requestId>r</requestId>
  <securityGroupInfo>
    <item>
      <groupId>sg-1</groupId>
      <groupName>n &amp; m</groupName>
      <groupDescription>&#60;d&#x3E;</groupDescription>
      <ipPermissions>
        <item>
          <ipProtocol>tcp</ipProtocol>
          <fromPort>22</fromPort>
          <toPort>23</toPort>
          <groups/>
          <ipRanges>
          </ipRanges>
          <ipv6Ranges>
            <item><cidrIpv6>::/0</cidrIpv6><description>v6</description></item>
          </ipv6Ranges>
        </item>
      </ipPermissions>
      <tagSet><item><key>k</key><value/></item></tagSet>
    </item>
  </securityGroupInfo>
  <nextToken>t</nextToken>
</DescribeSecurityGroupsResponse>`;
    expect(decodeSecurityGroupsPage(xml)).toEqual({
      groups: [
        {
          id: 'sg-1',
          name: 'n & m',
          vpcId: undefined,
          description: '<d>',
          ingress: [{ protocol: 'tcp', fromPort: 22, toPort: 23, cidr: '::/0', description: 'v6' }],
          tags: { k: '' },
        },
      ],
      nextToken: 't',
    });
  });

  it('reads UTF-8 bytes, entities, attributes, self-closing tags, comments and nested elements', () => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\r
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <reservationSet>
    <item>
      <instancesSet>
        <item>
          <instanceId>i-1</instanceId>
          <placement><placement>nested</placement><tenancy>default</tenancy></placement>
          <instanceState><code>16</code><name><!-- before the text -->running</name></instanceState>
          <groupSet><item><groupId>sg-1</groupId></item><item><groupId/></item></groupSet>
          <clientToken />
          <launchTime>2024-01-31T12:34:56.789Z</launchTime>
          <tagSet note="a > b">
            <item><key>Unicode</key><value>żółw — 🐢</value></item>
            <item><key>Entities</key><value>&#128034;&#x1F422; &amp; &lt;b&gt;</value></item>
            <item><key>Empty</key><value /></item>
            <item><key>Blank</key><value>
            </value></item>
            <item><value>no key</value></item>
          </tagSet>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>
<!-- a comment after the root -->
`;
    expect(decodeInstancesPage(Buffer.from(xml, 'utf8'))).toStrictEqual({
      instances: [
        {
          id: 'i-1',
          state: 'running',
          instanceType: '',
          imageId: '',
          subnetId: undefined,
          vpcId: undefined,
          securityGroupIds: ['sg-1'],
          iamInstanceProfileArn: undefined,
          clientToken: undefined,
          launchTime: new Date('2024-01-31T12:34:56.789Z'),
          metadata: undefined,
          tags: { Unicode: 'żółw — 🐢', Entities: '🐢🐢 & <b>', Empty: '', Blank: '' },
        },
      ],
      nextToken: undefined,
    });
  });

  it('tells apart values that differ only where the table of shared values does not look', () => {
    // Same length, first, middle and last bytes: one slot of that table for all of them.
    const values = Array.from({ length: 40 }, (_, n) => `k${String(n).padStart(4, '0')}${'m'.repeat(16)}`);
    const long = 'L'.repeat(200);
    const tags = [...values, values[0]!, long].map(
      (v, n) => `<item><key>t${n}</key><value>${v}</value></item>`,
    );
    const group = `<item><groupId>sg-1</groupId><tagSet>${tags.join('')}</tagSet></item>`;
    const xml = `<R><securityGroupInfo>${group}</securityGroupInfo></R>`;
    const want = Object.fromEntries([...values, values[0]!, long].map((v, n) => [`t${n}`, v]));
    for (let pass = 0; pass < 2; pass++) {
      expect(decodeSecurityGroupsPage(Buffer.from(xml)).groups[0]!.tags).toStrictEqual(want);
    }
  });

  it('reads ports as numbers and empty source items as sources', () => {
    const xml =
      '<R><securityGroupInfo><item><ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>-1</fromPort>' +
      '<toPort>65535</toPort><ipRanges><item/><item><cidrIp>10.0.0.0/8</cidrIp><description/></item>' +
      '</ipRanges></item><item/><item><ipProtocol>udp</ipProtocol><fromPort> 53</fromPort><toPort/>' +
      '<groups><item><groupId>sg-2</groupId></item></groups></item></ipPermissions>' +
      '</item></securityGroupInfo></R>';
    const base = { protocol: 'tcp', fromPort: -1, toPort: 65535 };
    expect(decodeSecurityGroupsPage(xml).groups[0]!.ingress).toStrictEqual([
      { ...base, cidr: '' },
      { ...base, cidr: '10.0.0.0/8' },
      { protocol: 'udp', fromPort: 53, toPort: -1, sourceGroupId: 'sg-2' },
    ]);
  });

  it.each([
    ['CDATA', '<R><reservationSet><![CDATA[x]]></reservationSet></R>'],
    ['a DOCTYPE', '<!DOCTYPE R><R/>'],
    ['a comment inside a value', '<R><nextToken>a<!-- c -->b</nextToken></R>'],
    ['an element inside a value', '<R><nextToken>a<b/></nextToken></R>'],
    ['mismatched tags', '<R><a></b></R>'],
    ['a mismatched closing tag of a value', '<R><nextToken>a</nextTokens></R>'],
    ['truncated input', '<R><reservationSet>'],
    ['an unterminated comment', '<R><!-- </R>'],
    ['a second root element', '<R/><R/>'],
  ])('gives up on %s (the SDK deserializer takes over)', (_why, xml) => {
    expect(() => decodeInstancesPage(xml)).toThrow(UnsupportedXml);
  });
});
