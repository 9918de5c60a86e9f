import type { CloudPorts, CommandInvocation } from '../src/cloud/ports.js';
import type { OwnerRef } from '../src/db/desired.js';
import type { ImageKind } from '../src/provisioning/images.js';
import { bootstrapSecretName, workspaceBootstrapSecretName } from '../src/provisioning/names.js';
import { isDone, type RedeployRecord, redeployComment } from '../src/provisioning/rollout.js';
import { TAG } from '../src/provisioning/tags.js';
import { bootScriptFingerprint, renderRedeployCommand } from '../src/provisioning/userdata.js';
import {
  absent,
  type Controller,
  type DesiredInput,
  type Observation,
  type RolloutGate,
  type RolloutRequest,
} from '../src/runtime/controller.js';
import { errorClassOf } from '../src/runtime/errors.js';
import { launchSettings } from './instance.js';

export interface DesiredRedeploy {
  owner: OwnerRef;
  orgId: string;
  canary: boolean;
  imageKind: ImageKind;
  /** What it should run; undefined for a workspace without an image pin (nothing to redeploy). */
  image: string | undefined;
  /** The owner row's redeploy generation: an explicit request pulls the same tag again. */
  generation: number;
  /** The instance the instance controller recorded. */
  instanceId: string | undefined;
  now: number;
  gate: RolloutGate | undefined;
  /** The command's script (the boot script's container section), rendered when read. */
  readonly script: string;
  /** The AMI a launch would use now. */
  ami: string;
  /** The fingerprint of the boot script a launch would use now, computed when read. */
  readonly bootScript: string;
}

export interface ObservedRedeploy {
  instanceId: string;
  /** The `Image` tag to set (a command that succeeded). */
  tag?: string;
}

/** An SSM command's statuses that are final. */
const FINAL = new Set(['Success', 'Failed', 'Cancelled', 'TimedOut', 'Undeliverable', 'Terminated']);
/** How long a command may stay invisible to GetCommandInvocation before it counts as lost. */
const INVISIBLE_MS = 5 * 60_000;
/** Run Command's own time limit on our script (a pull of a large image included). */
export const REDEPLOY_TIMEOUT_SECONDS = 900;
/** Retries of a failed redeploy back off from this, doubling, up to {@link RETRY_MAX_MS}. */
const RETRY_BASE_MS = 30_000;
const RETRY_MAX_MS = 30 * 60_000;

/**
 * The container image on each owner's instance, kept equal to the desired image (DESIGN §11)
 * by SSM Run Command: the command re-runs the boot script's container section with the new
 * image. It never stops, reboots or replaces an instance; a stopped one is redeployed once it
 * runs again.
 *
 * The resource this controller "creates" is one command per (redeploy generation, image, try):
 * its comment is the create token, written to the status row before the send, so a restart
 * finds the command by its comment and adopts it instead of sending another.
 */
