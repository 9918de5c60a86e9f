import { registry } from '../../../controllers/index.js';
import type { Org, StatusRow, Workspace } from '../../../schema/index.js';
import type { CloudView } from '../../../src/cloud/inventory.js';
import type {
  CloudPorts,
  CommandInvocation,
  DnsRecord,
  Instance,
  RunCommand,
  SecretSummary,
  SecurityGroup,
  Tunnel,
  TunnelConfig,
} from '../../../src/cloud/ports.js';
import { targetSettings } from '../../../src/cloud/targets.js';
import type { Config } from '../../../src/config.js';
import { TAG } from '../../../src/provisioning/tags.js';
import type {
  ControllerSpec,
  DesiredInput,
  Observation,
  RolloutGate,
} from '../../../src/runtime/controller.js';
import { NotFoundError } from '../../../src/runtime/errors.js';
import { type Action, decideAction } from '../../../src/runtime/reconciler.js';
import { testConfig } from '../../fixtures/config.js';

/*
 * Table tests of one controller's observe → decide: given the desired rows and what the cloud
 * holds, which action the reconciler takes. The cloud here is an in-memory stand-in at the port
 * boundary (CloudView and the few per-object reads controllers make).
 */

export const ORG_ID = '0b7c1c5e-9f4b-4d0e-8a51-1c2d3e4f5a6b';
export const WS_ID = '6f1d2c3b-4a59-4867-9a0b-1c2d3e4f5a6c';
export const NOW = Date.parse('2026-06-01T12:00:00Z');

const BASE_ENV = {
  EC2_VPC_ID: 'vpc-0a1b2c3d4e5f60718',
  EC2_SUBNET_ID: 'subnet-0a1b2c3d4e5f60718',
  EIC_ENDPOINT_SG_ID: 'sg-0e1c0e1c0e1c0e1c0',
  EC2_TENANT_IAM_PROFILE: 'molecule-tenant',
  EC2_WORKSPACE_IAM_PROFILE: 'molecule-workspace',
  CLOUDFLARE_API_TOKEN: 'cf-token',
  CLOUDFLARE_ACCOUNT_ID: '0123456789abcdef0123456789abcdef',
  CLOUDFLARE_ZONE_ID: 'fedcba9876543210fedcba9876543210',
  PROVISION_SHARED_SECRET: 'shared',
  GHCR_PULL_TOKEN: 'ghcr',
};
export const config: Config = testConfig(BASE_ENV);

export const org = (over: Partial<Org> = {}): Org => ({
  id: ORG_ID,
  slug: 'acme',
  name: 'Acme',
  isCanary: false,
  powerState: 'running',
  generation: 1,
  redeployGeneration: 0,
  deletionRequestedAt: null,
  finalizers: [],
  purgedAt: null,
  createdAt: new Date(NOW),
  updatedAt: new Date(NOW),
  target: 'primary',
  ...over,
});

export const workspace = (over: Partial<Workspace> = {}): Workspace => ({
  id: WS_ID,
  orgId: ORG_ID,
  name: 'ws',
  runtime: 'langgraph',
  tier: 4,
  powerState: 'running',
  generation: 1,
  redeployGeneration: 0,
  deletionRequestedAt: null,
  finalizers: [],
  purgedAt: null,
  createdAt: new Date(NOW),
  updatedAt: new Date(NOW),
  ...over,
});

/** An EC2 instance as the port describes it: a running t3.small with only its id and tags set. */
export const ec2Instance = (over: Partial<Instance> & Pick<Instance, 'id' | 'tags'>): Instance => ({
  state: 'running',
  instanceType: 't3.small',
  imageId: 'ami-1',
  subnetId: undefined,
  vpcId: undefined,
  securityGroupIds: [],
  iamInstanceProfileArn: undefined,
  clientToken: undefined,
  launchTime: undefined,
  metadata: undefined,
  ...over,
});

export const status = (controller: string, over: Partial<StatusRow> = {}): StatusRow => ({
  controller,
  ownerId: ORG_ID,
  ownerKind: 'org',
  orgId: ORG_ID,
  ready: true,
  reason: 'Available',
  message: '',
  observedGeneration: 1,
  externalIds: {},
  state: {},
  pending: null,
  attempts: 0,
  lastError: null,
  nextAttemptAt: null,
  lastReconciledAt: null,
  createdAt: new Date(NOW),
  updatedAt: new Date(NOW),
  ...over,
});

/** What the stand-in cloud holds. */
export interface Cloud {
  instances?: Instance[];
  groups?: SecurityGroup[];
  secrets?: SecretSummary[];
  secretValues?: Record<string, string>;
  /** Resource policies by secret name. */
  secretPolicies?: Record<string, string>;
  tunnels?: Tunnel[];
  tunnelTokens?: Record<string, string>;
  configs?: Record<string, TunnelConfig>;
  records?: DnsRecord[];
  vpcCidr?: string;
  /** SSM: commands by instance (newest first), and invocations by command id (absent: not visible yet). */
  commands?: Record<string, RunCommand[]>;
  invocations?: Record<string, CommandInvocation>;
}

