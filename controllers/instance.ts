import type { CloudPorts, Instance, InstanceState } from '../src/cloud/ports.js';
import type { TargetSettings } from '../src/cloud/targets.js';
import { desiredImage } from '../src/provisioning/images.js';
import { bootstrapSecretName, workspaceBootstrapSecretName } from '../src/provisioning/names.js';
import { TENANT_RUNTIME } from '../src/provisioning/runtimes.js';
import { ownerTags, TAG, tagDrift } from '../src/provisioning/tags.js';
import { TENANT_VOLUME_GB, workspaceResources } from '../src/provisioning/tiers.js';
import { bootScriptFingerprint, renderUserData, type UserDataInput } from '../src/provisioning/userdata.js';
import {
  absent,
  type Controller,
  type DesiredInput,
  type Observation,
  waitToDelete,
} from '../src/runtime/controller.js';
import { errorCodeOf, NOT_YET_CONSISTENT } from '../src/runtime/errors.js';

export { TENANT_RUNTIME };

export interface DesiredInstance {
  ownerId: string;
  role: 'tenant' | 'workspace';
  imageId: string;
  instanceType: string;
  volumeGb: number;
  subnetId: string;
  securityGroupId: string | undefined;
  profile: string;
  keyName: string | undefined;
  tags: Record<string, string>;
  /** The container image it boots with (DESIGN §11), undefined when it runs none. */
  image: string | undefined;
  /**
   * Tags set at launch only: `Image`, which the redeploy controller moves after a redeploy,
   * and `BootScript`, the fingerprint of the boot script the instance was launched with.
   */
  launchTags: Record<string, string>;
  userData: string;
  powerState: 'running' | 'stopped';
}

export interface ObservedInstance {
  instance: Instance;
  /** Every non-terminated instance of the owner (more than one is a duplicate for the orphan scan). */
  live: Instance[];
}

const GONE: InstanceState[] = ['terminated', 'shutting-down'];

/**
 * One EC2 instance per owner. Launches are idempotent through `ClientToken = <ownerId>-<launch
 * generation>`, recorded before the call; an instance terminated out of band is replaced under
 * the next launch generation.
 */