export function createRedeployController(
  deps: Pick<CloudPorts, 'ec2' | 'ssm'>,
): Controller<DesiredRedeploy, ObservedRedeploy> {
  /**
   * A command's invocation, or undefined while it is not visible yet: right after SendCommand it
   * does not exist for a moment; only a long absence means the command was lost.
   */
  async function invocation(
    commandId: string,
    instanceId: string,
    sentAt: number,
    now: number,
  ): Promise<CommandInvocation | undefined> {
    try {
      return await deps.ssm.getInvocation(commandId, instanceId);
    } catch (e) {
      if (errorClassOf(e) !== 'NotFound') throw e;
      if (now - sentAt < INVISIBLE_MS) return undefined;
      return { status: 'Undeliverable', responseCode: -1, stderrTail: 'the command never became visible' };
    }
  }

  return {
    desired: toDesired,

    async observe(d, ctx): Promise<Observation<ObservedRedeploy>> {
      if (ctx.deleting) return absent();
      const record: RedeployRecord = { ...((ctx.status?.state ?? {}) as RedeployRecord) };
      // 0: A command in flight on a known instance is polled without describing the instance:
      //    nothing about it matters until the command ends (halves the calls of a rollout).
      const a0 = record.attempt;
      let polled: CommandInvocation | undefined;
      if (a0?.commandId && a0.instanceId && d.image) {
        const sentAt = Date.parse(a0.sentAt ?? '') || d.now;
        polled = await invocation(a0.commandId, a0.instanceId, sentAt, d.now);
        if (!polled || !FINAL.has(polled.status))
          return wait(
            'Redeploying',
            polled
              ? `command ${a0.commandId} ${polled.status}: ${a0.image} (redeploy generation ${a0.generation})`
              : `command ${a0.commandId} sent, not visible yet`,
            record,
            { instanceId: a0.instanceId, commandId: a0.commandId },
            pollDelay(d.now - sentAt),
          );
      }
      // 0b: Held back by the rollout (as its record stands)? Then say so without a cloud read:
      //     a pin change wakes every owner, and most of a large fleet can only wait. An owner
      //     never observed (a new launch, which runs the image already) is looked at first.
      const f0 = record.failure;
      const backingOff = f0 && f0.image === d.image && Date.parse(f0.retryAt) > d.now;
      if (
        d.gate &&
        d.image &&
        record.image !== undefined &&
        !a0?.commandId &&
        !ctx.status?.pending &&
        !backingOff &&
        !isDone(record, { image: d.image, generation: d.generation })
      ) {
        const look = await d.gate.preview(rolloutRequest(d, d.image, f0));
        if (!look.admitted)
          return wait(
            look.reason,
            look.message,
            record,
            d.instanceId ? { instanceId: d.instanceId } : {},
            look.retryAfterMs,
          );
      }
      const all = await ctx.view.instances(d.owner, d.orgId);
      const live = all.filter((i) => i.state !== 'terminated' && i.state !== 'shutting-down');
      const instance = live.find((i) => i.id === d.instanceId) ?? live[0];
      if (!instance)
        return wait('WaitingForInstance', 'no live instance to redeploy yet', record, {}, undefined);
      const ids = { instanceId: instance.id };
      record.image = instance.tags[TAG.image];
      record.stopped = instance.state === 'stopped';
      if (!d.image) {
        const outdated = outdatedBy(d, instance);
        record.outdated = outdated?.reason ?? null;
        if (outdated) return ready(outdated.reason, outdated.message, record, ids);
        return ready('NoImage', 'no image is pinned for this runtime: nothing to redeploy', record, ids);
      }
      const want = { image: d.image, generation: d.generation };

      // 1: A command in flight: follow it to its end.
      const a = record.attempt;
      if (a?.commandId) {
        const sentAt = Date.parse(a.sentAt ?? '') || d.now;
        const inv = polled ?? (await invocation(a.commandId, a.instanceId ?? instance.id, sentAt, d.now));
        if (!inv)
          return wait(
            'Redeploying',
            `command ${a.commandId} sent, not visible yet`,
            record,
            { ...ids, commandId: a.commandId },
            pollDelay(d.now - sentAt),
          );
        if (!FINAL.has(inv.status))
          return wait(
            'Redeploying',
            `command ${a.commandId} ${inv.status}: ${a.image} (redeploy generation ${a.generation})`,
            record,
            { ...ids, commandId: a.commandId },
            pollDelay(d.now - sentAt),
          );
        if (inv.status === 'Success') {
          record.deployed = { generation: a.generation, image: a.image, at: new Date(d.now).toISOString() };
          record.attempt = null;
          record.failure = null;
          // Its slot is free (and a last canary opens the soak): the rollout goes on at once.
          d.gate?.finished(d.owner, { image: a.image, outcome: 'done', at: d.now });
          if (record.image !== a.image) {
            // The container runs the new image: the tag follows (update).
            return {
              exists: true,
              upToDate: false,
              diff: [`tag Image: ${record.image ?? '(none)'} → ${a.image}`],
              externalIds: { ...ids, commandId: a.commandId },
              state: { ...record, image: a.image },
              resource: { instanceId: instance.id, tag: a.image },
            };
          }
        } else {
          const tries = a.try;
          const backoff = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (tries - 1));
          record.failure = {
            image: a.image,
            generation: a.generation,
            try: tries,
            status: inv.status,
            responseCode: inv.responseCode,
            stderrTail: inv.stderrTail,
            at: new Date(d.now).toISOString(),
            retryAt: new Date(d.now + backoff).toISOString(),
          };
          record.attempt = { image: a.image, generation: a.generation, try: tries + 1 };
          d.gate?.finished(d.owner, {
            image: a.image,
            outcome: 'failed',
            at: d.now,
            retryAt: d.now + backoff,
          });
        }
      }

      // 2: Sent, but the send was never recorded (the process died in between): find the
      //    command by its comment and adopt it.
      const pending = ctx.status?.pending;
      if (pending && !record.attempt?.commandId && instance.state === 'running') {
        const found = await deps.ssm.findCommand(instance.id, pending.token);
        if (found) {
          const parsed = parseComment(pending.token);
          record.attempt = {
            image: record.attempt?.image ?? d.image ?? '',
            generation: parsed?.generation ?? d.generation,
            try: parsed?.try ?? 1,
            commandId: found.id,
            instanceId: instance.id,
            sentAt: found.requestedAt?.toISOString() ?? pending.startedAt,
          };
          return wait(
            'Redeploying',
            `command ${found.id} ${found.status}: adopted after a restart`,
            record,
            { ...ids, commandId: found.id },
            0,
          );
        }
      }

      // 3: Runs the image and has pulled it since the last request: nothing to do.
      if (isDone(record, want)) {
        record.attempt = null;
        record.failure = null;
        const outdated = outdatedBy(d, instance);
        record.outdated = outdated?.reason ?? null;
        if (outdated) return ready(outdated.reason, outdated.message, record, ids);
        return ready('Deployed', `runs ${d.image} (redeploy generation ${d.generation})`, record, ids);
      }
      if (instance.state === 'stopped')
        return ready(
          'InstanceStopped',
          `stopped: ${d.image} is deployed once it runs again (no command is sent to a stopped instance)`,
          record,
          ids,
        );
      if (instance.state !== 'running')
        return wait('WaitingForInstance', `instance ${instance.state}`, record, ids, undefined);

      // 4: A failed try waits out its backoff (the condition says why it failed).
      const f = record.failure;
      const attempt =
        record.attempt && record.attempt.image === d.image && record.attempt.generation === d.generation
          ? record.attempt.try
          : 1;
      if (f && f.image === d.image && Date.parse(f.retryAt) > d.now) {
        return wait(
          'RedeployFailed',
          `command ${f.status} (exit ${f.responseCode}) on try ${f.try}: ${f.stderrTail.trim().split('\n').slice(-3).join(' | ')}`,
          record,
          ids,
          Date.parse(f.retryAt) - d.now,
        );
      }

      // 5: The fleet's order: canaries first, the soak, the in-flight limit, a pause.
      if (d.gate) {
        const admission = await d.gate.admit(rolloutRequest(d, d.image, f));
        if (!admission.admitted)
          return wait(admission.reason, admission.message, record, ids, admission.retryAfterMs);
      }

      // 6: Send (create): the comment is the token, recorded before the call.
      record.attempt = { image: d.image, generation: d.generation, try: attempt };
      record.nextComment = redeployComment(d.owner.id, d.generation, attempt, d.image);
      return {
        ...absent(),
        externalIds: ids,
        state: { ...record },
        resource: { instanceId: instance.id },
      };
    },

    createToken(d, obs) {
      const next = (obs.state as RedeployRecord | undefined)?.nextComment;
      return next ?? redeployComment(d.owner.id, d.generation, 1, d.image ?? '');
    },

    async create(d, token, ctx) {
      const instanceId = d.instanceId;
      if (!instanceId || !d.image) return {};
      const attempt = parseComment(token)?.try ?? 1;
      const sent = (id: string, sentAt: Date, adopted: boolean) => ({
        externalIds: { instanceId, commandId: id },
        state: {
          attempt: {
            image: d.image!,
            generation: d.generation,
            try: attempt,
            commandId: id,
            instanceId,
            sentAt: sentAt.toISOString(),
          },
          nextComment: null,
        },
        details: {
          image: d.image,
          redeployGeneration: d.generation,
          try: attempt,
          comment: token,
          instanceId,
        },
        adopted,
      });
      // A send whose response was lost, or made by a process that died before recording it.
      const earlier = await deps.ssm.findCommand(instanceId, token);
      if (earlier) return sent(earlier.id, earlier.requestedAt ?? new Date(d.now), true);
      ctx.assertLeader();
      const id = await deps.ssm.sendShellCommand({
        instanceId,
        script: d.script,
        comment: token,
        timeoutSeconds: REDEPLOY_TIMEOUT_SECONDS,
      });
      return sent(id, new Date(d.now), false);
    },

    async update(_d, obs) {
      const { instanceId, tag } = obs.resource!;
      if (tag) await deps.ec2.tagResources([instanceId], { [TAG.image]: tag });
      return { details: { instanceId, ...(tag ? { image: tag } : {}) } };
    },

    async delete() {
      // Nothing of its own in the cloud: the instance controller deletes the instance.
      return { gone: true };
    },
  };
}