export interface Given {
  org?: Partial<Org>;
  /** A workspace owner (else the org is the owner). */
  workspace?: Partial<Workspace>;
  /** Status rows of the owner, by controller (the controller's own included). */
  self?: Record<string, Partial<StatusRow>>;
  /** Status rows of the org, for a workspace owner. */
  org_?: Record<string, Partial<StatusRow>>;
  cloud?: Cloud;
  deleting?: boolean;
  /** Environment variables over the harness's own. */
  config?: Record<string, string>;
  /** Image pins by runtime, AMI pins by runtime. */
  pins?: { images?: Record<string, string>; amis?: Record<string, string> };
  rollout?: RolloutGate;
}

export interface Decided {
  action: Action;
  obs: Observation;
}

const noop = async () => {
  throw new Error('the decision made a mutating call');
};

/** Runs the spec's desired → observe, then the reconciler's decision. */
export async function decide(spec: ControllerSpec, g: Given): Promise<Decided> {
  const cloud = g.cloud ?? {};
  const cfg = g.config ? testConfig({ ...BASE_ENV, ...g.config }) : config;
  const o = org({ ...g.org, ...(g.deleting ? { deletionRequestedAt: new Date(NOW) } : {}) });
  const ws = g.workspace ? workspace(g.workspace) : undefined;
  const owner = ws ? { kind: 'workspace' as const, id: ws.id } : { kind: 'org' as const, id: o.id };
  const rows = (m: Record<string, Partial<StatusRow>> | undefined) =>
    Object.fromEntries(Object.entries(m ?? {}).map(([c, r]) => [c, status(c, { ownerId: owner.id, ...r })]));
  const self = rows(g.self);
  const input: DesiredInput = {
    now: NOW,
    config: cfg,
    target: targetSettings(cfg)[0]!,
    owner,
    org: o,
    workspace: ws,
    self,
    org_: ws ? rows(g.org_) : self,
    pins: { ami: (r) => g.pins?.amis?.[r], image: (r) => g.pins?.images?.[r] },
    enabled: new Set(registry.names),
    ...(g.rollout ? { rollout: g.rollout } : {}),
  };
  const client = spec.create(portsOf(cloud));
  const desired = client.desired(input);
  const st = self[spec.name];
  const obs = await client.observe(desired, {
    view: viewOf(cloud),
    deleting: !!g.deleting,
    resync: false,
    allowDeepCheck: () => true,
    assertLeader: () => {
      throw new Error('observing never acts');
    },
    status: st,
  });
  const action = decideAction(
    { deleting: !!g.deleting, generation: (ws ?? o).generation, status: st },
    obs,
    (previous) => client.createToken(desired, obs, previous),
    { now: NOW, createGraceMs: cfg.CREATE_GRACE, pollIntervalMs: 2_000 },
  );
  return { action, obs };
}

function viewOf(cloud: Cloud): CloudView {
  return {
    source: 'live',
    instances: async (owner) =>
      (cloud.instances ?? []).filter((i) =>
        owner.kind === 'org'
          ? i.tags[TAG.role] === 'tenant' && i.tags[TAG.orgId] === owner.id
          : i.tags[TAG.workspaceId] === owner.id,
      ),
    securityGroups: async (name) => (cloud.groups ?? []).filter((g) => g.name === name),
    secrets: async (name) => (cloud.secrets ?? []).filter((s) => s.name === name),
    tunnels: async (name) => (cloud.tunnels ?? []).filter((t) => t.name === name && !t.deletedAt),
    dnsRecords: async (name) => (cloud.records ?? []).filter((r) => r.name === name),
  };
}

/** Only the per-object reads controllers make while observing; every mutation fails the test. */
function portsOf(cloud: Cloud): CloudPorts {
  return {
    ec2: {
      describeVpcCidr: async () => cloud.vpcCidr ?? '10.42.0.0/16',
      describeInstances: noop,
      describeSecurityGroups: noop,
      runInstance: noop,
      terminateInstance: noop,
      stopInstance: noop,
      startInstance: noop,
      modifyInstanceType: noop,
      requireImdsV2: noop,
      tagResources: noop,
      createSecurityGroup: noop,
      authorizeIngress: noop,
      revokeIngress: noop,
      deleteSecurityGroup: noop,
    },
    secrets: {
      getSecretValue: async (name) => ({ value: cloud.secretValues?.[name] ?? '{}', versionId: 'v1' }),
      listSecrets: noop,
      describeSecret: noop,
      createSecret: noop,
      putSecretValue: noop,
      restoreSecret: noop,
      deleteSecret: noop,
      tagSecret: noop,
      getResourcePolicy: async (name) => cloud.secretPolicies?.[name],
      putResourcePolicy: noop,
    },
    tagging: { getResources: noop },
    ssm: {
      sendShellCommand: noop,
      findCommand: async (instanceId, comment) =>
        (cloud.commands?.[instanceId] ?? []).find((c) => c.comment === comment),
      getInvocation: async (commandId) => {
        const inv = cloud.invocations?.[commandId];
        if (!inv) throw new NotFoundError('ssm GetCommandInvocation: InvocationDoesNotExist');
        return inv;
      },
    },
    tunnels: {
      getConfiguration: async (id) => cloud.configs?.[id],
      getTunnelToken: async (id) => cloud.tunnelTokens?.[id] ?? `token-${id}`,
      listTunnels: noop,
      createTunnel: noop,
      deleteTunnel: noop,
      putConfiguration: noop,
    },
    dns: { listRecords: noop, createRecord: noop, updateRecord: noop, deleteRecord: noop },
  };
}
