import type { CloudPorts, IngressRule, SecurityGroup } from '../src/cloud/ports.js';
import type { TargetSettings } from '../src/cloud/targets.js';
import { tenantSecurityGroupName, workspaceSecurityGroupName } from '../src/provisioning/names.js';
import { ownerTags, tagDrift } from '../src/provisioning/tags.js';
import {
  absent,
  type Controller,
  type DesiredInput,
  type Observation,
  waitToDelete,
} from '../src/runtime/controller.js';
import { errorCodeOf, isConflict, NOT_YET_CONSISTENT, TerminalError } from '../src/runtime/errors.js';
import { describeRule, diffRules, opensSshToWorld } from './securitygroup.diff.js';

/** The port the tenant platform listens on, reachable from inside the VPC only. */
export const PLATFORM_PORT = 8080;

export interface DesiredSecurityGroup {
  /** Shared group id when no VPC is configured (legacy fallback): nothing to create or delete. */
  sharedGroupId: string | undefined;
  sharedGroupMessage: string;
  name: string;
  vpcId: string;
  description: string;
  tags: Record<string, string>;
  /** Resolved lazily: the platform rule needs the VPC's CIDR. */
  rules: (vpcCidr: string) => IngressRule[];
}

export function createSecurityGroupController(
  deps: Pick<CloudPorts, 'ec2'>,
): Controller<DesiredSecurityGroup, SecurityGroup> {
  const vpcCidrs = new Map<string, string>();
  const cidrOf = async (vpcId: string) => {
    let cidr = vpcCidrs.get(vpcId);
    if (!cidr) {
      cidr = await deps.ec2.describeVpcCidr(vpcId);
      vpcCidrs.set(vpcId, cidr);
    }
    return cidr;
  };

  return {
    desired: toDesired,

    async observe(d, ctx): Promise<Observation<SecurityGroup>> {
      if (d.sharedGroupId) {
        return {
          exists: true,
          upToDate: true,
          diff: [],
          externalIds: { groupId: d.sharedGroupId },
          readyCondition: {
            reason: 'SharedSecurityGroup',
            message: d.sharedGroupMessage,
          },
        };
      }
      const groups = await ctx.view.securityGroups(d.name);
      const group = groups.find(
        (g) => g.name.toLowerCase() === d.name.toLowerCase() && (!g.vpcId || g.vpcId === d.vpcId),
      );
      if (!group) return absent();
      const want = d.rules(await cidrOf(d.vpcId));
      const { add, remove } = diffRules(want, group.ingress);
      const tags = tagDrift(d.tags, group.tags);
      const diff = [
        ...add.map((r) => `ingress: missing ${describeRule(r)}`),
        ...remove.map((r) => `ingress: extra ${describeRule(r)}`),
        ...tags.map((k) => `tag ${k}`),
      ];
      return {
        exists: true,
        upToDate: diff.length === 0,
        diff,
        externalIds: { groupId: group.id },
        resource: group,
      };
    },

    createToken: (d) => d.name,

    async create(d) {
      try {
        const id = await deps.ec2.createSecurityGroup({
          name: d.name,
          description: d.description,
          vpcId: d.vpcId,
          tags: d.tags,
        });
        return { externalIds: { groupId: id }, details: { name: d.name } };
      } catch (e) {
        if (!isConflict(e)) throw e;
        // InvalidGroup.Duplicate: it was created before (lost response, crash): adopt it by name.
        const [group] = await deps.ec2.describeSecurityGroups({ names: [d.name], vpcId: d.vpcId });
        if (!group) throw e;
        return { externalIds: { groupId: group.id }, adopted: true, details: { name: d.name } };
      }
    },

    async update(d, obs) {
      const group = obs.resource!;
      const want = d.rules(await cidrOf(d.vpcId));
      const { add, remove } = diffRules(want, group.ingress);
      // Revoke first: an extra rule may be exposing the instance right now.
      await deps.ec2.revokeIngress(group.id, remove);
      await deps.ec2.authorizeIngress(group.id, add);
      const tags = tagDrift(d.tags, group.tags);
      if (tags.length > 0) await deps.ec2.tagResources([group.id], d.tags);
      return { details: { added: add.map(describeRule), revoked: remove.map(describeRule), tags } };
    },

    async delete(d, obs, ctx) {
      if (d.sharedGroupId || !obs.resource) return { gone: true };
      const groupId = obs.resource.id;
      try {
        await deps.ec2.deleteSecurityGroup(groupId);
      } catch (e) {
        const code = errorCodeOf(e);
        // Its instances are terminated (they are deleted first), yet EC2 keeps the group in use
        // for a while after `terminated`: linger, looking again less and less often.
        if (code === 'DependencyViolation')
          return waitToDelete(ctx, {
            reason: 'WaitingForDependents',
            message: `security group ${groupId} is still in use (DependencyViolation) after its instances were terminated`,
          });
        // Created moments ago: DeleteSecurityGroup does not see it yet. Not "gone": the next
        // observe (a describe by name) says whether it is still there.
        if (code === NOT_YET_CONSISTENT)
          return waitToDelete(ctx, {
            reason: 'WaitingForConsistency',
            message: `DeleteSecurityGroup does not see ${groupId} yet; deleting once it does`,
          });
        throw e;
      }
      return { gone: true, details: { groupId } };
    },
  };
}

function toDesired(input: DesiredInput): DesiredSecurityGroup {
  const { config, target, org, workspace } = input;
  const env = config.MOLECULE_ENV;
  const groupName = workspace
    ? workspaceSecurityGroupName(env, workspace.id)
    : tenantSecurityGroupName(env, org.id);
  const eic = target.eicSecurityGroupId;
  const rules = (vpcCidr: string): IngressRule[] => {
    const list: IngressRule[] = [];
    if (eic)
      list.push({
        protocol: 'tcp',
        fromPort: 22,
        toPort: 22,
        sourceGroupId: eic,
        description: 'EC2 Instance Connect',
      });
    if (!workspace) {
      list.push({
        protocol: 'tcp',
        fromPort: PLATFORM_PORT,
        toPort: PLATFORM_PORT,
        cidr: vpcCidr,
        description: 'platform',
      });
    }
    if (list.some(opensSshToWorld))
      throw new TerminalError('refusing a rule that opens SSH to the internet', { reason: 'UnsafeRule' });
    return list;
  };
  return {
    sharedGroupId: target.vpcId ? undefined : target.sharedSecurityGroupId,
    name: groupName,
    vpcId: target.vpcId ?? '',
    description: workspace ? `molecule workspace ${workspace.id}` : `molecule tenant ${org.slug}`,
    tags: ownerTags({
      env,
      orgId: org.id,
      orgSlug: org.slug,
      name: groupName,
      ...(workspace ? { workspace: { id: workspace.id, runtime: workspace.runtime } } : {}),
    }),
    rules,
    sharedGroupMessage: `${target.variables.vpcId} is not set: using the shared ${target.variables.sharedSecurityGroupId} for every owner`,
  };
}

/** Why groups cannot be kept in a target, or undefined. */
export function securityGroupDisabledBecause(target: TargetSettings): string | undefined {
  if (target.vpcId || target.sharedSecurityGroupId) return undefined;
  return `neither ${target.variables.vpcId} nor ${target.variables.sharedSecurityGroupId} is set`;
}