function toDesired(input: DesiredInput): DesiredRedeploy {
  const { config, target, org, workspace } = input;
  const env = config.MOLECULE_ENV;
  const { image, ami, boot } = launchSettings(input);
  return {
    ami,
    get bootScript() {
      return bootScriptFingerprint(boot);
    },
    owner: input.owner,
    orgId: org.id,
    canary: org.isCanary,
    imageKind: workspace ? 'workspace' : 'tenant',
    image,
    generation: (workspace ?? org).redeployGeneration,
    instanceId: input.self.instance?.externalIds.instanceId,
    now: input.now,
    gate: input.rollout,
    get script() {
      return renderRedeployCommand({
        role: workspace ? 'workspace' : 'tenant',
        env,
        region: target.region,
        orgId: org.id,
        ...(workspace ? { workspaceId: workspace.id, runtime: workspace.runtime } : {}),
        image: image ?? '',
        // As at boot: a workspace reads the env-wide workspace secret, never its tenant's bundle.
        secretName: workspace ? workspaceBootstrapSecretName(env) : bootstrapSecretName(env, org.id),
        cpBaseUrl: config.CP_BASE_URL,
      });
    },
  };
}

/**
 * `Outdated` (DESIGN §11): a running instance whose AMI or boot script (its image aside, which
 * redeploys change in place) differs from what a launch would use now. Reported, never applied:
 * that would replace the instance's disk. Instances launched before the boot script was
 * fingerprinted carry no `BootScript` tag and are not judged on it.
 */
