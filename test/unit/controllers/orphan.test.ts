import { describe, expect, it } from 'vitest';
import {
  type CloudListing,
  classify,
  confirmLive,
  type LiveResource,
  type OpenOrphan,
  type OwnerRow,
  type Owners,
  orphanGauges,
  recheckScope,
  rereadVerdict,
  type StatusRef,
  selectDeletions,
  stillOrphaned,
  zeroByKind,
} from '../../../controllers/orphan.diff.js';
import type {
  Instance,
  ResourceKind,
  SecretSummary,
  SecurityGroup,
  TaggedResource,
  Tags,
} from '../../../src/cloud/ports.js';
import { ec2Instance } from './harness.js';

const ENV = 'test';
const ORG = '11111111-1111-4111-8111-111111111111';
const ORG2 = '22222222-2222-4222-8222-222222222222';
const WS = '33333333-3333-4333-8333-333333333333';
const GONE = '99999999-9999-4999-8999-999999999999';
const NOW = Date.parse('2025-01-01T12:00:00Z');
const HOUR = 3_600_000;

// --- fixture builders --------------------------------------------------------------------

const ours = (extra: Tags = {}, env = ENV): Tags => ({
  ManagedBy: 'molecule-operator',
  MOLECULE_ENV: env,
  ...extra,
});
const arnOf = (type: string, id: string) => `arn:aws:ec2:us-east-1:123456789012:${type}/${id}`;

const tagged = (resourceType: string, resourceId: string, tags: Tags, arn?: string): TaggedResource => ({
  arn: arn ?? arnOf(resourceType.split(':')[1]!, resourceId),
  resourceType,
  resourceId,
  tags,
});

const instance = (over: Partial<Instance> = {}): Instance =>
  ec2Instance({
    id: 'i-1',
    metadata: { httpTokens: 'required', hopLimit: 1 },
    tags: ours({ OrgID: ORG, Role: 'tenant' }),
    ...over,
  });

const group = (over: Partial<SecurityGroup> = {}): SecurityGroup => ({
  id: 'sg-1',
  name: `molecule-test-tenant-${ORG}`,
  vpcId: 'vpc-1',
  description: '',
  ingress: [],
  tags: ours({ OrgID: ORG, Role: 'tenant' }),
  ...over,
});

const secretArn = (name: string) => `arn:aws:secretsmanager:us-east-1:123456789012:secret:${name}-AbCdEf`;
const secret = (over: Partial<SecretSummary> = {}): SecretSummary => {
  const name = over.name ?? `molecule/test/tenant/${ORG}/bootstrap`;
  return {
    arn: secretArn(name),
    name,
    tags: ours({ OrgID: ORG, Role: 'tenant' }),
    currentVersionId: 'v1',
    deletedDate: undefined,
    lastChangedDate: undefined,
    ...over,
  };
};

const listing = (over: Partial<CloudListing> = {}): CloudListing => ({
  tagged: [],
  instances: [],
  securityGroups: [],
  secrets: [],
  tunnels: [],
  dnsRecords: [],
  ...over,
});

/** A listing where the Tagging API and the describe agree on one instance. */
const withInstance = (i: Instance): Partial<CloudListing> => ({
  tagged: [tagged('ec2:instance', i.id, i.tags)],
  instances: [i],
});

const resource = (over: Partial<LiveResource> = {}): LiveResource => ({
  kind: 'ec2_instance',
  externalId: 'i-1',
  name: undefined,
  orgId: ORG,
  workspaceId: undefined,
  keep: false,
  attachedTo: undefined,
  cnameTarget: undefined,
  details: {},
  ...over,
});

const owner = (id: string, over: Partial<OwnerRow> = {}): OwnerRow => ({
  id,
  deletionRequestedAt: null,
  purgedAt: null,
  ...over,
});

const owners = (over: Partial<Owners> = {}): Owners => ({
  orgs: [owner(ORG), owner(ORG2)],
  workspaces: [owner(WS, { orgId: ORG })],
  ...over,
});

