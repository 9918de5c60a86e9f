import { describe, expect, it } from 'vitest';
import { redeploy } from '../../../controllers/index.js';
import type { Instance } from '../../../src/cloud/ports.js';
import { type RedeployRecord, redeployComment } from '../../../src/provisioning/rollout.js';
import { ownerTags } from '../../../src/provisioning/tags.js';
import { config, decide, type Given, NOW, ORG_ID, WS_ID } from './harness.js';

const OLD = 'ghcr.io/m/platform:1';
const NEW = config.TENANT_IMAGE;
const vm = (over: Partial<Instance> = {}, tags: Record<string, string> = {}): Instance => ({
  id: 'i-0123456789abcdef0',
  state: 'running',
  instanceType: config.EC2_INSTANCE_TYPE,
  imageId: config.EC2_AMI,
  subnetId: config.EC2_SUBNET_ID,
  vpcId: config.EC2_VPC_ID,
  securityGroupIds: [],
  iamInstanceProfileArn: undefined,
  clientToken: `${ORG_ID}-1`,
  launchTime: new Date(NOW - 3_600_000),
  metadata: { httpTokens: 'required', hopLimit: 1 },
  tags: {
    ...ownerTags({ env: 'test', orgId: ORG_ID, orgSlug: 'acme', name: 'molecule-test-tenant-acme' }),
    Image: NEW,
    ...tags,
  },
  ...over,
});
const at = (ms: number) => new Date(NOW + ms).toISOString();
const given = (record: RedeployRecord, over: Partial<Given> = {}, instance = vm()): Given => ({
  self: {
    instance: { ready: true, externalIds: { instanceId: instance.id } },
    redeploy: { ready: true, state: record as Record<string, unknown> },
  },
  cloud: { instances: [instance] },
  ...over,
});
const inFlight = (image = NEW, generation = 0) => ({
  attempt: { image, generation, try: 1, commandId: 'c-1', instanceId: vm().id, sentAt: at(-5_000) },
});

interface Case {
  reason: string;
  given: Given;
  want: {
    action: string;
    token?: string;
    condition?: string;
    message?: RegExp;
    state?: Partial<RedeployRecord>;
  };
}