function outdatedBy(
  d: DesiredRedeploy,
  instance: { imageId: string; state: string; tags: Record<string, string> },
): { reason: 'AMIChanged' | 'BootScriptChanged'; message: string } | undefined {
  if (instance.state !== 'running') return undefined;
  const note = 'a new launch would use it; this instance is not replaced';
  if (instance.imageId && instance.imageId !== d.ami)
    return { reason: 'AMIChanged', message: `Outdated: AMI ${instance.imageId} → ${d.ami} (${note})` };
  const boot = instance.tags[TAG.bootScript];
  if (boot && boot !== d.bootScript)
    return {
      reason: 'BootScriptChanged',
      message: `Outdated: boot script ${boot} → ${d.bootScript} (${note})`,
    };
  return undefined;
}

/** What the rollout gate is asked for an owner that would redeploy to `image`. */
function rolloutRequest(
  d: DesiredRedeploy,
  image: string,
  failure: RedeployRecord['failure'],
): RolloutRequest {
  return {
    owner: d.owner,
    orgId: d.orgId,
    canary: d.canary,
    imageKind: d.imageKind,
    image,
    ...(failure && failure.image === image ? { failedAt: Date.parse(failure.at) } : {}),
  };
}

/** Polls a running command with backoff: often at first, then at most every 30 s. */
const pollDelay = (ageMs: number) => Math.min(30_000, Math.max(500, Math.floor(ageMs / 4)));

function parseComment(comment: string): { generation: number; try: number } | undefined {
  const m = /^redeploy \S+ g(\d+)\.(\d+) /.exec(comment);
  return m ? { generation: Number(m[1]), try: Number(m[2]) } : undefined;
}

function ready(
  reason: string,
  message: string,
  record: RedeployRecord,
  ids: Record<string, string>,
): Observation<ObservedRedeploy> {
  return {
    exists: true,
    upToDate: true,
    diff: [],
    externalIds: ids,
    state: { ...record },
    readyCondition: { reason, message },
  };
}

function wait(
  reason: string,
  message: string,
  record: RedeployRecord,
  ids: Record<string, string>,
  retryAfterMs: number | undefined,
): Observation<ObservedRedeploy> {
  return {
    exists: true,
    upToDate: true,
    diff: [],
    progressing: message,
    progressReason: reason,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    externalIds: ids,
    state: { ...record },
  };
}