const status = (
  controller: string,
  ownerId: string,
  externalIds: Record<string, string>,
  pending: unknown = null,
) => ({ controller, ownerId, externalIds, pending }) satisfies StatusRef;

const open = (over: Partial<OpenOrphan> = {}): OpenOrphan => ({
  kind: 'ec2_instance',
  externalId: 'i-1',
  reason: 'OwnerGone',
  ownerKind: 'org',
  ownerId: GONE,
  orgId: GONE,
  name: undefined,
  keep: false,
  details: {},
  firstSeen: new Date(NOW - 2 * HOUR),
  ...over,
});

// --- confirmLive ---------------------------------------------------------------------------

describe('confirmLive', () => {
  const counted = (l: CloudListing) => {
    const r = confirmLive(l, ENV);
    return { ids: r.resources.map((x) => `${x.kind}:${x.externalId}`), ghosts: r.ghosts };
  };

  it.each([
    {
      reason: 'a running instance listed and described',
      given: listing(withInstance(instance())),
      want: { ids: ['ec2_instance:i-1'], ghosts: 0 },
    },
    {
      reason: 'a stopped instance is still live',
      given: listing(withInstance(instance({ state: 'stopped' }))),
      want: { ids: ['ec2_instance:i-1'], ghosts: 0 },
    },
    {
      reason: 'a terminated instance is a ghost',
      given: listing(withInstance(instance({ state: 'terminated' }))),
      want: { ids: [], ghosts: 1 },
    },
    {
      reason: 'a shutting-down instance is a ghost',
      given: listing(withInstance(instance({ state: 'shutting-down' }))),
      want: { ids: [], ghosts: 1 },
    },
    {
      reason: 'an instance the describe no longer returns is a ghost',
      given: listing({ tagged: [tagged('ec2:instance', 'i-1', ours({ OrgID: ORG }))] }),
      want: { ids: [], ghosts: 1 },
    },
    {
      reason: 'an instance only the describe returns is not scanned (the Tagging API drives)',
      given: listing({ instances: [instance()] }),
      want: { ids: [], ghosts: 0 },
    },
    {
      reason: 'a security group confirmed by the describe',
      given: listing({
        tagged: [tagged('ec2:security-group', 'sg-1', group().tags)],
        securityGroups: [group()],
      }),
      want: { ids: ['security_group:sg-1'], ghosts: 0 },
    },
    {
      reason: 'a deleted security group is a ghost',
      given: listing({ tagged: [tagged('ec2:security-group', 'sg-1', group().tags)] }),
      want: { ids: [], ghosts: 1 },
    },
    {
      reason: 'a live secret',
      given: listing({
        tagged: [tagged('secretsmanager:secret', 'x', secret().tags, secret().arn)],
        secrets: [secret()],
      }),
      want: { ids: [`secret:${secret().arn}`], ghosts: 0 },
    },
    {
      reason: 'a secret scheduled for deletion is a ghost',
      given: listing({
        tagged: [tagged('secretsmanager:secret', 'x', secret().tags, secret().arn)],
        secrets: [secret({ deletedDate: new Date(NOW) })],
      }),
      want: { ids: [], ghosts: 1 },
    },
    {
      reason: 'a purged secret is a ghost',
      given: listing({ tagged: [tagged('secretsmanager:secret', 'x', secret().tags, secret().arn)] }),
      want: { ids: [], ghosts: 1 },
    },
    {
      reason: 'another env in the tags is never counted',
      given: listing(withInstance(instance({ tags: ours({ OrgID: ORG }, 'prod') }))),
      want: { ids: [], ghosts: 0 },
    },
    {
      reason: 'a tagged volume of an instance that is live is live (attached)',
      given: listing({
        ...withInstance(instance()),
        tagged: [
          tagged('ec2:instance', 'i-1', instance().tags),
          tagged('ec2:volume', 'vol-1', instance().tags),
        ],
      }),
      want: { ids: ['ec2_instance:i-1', `other:${arnOf('volume', 'vol-1')}`], ghosts: 0 },
    },
    {
      reason: 'the volume of a terminated instance is a ghost with it',
      given: listing({
        instances: [instance({ state: 'terminated' })],
        tagged: [
          tagged('ec2:instance', 'i-1', instance().tags),
          tagged('ec2:volume', 'vol-1', instance().tags),
        ],
      }),
      want: { ids: [], ghosts: 2 },
    },
    {
      reason: 'a volume with no instance of its owner listed stands alone',
      given: listing({ tagged: [tagged('ec2:volume', 'vol-1', ours({ OrgID: GONE }))] }),
      want: { ids: [`other:${arnOf('volume', 'vol-1')}`], ghosts: 0 },
    },
    {
      reason: 'a tunnel named for this env',
      given: listing({
        tunnels: [
          {
            id: 't1',
            name: `molecule-test-${ORG}`,
            createdAt: undefined,
            deletedAt: undefined,
            status: 'inactive',
          },
        ],
      }),
      want: { ids: ['cf_tunnel:t1'], ghosts: 0 },
    },
    {
      reason: 'a tunnel of an env sharing the prefix (molecule-test-2-…) is foreign',
      given: listing({
        tunnels: [
          {
            id: 't1',
            name: `molecule-test-2-${ORG}`,
            createdAt: undefined,
            deletedAt: undefined,
            status: undefined,
          },
        ],
      }),
      want: { ids: [], ghosts: 0 },
    },
    {
      reason: 'a DNS record with our exact comment',
      given: listing({
        dnsRecords: [
          {
            id: 'r1',
            name: 'a.x',
            type: 'CNAME',
            content: 't.cfargotunnel.com',
            proxied: true,
            comment: `molecule-operator env=test org=${ORG}`,
          },
        ],
      }),
      want: { ids: ['cf_dns_record:r1'], ghosts: 0 },
    },
    {
      reason: 'a DNS record with another env in its comment is foreign',
      given: listing({
        dnsRecords: [
          {
            id: 'r1',
            name: 'a.x',
            type: 'CNAME',
            content: 'x',
            proxied: true,
            comment: `molecule-operator env=test-2 org=${ORG}`,
          },
        ],
      }),
      want: { ids: [], ghosts: 0 },
    },
  ])('$reason', ({ given, want }) => {
    expect(counted(given)).toEqual(want);
  });

  it('takes the owner of a secret without an OrgID tag from its name', () => {
    const s = secret({ tags: ours() });
    const r = confirmLive(
      listing({ tagged: [tagged('secretsmanager:secret', 'x', s.tags, s.arn)], secrets: [s] }),
      ENV,
    );
    expect(r.resources[0]).toMatchObject({ kind: 'secret', orgId: ORG, name: s.name });
  });

  it('reads the keep tag from the describe, the source of truth', () => {
    const i = instance({ tags: ours({ OrgID: ORG, 'molecule-keep': 'true' }) });
    const r = confirmLive(
      listing({ tagged: [tagged('ec2:instance', 'i-1', ours({ OrgID: ORG }))], instances: [i] }),
      ENV,
    );
    expect(r.resources[0]?.keep).toBe(true);
  });

  it('does not scan Cloudflare kinds when Cloudflare is not configured', () => {
    expect(confirmLive(listing({ tunnels: undefined, dnsRecords: undefined }), ENV).scanned).toEqual([
      'ec2_instance',
      'security_group',
      'secret',
      'other',
    ]);
  });
});