const cases: Case[] = [
  {
    // (The instance carries no BootScript tag, as one launched before boot scripts were
    // fingerprinted: it is not judged Outdated on it.)
    reason: 'runs the desired image: nothing to do',
    given: given({ image: NEW }),
    want: { action: 'none', condition: 'Deployed' },
  },
  {
    reason: 'desired image differs from the Image tag: send, named by owner, generation, try and image',
    given: given({}, {}, vm({}, { Image: OLD })),
    want: { action: 'create', token: redeployComment(ORG_ID, 0, 1, NEW) },
  },
  {
    reason: 'an explicit request (redeploy generation 1) re-pulls the same tag',
    given: given({ image: NEW }, { org: { redeployGeneration: 1 } }),
    want: { action: 'create', token: redeployComment(ORG_ID, 1, 1, NEW) },
  },
  {
    reason: 'a stopped instance gets no command',
    given: given({}, {}, vm({ state: 'stopped' }, { Image: OLD })),
    want: { action: 'none', condition: 'InstanceStopped' },
  },
  {
    reason: 'a command in flight is followed, not sent again',
    given: given(inFlight(), {
      cloud: {
        instances: [vm({}, { Image: OLD })],
        invocations: { 'c-1': { status: 'InProgress', responseCode: -1, stderrTail: '' } },
      },
    }),
    want: { action: 'none', condition: 'Redeploying', message: /InProgress/ },
  },
  {
    reason: 'right after the send the invocation does not exist yet: wait',
    given: given(inFlight(), { cloud: { instances: [vm({}, { Image: OLD })] } }),
    want: { action: 'none', condition: 'Redeploying', message: /not visible yet/ },
  },
  {
    reason: 'success: the Image tag follows',
    given: given(inFlight(), {
      cloud: {
        instances: [vm({}, { Image: OLD })],
        invocations: { 'c-1': { status: 'Success', responseCode: 0, stderrTail: '' } },
      },
    }),
    want: { action: 'update', state: { attempt: null, failure: null } },
  },
  {
    reason: 'failure: a condition with the status and stderr tail, retried after a backoff',
    given: given(inFlight(), {
      cloud: {
        instances: [vm({}, { Image: OLD })],
        invocations: { 'c-1': { status: 'Failed', responseCode: 1, stderrTail: 'pull access denied' } },
      },
    }),
    want: {
      action: 'none',
      condition: 'RedeployFailed',
      message: /Failed \(exit 1\) on try 1: pull access denied/,
    },
  },
  {
    reason: 'after the backoff the next try goes under a new comment',
    given: given(
      {
        attempt: { image: NEW, generation: 0, try: 2 },
        failure: {
          image: NEW,
          generation: 0,
          try: 1,
          status: 'Failed',
          responseCode: 1,
          stderrTail: 'x',
          at: at(-60_000),
          retryAt: at(-1),
        },
      },
      {},
      vm({}, { Image: OLD }),
    ),
    want: { action: 'create', token: redeployComment(ORG_ID, 0, 2, NEW) },
  },
  {
    reason: 'sent but never recorded (a crash): found by its comment and adopted',
    given: {
      self: {
        instance: { ready: true, externalIds: { instanceId: vm().id } },
        redeploy: {
          state: { attempt: { image: NEW, generation: 0, try: 1 } },
          pending: { token: redeployComment(ORG_ID, 0, 1, NEW), startedAt: at(-1_000) },
        },
      },
      cloud: {
        instances: [vm({}, { Image: OLD })],
        commands: {
          [vm().id]: [
            {
              id: 'c-9',
              comment: redeployComment(ORG_ID, 0, 1, NEW),
              instanceIds: [vm().id],
              requestedAt: new Date(NOW - 1_000),
              status: 'InProgress',
            },
          ],
        },
      },
    },
    want: { action: 'adopt', condition: 'Redeploying', message: /adopted/ },
  },
  {
    reason: 'the rollout holds it back (canaries first), asked before any cloud read',
    given: given(
      { image: OLD },
      {
        cloud: { instances: [vm({}, { Image: OLD })] },
        rollout: {
          admit: async () => ({ admitted: true }),
          preview: async () => ({
            admitted: false,
            reason: 'WaitingForCanaries',
            message: 'waiting for 1 canary',
            retryAfterMs: 5_000,
          }),
          finished: () => {},
        },
      },
    ),
    want: { action: 'none', condition: 'WaitingForCanaries' },
  },
  {
    reason: 'the look said go, but the slot was taken by the time it asked: held',
    given: given(
      {},
      {
        cloud: { instances: [vm({}, { Image: OLD })] },
        rollout: {
          preview: async () => ({ admitted: true }),
          admit: async () => ({
            admitted: false,
            reason: 'WaitingForRolloutSlot',
            message: '20 redeploys are in flight',
            retryAfterMs: 5_000,
          }),
          finished: () => {},
        },
      },
    ),
    want: { action: 'none', condition: 'WaitingForRolloutSlot' },
  },
  {
    reason: 'a workspace without an image pin: nothing to redeploy',
    given: {
      workspace: {},
      self: { instance: { ready: true, externalIds: { instanceId: 'i-ws' } }, redeploy: { ready: true } },
      cloud: {
        instances: [
          vm(
            { id: 'i-ws' },
            {
              ...ownerTags({
                env: 'test',
                orgId: ORG_ID,
                orgSlug: 'acme',
                name: 'ws',
                workspace: { id: WS_ID, runtime: 'langgraph' },
              }),
            },
          ),
        ],
      },
    },
    want: { action: 'none', condition: 'NoImage' },
  },
  {
    reason: 'a changed AMI: Outdated, nothing replaced',
    given: given({ image: NEW }, { pins: { amis: { tenant: 'ami-0fedcba9876543210' } } }),
    want: { action: 'none', condition: 'AMIChanged', message: /^Outdated: AMI/ },
  },
  {
    reason: 'a changed boot script: Outdated',
    given: given({ image: NEW }, {}, vm({}, { BootScript: '0000000000000000' })),
    want: { action: 'none', condition: 'BootScriptChanged' },
  },
  {
    reason: 'deleting: nothing of its own to delete',
    given: given({ image: NEW }, { deleting: true }),
    want: { action: 'release' },
  },
];

describe('redeploy controller', () => {
  it.each(cases)('$reason', async ({ given: g, want }) => {
    const { action, obs } = await decide(redeploy, g);
    expect(action.type).toBe(want.action);
    if (want.token) expect(action).toMatchObject({ token: want.token });
    const condition = obs.progressing ? obs.progressReason : obs.readyCondition?.reason;
    if (want.condition) expect(condition).toBe(want.condition);
    if (want.message) expect(obs.progressing ?? obs.readyCondition?.message).toMatch(want.message);
    if (want.state) expect(obs.state).toMatchObject(want.state);
  });
});