export function createInstanceController(
  deps: Pick<CloudPorts, 'ec2'>,
): Controller<DesiredInstance, ObservedInstance> {
  return {
    desired: toDesired,

    async observe(d, ctx): Promise<Observation<ObservedInstance>> {
      const owner = { kind: d.role === 'tenant' ? ('org' as const) : ('workspace' as const), id: d.ownerId };
      const all = await ctx.view.instances(owner, d.tags[TAG.orgId]!);
      const consumed = all.filter((i) => GONE.includes(i.state)).map((i) => i.clientToken);
      if (ctx.deleting) {
        const remaining = all.filter((i) => i.state !== 'terminated');
        if (remaining.length === 0) return absent();
        return {
          exists: true,
          upToDate: false,
          diff: ['deleting'],
          externalIds: { instanceId: remaining[0]!.id },
          resource: { instance: remaining[0]!, live: remaining },
        };
      }
      const live = all.filter((i) => !GONE.includes(i.state));
      const token = (ctx.status?.state as { token?: string } | undefined)?.token;
      const instance = live.find((i) => i.clientToken === token) ?? live.sort(byLaunch)[0];
      if (!instance) return { ...absent(), state: { consumedTokens: consumed.filter(Boolean) } };
      const diff: string[] = [];
      let progressing: string | undefined;
      if (instance.instanceType !== d.instanceType)
        diff.push(`instanceType: ${instance.instanceType} → ${d.instanceType}`);
      if (instance.state === 'pending' || instance.state === 'stopping')
        progressing = `instance is ${instance.state}`;
      else if (d.powerState === 'running' && instance.state === 'stopped')
        diff.push('power: stopped → running');
      else if (d.powerState === 'stopped' && instance.state === 'running')
        diff.push('power: running → stopped');
      for (const k of tagDrift(d.tags, instance.tags)) diff.push(`tag ${k}`);
      if (instance.metadata && !imdsLocked(instance)) diff.push(imdsDiff(instance));
      return {
        exists: true,
        // While it is changing state on its own, wait before acting on the power/type diff.
        upToDate:
          diff.length === 0 ||
          (progressing !== undefined &&
            diff.every((x) => !x.startsWith('tag ') && !x.startsWith('metadata'))),
        diff,
        ...(progressing ? { progressing } : {}),
        externalIds: { instanceId: instance.id },
        readyCondition: {
          reason: instance.state === 'stopped' ? 'Stopped' : 'Running',
          message: `instance ${instance.state}`,
        },
        resource: { instance, live },
      };
    },

    createToken(d, obs, previous) {
      const consumed = (obs.state?.consumedTokens as string[] | undefined) ?? [];
      if (!previous) return `${d.ownerId}-1`;
      if (!consumed.includes(previous)) return previous; // same launch: replaying it is safe
      const gen = Number(previous.slice(d.ownerId.length + 1)) || 1;
      return `${d.ownerId}-${gen + 1}`;
    },

    async create(d, token) {
      const instance = await deps.ec2.runInstance({
        clientToken: token,
        imageId: d.imageId,
        instanceType: d.instanceType,
        subnetId: d.subnetId,
        securityGroupIds: d.securityGroupId ? [d.securityGroupId] : [],
        iamInstanceProfileName: d.profile,
        ...(d.keyName ? { keyName: d.keyName } : {}),
        volumeSizeGb: d.volumeGb,
        userData: d.userData,
        tags: { ...d.tags, ...d.launchTags },
      });
      if (GONE.includes(instance.state)) {
        // The token was consumed by an instance that is gone (no longer visible to describe):
        // move to the next launch generation.
        const gen = Number(token.slice(d.ownerId.length + 1)) || 1;
        return { state: { token: `${d.ownerId}-${gen + 1}` }, details: { consumedToken: token } };
      }
      return {
        externalIds: { instanceId: instance.id },
        details: {
          instanceType: d.instanceType,
          imageId: d.imageId,
          volumeGb: d.volumeGb,
          clientToken: token,
          ...(d.image ? { image: d.image } : {}),
        },
      };
    },

    async update(d, obs) {
      const { instance } = obs.resource!;
      const done: string[] = [];
      if (tagDrift(d.tags, instance.tags).length > 0) {
        await deps.ec2.tagResources([instance.id], d.tags);
        done.push('tags');
      }
      if (instance.metadata && !imdsLocked(instance) && !GONE.includes(instance.state)) {
        await deps.ec2.requireImdsV2(instance.id);
        done.push('imdsv2');
      }
      const typeWrong = instance.instanceType !== d.instanceType;
      if (instance.state === 'running' && (typeWrong || d.powerState === 'stopped')) {
        // A type change needs a stop first; the next pass modifies and starts.
        await deps.ec2.stopInstance(instance.id);
        done.push('stop');
      } else if (instance.state === 'stopped') {
        if (typeWrong) {
          await deps.ec2.modifyInstanceType(instance.id, d.instanceType);
          done.push('modify type');
        }
        if (d.powerState === 'running') {
          await deps.ec2.startInstance(instance.id);
          done.push('start');
        }
      }
      return { details: { done, instanceId: instance.id } };
    },

    async delete(_d, obs, ctx) {
      const { live } = obs.resource!;
      const unseen: string[] = [];
      for (const i of live) {
        if (GONE.includes(i.state)) continue;
        try {
          await deps.ec2.terminateInstance(i.id);
        } catch (e) {
          // Launched or changed moments ago: the write path does not see it yet. Not "gone":
          // the next observe (a describe) says whether it still runs, and it is terminated then.
          if (errorCodeOf(e) !== NOT_YET_CONSISTENT) throw e;
          unseen.push(i.id);
        }
      }
      if (unseen.length > 0 && unseen.length === live.filter((i) => !GONE.includes(i.state)).length)
        return waitToDelete(ctx, {
          reason: 'WaitingForConsistency',
          message: `TerminateInstances does not see ${unseen.join(', ')} yet; terminating once it does`,
        });
      return {
        gone: live.every((i) => i.state === 'terminated'),
        details: {
          terminated: live.map((i) => i.id),
          ...(unseen.length > 0 ? { notYetVisible: unseen } : {}),
        },
      };
    },
  };
}