// --- classify ------------------------------------------------------------------------------

describe('classify', () => {
  const reasons = (resources: LiveResource[], o: Owners, s: StatusRef[] = []) =>
    classify(resources, o, s).orphans.map((x) => `${x.externalId}:${x.reason}`);

  it.each<{
    reason: string;
    resources: LiveResource[];
    owners?: Owners;
    statuses?: StatusRef[];
    want: string[];
  }>([
    { reason: 'a tenant instance of a live org is managed', resources: [resource()], want: [] },
    { reason: 'an org that does not exist', resources: [resource({ orgId: GONE })], want: ['i-1:OwnerGone'] },
    {
      reason: 'a made-up, non-UUID OrgID',
      resources: [resource({ orgId: 'made-up' })],
      want: ['i-1:OwnerGone'],
    },
    {
      reason: 'a purged org',
      resources: [resource()],
      owners: owners({ orgs: [owner(ORG, { purgedAt: new Date(NOW) })] }),
      want: ['i-1:OwnerGone'],
    },
    {
      reason: 'an org being deleted is the cascade’s, not an orphan',
      resources: [resource()],
      owners: owners({ orgs: [owner(ORG, { deletionRequestedAt: new Date(NOW) })] }),
      want: [],
    },
    {
      reason: 'a workspace instance of a live workspace',
      resources: [resource({ workspaceId: WS })],
      want: [],
    },
    {
      reason: 'a workspace that does not exist (org live)',
      resources: [resource({ workspaceId: GONE })],
      want: ['i-1:OwnerGone'],
    },
    {
      reason: 'a purged workspace',
      resources: [resource({ workspaceId: WS })],
      owners: owners({ workspaces: [owner(WS, { orgId: ORG, purgedAt: new Date(NOW) })] }),
      want: ['i-1:OwnerGone'],
    },
    {
      reason: 'a workspace whose org is being deleted',
      resources: [resource({ workspaceId: WS })],
      owners: owners({ orgs: [owner(ORG, { deletionRequestedAt: new Date(NOW) })] }),
      want: [],
    },
    {
      reason: 'no OrgID tag',
      resources: [resource({ orgId: undefined })],
      want: ['i-1:NoOwnerTag'],
    },
    {
      reason: 'a second instance the owner status does not point to',
      resources: [resource(), resource({ externalId: 'i-2' })],
      statuses: [status('instance', ORG, { instanceId: 'i-1' })],
      want: ['i-2:Duplicate'],
    },
    {
      reason: 'no duplicate while a create is pending',
      resources: [resource(), resource({ externalId: 'i-2' })],
      statuses: [status('instance', ORG, { instanceId: 'i-1' }, { token: 't', startedAt: '' })],
      want: [],
    },
    {
      reason: 'no duplicate when the status records no id',
      resources: [resource(), resource({ externalId: 'i-2' })],
      statuses: [status('instance', ORG, {})],
      want: [],
    },
    {
      reason: 'no duplicate when the recorded id is not live (the controller is about to switch)',
      resources: [resource({ externalId: 'i-2' })],
      statuses: [status('instance', ORG, { instanceId: 'i-1' })],
      want: [],
    },
    {
      reason: 'a duplicate security group of a workspace',
      resources: [
        resource({ kind: 'security_group', externalId: 'sg-1', workspaceId: WS }),
        resource({ kind: 'security_group', externalId: 'sg-2', workspaceId: WS }),
      ],
      statuses: [status('securitygroup', WS, { groupId: 'sg-2' })],
      want: ['sg-1:Duplicate'],
    },
    {
      reason: 'a duplicate secret by ARN',
      resources: [
        resource({ kind: 'secret', externalId: 'arn:a' }),
        resource({ kind: 'secret', externalId: 'arn:b' }),
      ],
      statuses: [status('secrets', ORG, { secretArn: 'arn:a' })],
      want: ['arn:b:Duplicate'],
    },
    {
      reason: 'a tunnel of a purged org',
      resources: [resource({ kind: 'cf_tunnel', externalId: 't1', orgId: GONE })],
      want: ['t1:OwnerGone'],
    },
    {
      reason: 'a CNAME pointing at another tunnel than the owner’s',
      resources: [resource({ kind: 'cf_dns_record', externalId: 'r1', cnameTarget: 'tx.cfargotunnel.com' })],
      statuses: [status('tunnel', ORG, { tunnelId: 't1' })],
      want: ['r1:ForeignTunnel'],
    },
    {
      reason: 'a CNAME pointing at the owner’s tunnel',
      resources: [resource({ kind: 'cf_dns_record', externalId: 'r1', cnameTarget: 't1.cfargotunnel.com' })],
      statuses: [status('tunnel', ORG, { tunnelId: 't1' })],
      want: [],
    },
    {
      reason: 'the owner’s own record drifted: the tunnel controller fixes it',
      resources: [resource({ kind: 'cf_dns_record', externalId: 'r1', cnameTarget: 'tx.cfargotunnel.com' })],
      statuses: [status('tunnel', ORG, { tunnelId: 't1', dnsRecordId: 'r1' })],
      want: [],
    },
    {
      reason: 'no foreign-tunnel verdict while the owner has no tunnel id',
      resources: [resource({ kind: 'cf_dns_record', externalId: 'r1', cnameTarget: 'tx.cfargotunnel.com' })],
      statuses: [status('tunnel', ORG, {})],
      want: [],
    },
    {
      reason: 'a root volume is never its own orphan',
      resources: [
        resource({ orgId: GONE }),
        resource({ kind: 'other', externalId: 'arn:vol', orgId: GONE, attachedTo: 'i-1' }),
      ],
      want: ['i-1:OwnerGone'],
    },
    {
      reason: 'a standalone volume of a gone owner',
      resources: [resource({ kind: 'other', externalId: 'arn:vol', orgId: GONE })],
      want: ['arn:vol:OwnerGone'],
    },
  ])('$reason', ({ resources, owners: o, statuses, want }) => {
    expect(reasons(resources, o ?? owners(), statuses)).toEqual(want);
  });

  it('counts every live resource as managed, orphans and attached volumes included, with every kind present', () => {
    const { managed } = classify(
      [
        resource(),
        resource({ externalId: 'i-2', orgId: GONE }),
        resource({ kind: 'other', externalId: 'v', attachedTo: 'i-1' }),
        resource({ kind: 'cf_tunnel', externalId: 't' }),
      ],
      owners(),
      [],
    );
    expect(managed).toEqual({ ...zeroByKind(), ec2_instance: 2, other: 1, cf_tunnel: 1 });
  });

  it('carries owner, name and keep into the orphan', () => {
    const [o] = classify([resource({ workspaceId: GONE, name: 'n', keep: true })], owners(), []).orphans;
    expect(o).toMatchObject({ ownerKind: 'workspace', ownerId: GONE, orgId: ORG, name: 'n', keep: true });
  });
});

