import type { Config } from '../config.js';
import type { AwsPorts, CloudflarePorts, CloudPorts } from './ports.js';

/** Where an org's AWS resources live (DESIGN §10). */
export type TargetName = 'primary' | 'canary';

/** A target's place in AWS: what controllers need to know to create resources there. */
export interface TargetSettings {
  name: TargetName;
  region: string;
  /** The VPC owners' security groups are created in; without one, the shared group is used. */
  vpcId: string | undefined;
  subnetId: string | undefined;
  /** The shared security group every owner uses when no VPC is configured (legacy). */
  sharedSecurityGroupId: string | undefined;
  /** The EC2 Instance Connect endpoint's group, the only SSH source (SG ids are per account). */
  eicSecurityGroupId: string | undefined;
  /** Instance profile the tenant instances launch with (its role has the same name). */
  instanceProfile: string | undefined;
  /** Instance profile of workspace instances; the tenant's when not set. */
  workspaceProfile: string | undefined;
  /** The role assumed (from the primary's credentials) to act in this target's account. */
  roleArn: string | undefined;
  /** The variable each setting comes from, for messages that say what to set. */
  variables: Record<'vpcId' | 'subnetId' | 'sharedSecurityGroupId' | 'instanceProfile', string>;
}

/** A target with its own clients (credentials, region, rate-limit buckets, lease guard). */
export interface Target extends TargetSettings {
  aws: AwsPorts;
  /** Cloudflare (one account for every target) under this target's lease. */
  cloudflare: CloudflarePorts | undefined;
  /** Who this target's credentials are (STS GetCallerIdentity). */
  identify(): Promise<{ account: string; arn: string }>;
}

/** The targets the configuration describes: the primary always, the canary when configured. */
export function targetSettings(config: Config): TargetSettings[] {
  const targets: TargetSettings[] = [
    {
      name: 'primary',
      region: config.AWS_REGION,
      vpcId: config.EC2_VPC_ID,
      subnetId: config.EC2_SUBNET_ID,
      sharedSecurityGroupId: config.EC2_SECURITY_GROUP,
      eicSecurityGroupId: config.EIC_ENDPOINT_SG_ID,
      instanceProfile: config.EC2_TENANT_IAM_PROFILE,
      workspaceProfile: config.EC2_WORKSPACE_IAM_PROFILE,
      roleArn: undefined,
      variables: {
        vpcId: 'EC2_VPC_ID',
        subnetId: 'EC2_SUBNET_ID',
        sharedSecurityGroupId: 'EC2_SECURITY_GROUP',
        instanceProfile: 'EC2_TENANT_IAM_PROFILE',
      },
    },
  ];
  if (config.CANARY_ROLE_ARN && config.CANARY_REGION) {
    targets.push({
      name: 'canary',
      region: config.CANARY_REGION,
      vpcId: config.CANARY_VPC_ID,
      subnetId: config.CANARY_SUBNET_ID,
      // The canary target always has a VPC (CANARY_VPC_ID is required): no shared group.
      sharedSecurityGroupId: undefined,
      eicSecurityGroupId: config.CANARY_EIC_ENDPOINT_SG_ID,
      instanceProfile: config.CANARY_TENANT_IAM_PROFILE ?? config.EC2_TENANT_IAM_PROFILE,
      workspaceProfile: config.CANARY_WORKSPACE_IAM_PROFILE ?? config.EC2_WORKSPACE_IAM_PROFILE,
      roleArn: config.CANARY_ROLE_ARN,
      variables: {
        vpcId: 'CANARY_VPC_ID',
        subnetId: 'CANARY_SUBNET_ID',
        sharedSecurityGroupId: 'CANARY_VPC_ID',
        instanceProfile: 'CANARY_TENANT_IAM_PROFILE',
      },
    });
  }
  return targets;
}

/**
 * Where a new org is placed (DESIGN §10): a canary org in the canary target when one is
 * configured, else in the primary (as the seed does). The placement is stored on the org and
 * never changes by itself.
 */
export function placementFor(config: Config, isCanary: boolean): TargetName {
  return isCanary && config.CANARY_ROLE_ARN ? 'canary' : 'primary';
}

export const TARGET_NAMES: readonly TargetName[] = ['primary', 'canary'];

/**
 * Every target's clients plus the one Cloudflare account, assembled once at startup. A
 * controller acting for an owner is given {@link portsFor} the owner's target, never another's.
 */
export class CloudTargets {
  private readonly byName: ReadonlyMap<TargetName, Target>;

  constructor(readonly all: readonly Target[]) {
    if (!all.some((t) => t.name === 'primary')) throw new Error('the primary target is required');
    this.byName = new Map(all.map((t) => [t.name, t]));
  }

  /** Cloudflare for reading (listings); mutations go through the acting target's ports. */
  get cloudflare(): CloudflarePorts | undefined {
    return this.primary.cloudflare;
  }

  get primary(): Target {
    return this.byName.get('primary')!;
  }

  /** The target of this name, or undefined when it is not configured. */
  get(name: TargetName): Target | undefined {
    return this.byName.get(name);
  }

  /** The ports a controller uses for an owner in this target. */
  portsFor(target: Target): CloudPorts {
    return target.cloudflare ? { ...target.aws, ...target.cloudflare } : { ...target.aws };
  }
}