function toDesired(input: DesiredInput): DesiredInstance {
  const { config, target, org, workspace } = input;
  const env = config.MOLECULE_ENV;
  const securityGroupId = input.self.securitygroup?.externalIds.groupId ?? target.sharedSecurityGroupId;
  const size = workspace
    ? workspaceResources(workspace.tier, workspace.runtime)
    : { instanceType: config.EC2_INSTANCE_TYPE, volumeGb: TENANT_VOLUME_GB };
  const tags = ownerTags({
    env,
    orgId: org.id,
    orgSlug: org.slug,
    name: workspace
      ? `molecule-${env}-ws-${workspace.id.slice(0, 12)}`
      : `molecule-${env}-tenant-${org.slug}`,
    ...(workspace ? { workspace: { id: workspace.id, runtime: workspace.runtime } } : {}),
  });
  if (securityGroupId) tags[TAG.sgId] = securityGroupId;
  const tunnelId = workspace ? undefined : input.self.tunnel?.externalIds.tunnelId;
  if (tunnelId) tags[TAG.tunnelId] = tunnelId;
  const { image, boot, ami } = launchSettings(input);
  return {
    ownerId: workspace?.id ?? org.id,
    role: workspace ? 'workspace' : 'tenant',
    imageId: ami,
    instanceType: size.instanceType,
    volumeGb: size.volumeGb,
    subnetId: target.subnetId ?? '',
    securityGroupId,
    // A workspace runs under its own role when one is configured (DESIGN §12).
    profile: (workspace ? (target.workspaceProfile ?? target.instanceProfile) : target.instanceProfile) ?? '',
    keyName: config.EC2_KEY_NAME,
    tags,
    image,
    // Rendered when read (a launch), not on every reconcile of a running instance.
    get launchTags() {
      return {
        ...(image ? { [TAG.image]: image } : {}),
        [TAG.bootScript]: bootScriptFingerprint(boot),
      };
    },
    get userData() {
      return renderUserData(boot);
    },
    // A stopped tenant stops its workspaces too.
    powerState: org.powerState === 'stopped' ? 'stopped' : (workspace?.powerState ?? org.powerState),
  };
}

/**
 * What a launch of this owner would use now: its AMI, container image and boot script. The
 * redeploy controller compares a running instance against it (`Outdated`).
 */
export function launchSettings(input: DesiredInput): {
  ami: string;
  image: string | undefined;
  boot: UserDataInput;
} {
  const { config, target, org, workspace, pins } = input;
  const env = config.MOLECULE_ENV;
  const image = desiredImage(config, pins, org, workspace);
  return {
    ami: pins.ami(workspace ? workspace.runtime : TENANT_RUNTIME, target.region) ?? config.EC2_AMI,
    image,
    boot: {
      role: workspace ? 'workspace' : 'tenant',
      env,
      region: target.region,
      orgId: org.id,
      ...(workspace ? { workspaceId: workspace.id, runtime: workspace.runtime } : {}),
      image,
      // A workspace boots from the env-wide workspace secret, never from its tenant's bundle.
      secretName: workspace ? workspaceBootstrapSecretName(env) : bootstrapSecretName(env, org.id),
      cpBaseUrl: config.CP_BASE_URL,
    },
  };
}

/** Why instances cannot be launched in a target, or undefined. */
export function instanceDisabledBecause(target: TargetSettings): string | undefined {
  const missing = [
    ...(target.instanceProfile ? [] : [target.variables.instanceProfile]),
    ...(target.subnetId ? [] : [target.variables.subnetId]),
  ];
  if (missing.length === 0) return undefined;
  return `instances are not launched without ${missing.join(' and ')} (the instance fetches its bootstrap bundle with its instance profile)`;
}

/** IMDSv2 only, one hop: containers on the instance cannot reach its role's credentials. */
const imdsLocked = (i: Instance) => i.metadata?.httpTokens === 'required' && i.metadata.hopLimit === 1;
const imdsDiff = (i: Instance) =>
  `metadata: ${i.metadata!.httpTokens === 'required' ? '' : 'IMDSv1 allowed, '}hop limit ${i.metadata!.hopLimit} (want IMDSv2, 1)`;

const byLaunch = (a: Instance, b: Instance) =>
  (a.launchTime?.getTime() ?? 0) - (b.launchTime?.getTime() ?? 0);