// --- selectDeletions -----------------------------------------------------------------------

describe('selectDeletions', () => {
  const policy = {
    now: NOW,
    policy: 'delete' as const,
    graceMs: HOUR,
    maxDeletions: 10,
    maxFraction: 1,
    managedTotal: 100,
  };
  const plan = (orphans: OpenOrphan[], over: Partial<typeof policy> = {}) => {
    const p = selectDeletions(orphans, { ...policy, ...over });
    return {
      delete: p.delete.map((o) => o.externalId),
      skipped: p.skipped.map((s) => `${s.orphan.externalId}:${s.why}`),
      blocked: p.blocked,
    };
  };

  it.each<{
    reason: string;
    given: OpenOrphan[];
    over?: Partial<typeof policy>;
    want: ReturnType<typeof plan>;
  }>([
    {
      reason: 'report policy decides nothing',
      given: [open()],
      over: { policy: 'report' as never },
      want: { delete: [], skipped: [], blocked: false },
    },
    {
      reason: 'an orphan past its grace',
      given: [open()],
      want: { delete: ['i-1'], skipped: [], blocked: false },
    },
    {
      reason: 'exactly at the grace boundary is eligible',
      given: [open({ firstSeen: new Date(NOW - HOUR) })],
      want: { delete: ['i-1'], skipped: [], blocked: false },
    },
    {
      reason: 'inside the grace period',
      given: [open({ firstSeen: new Date(NOW - HOUR + 1) })],
      want: { delete: [], skipped: ['i-1:InGrace'], blocked: false },
    },
    {
      reason: 'the keep tag',
      given: [open({ keep: true })],
      want: { delete: [], skipped: ['i-1:KeepTag'], blocked: false },
    },
    {
      reason: 'NoOwnerTag is never deleted, however old',
      given: [open({ reason: 'NoOwnerTag', firstSeen: new Date(0) })],
      want: { delete: [], skipped: ['i-1:NoOwnerTag'], blocked: false },
    },
    {
      reason: 'other kinds have no deleter',
      given: [open({ kind: 'other', externalId: 'arn:vol' })],
      want: { delete: [], skipped: ['arn:vol:NoDeleter'], blocked: false },
    },
    {
      reason: 'the per-scan cap keeps the first in dependency order',
      given: [
        open({ kind: 'security_group', externalId: 'sg-1' }),
        open({ externalId: 'i-1' }),
        open({ externalId: 'i-2' }),
      ],
      over: { maxDeletions: 2 },
      want: { delete: ['i-1', 'i-2'], skipped: ['sg-1:PerScanCap'], blocked: false },
    },
    {
      reason: 'a cap of 0 deletes nothing',
      given: [open()],
      over: { maxDeletions: 0 },
      want: { delete: [], skipped: ['i-1:PerScanCap'], blocked: false },
    },
    {
      reason: 'the fraction guard blocks everything when orphans exceed it',
      given: [open(), open({ externalId: 'i-2' }), open({ externalId: 'i-3', keep: true })],
      over: { maxFraction: 0.2, managedTotal: 10 },
      want: { delete: [], skipped: ['i-1:FractionGuard', 'i-2:FractionGuard', 'i-3:KeepTag'], blocked: true },
    },
    {
      reason: 'at exactly the fraction, deletion proceeds',
      given: [open(), open({ externalId: 'i-2' })],
      over: { maxFraction: 0.2, managedTotal: 10 },
      want: { delete: ['i-1', 'i-2'], skipped: [], blocked: false },
    },
    {
      reason: 'dependency order: instances, groups, secrets; DNS records before tunnels',
      given: [
        open({ kind: 'cf_tunnel', externalId: 't1' }),
        open({ kind: 'secret', externalId: 'arn:s' }),
        open({ kind: 'cf_dns_record', externalId: 'r1' }),
        open({ kind: 'security_group', externalId: 'sg-1' }),
        open({ kind: 'ec2_instance', externalId: 'i-1' }),
      ],
      want: { delete: ['i-1', 'sg-1', 'arn:s', 'r1', 't1'], skipped: [], blocked: false },
    },
    {
      reason: 'oldest first within a kind',
      given: [
        open({ externalId: 'i-new', firstSeen: new Date(NOW - 2 * HOUR) }),
        open({ externalId: 'i-old', firstSeen: new Date(NOW - 5 * HOUR) }),
      ],
      over: { maxDeletions: 1 },
      want: { delete: ['i-old'], skipped: ['i-new:PerScanCap'], blocked: false },
    },
  ])('$reason', ({ given, over, want }) => {
    expect(plan(given, over)).toEqual(want);
  });
});

describe('orphanGauges', () => {
  it('reports every kind, 0 when none, with the oldest age in seconds', () => {
    const g = orphanGauges(
      [
        open({ firstSeen: new Date(NOW - 90_000) }),
        open({ externalId: 'i-2', firstSeen: new Date(NOW - 30_000) }),
      ],
      NOW,
    );
    const kinds: ResourceKind[] = [
      'ec2_instance',
      'security_group',
      'secret',
      'cf_tunnel',
      'cf_dns_record',
      'other',
    ];
    expect(Object.keys(g.counts).sort()).toEqual([...kinds].sort());
    expect(g.counts.ec2_instance).toBe(2);
    expect(g.counts.secret).toBe(0);
    expect(g.oldestSeconds.ec2_instance).toBe(90);
    expect(g.oldestSeconds.cf_tunnel).toBe(0);
  });
});

describe('the re-check before a deletion', () => {
  const gone = open({ orgId: GONE, ownerId: GONE });
  const listed = [
    resource({ orgId: GONE }),
    resource({ externalId: 'i-2', orgId: ORG }),
    resource({ kind: 'security_group', externalId: 'sg-1', orgId: ORG2 }),
    resource({ externalId: 'i-3', orgId: 'made-up', workspaceId: WS }),
  ];

  it('reads again only the owners the orphan itself names, and only UUIDs', () => {
    expect(recheckScope(gone, listed)).toEqual({
      sameKind: listed.slice(0, 2).concat(listed[3]!),
      ownerIds: [GONE],
    });
    expect(recheckScope(open({ externalId: 'i-3' }), listed).ownerIds).toEqual([WS]);
  });

  it.each<{ reason: string; given: { owners: Owners; statuses?: StatusRef[] }; want: boolean }>([
    { reason: 'the owner is still gone', given: { owners: owners() }, want: true },
    {
      reason: 'the owner row was written since the listing',
      given: { owners: owners({ orgs: [owner(ORG), owner(GONE)] }) },
      want: false,
    },
    {
      reason: 'the owner is being deleted now: its cascade removes the resource',
      given: { owners: owners({ orgs: [owner(GONE, { deletionRequestedAt: new Date(NOW) })] }) },
      want: false,
    },
    {
      reason: 'the owner was purged since: still an orphan, for the same reason',
      given: { owners: owners({ orgs: [owner(GONE, { purgedAt: new Date(NOW) })] }) },
      want: true,
    },
  ])('$reason', ({ given, want }) => {
    const { sameKind } = recheckScope(gone, listed);
    expect(stillOrphaned(gone, sameKind, given.owners, given.statuses ?? [])).toBe(want);
  });

  it('an orphan found for another reason is not the one the scan decided on', () => {
    const duplicate = open({ externalId: 'i-1', reason: 'Duplicate', orgId: ORG, ownerId: ORG });
    const own = [resource(), resource({ externalId: 'i-2' })];
    const statuses = [status('instance', ORG, { instanceId: 'i-2' })];
    expect(stillOrphaned(duplicate, own, owners(), statuses)).toBe(true);
    expect(stillOrphaned({ ...duplicate, reason: 'OwnerGone' }, own, owners(), statuses)).toBe(false);
  });
});

describe('rereadVerdict', () => {
  const orphan = open({ orgId: GONE, ownerId: GONE });
  const wsOrphan = open({ ownerKind: 'workspace', ownerId: WS, orgId: ORG });
  it.each<{ reason: string; given: { o?: OpenOrphan; tags: Tags | undefined }; want: string | undefined }>([
    { reason: 'unchanged: delete it', given: { tags: ours({ OrgID: GONE }) }, want: undefined },
    { reason: 'gone from its service', given: { tags: undefined }, want: 'NoLongerOrphan' },
    { reason: 'our tags stripped', given: { tags: { OrgID: GONE } }, want: 'NoLongerOrphan' },
    { reason: 'now of another env', given: { tags: ours({ OrgID: GONE }, 'prod') }, want: 'NoLongerOrphan' },
    { reason: 'now naming another org', given: { tags: ours({ OrgID: ORG }) }, want: 'NoLongerOrphan' },
    {
      reason: 'a keep mark added since the listing',
      given: { tags: ours({ OrgID: GONE, 'molecule-keep': 'true' }) },
      want: 'KeepTag',
    },
    {
      reason: 'a workspace orphan naming the same workspace',
      given: { o: wsOrphan, tags: ours({ OrgID: ORG, WorkspaceID: WS }) },
      want: undefined,
    },
    {
      reason: 'a workspace orphan now naming another workspace',
      given: { o: wsOrphan, tags: ours({ OrgID: ORG, WorkspaceID: GONE }) },
      want: 'NoLongerOrphan',
    },
  ])('$reason', ({ given, want }) => {
    expect(rereadVerdict(given.o ?? orphan, ENV, given.tags ? { tags: given.tags } : undefined)).toBe(want);
  });
});
