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
  /** Instance profile the tenant and workspace instances launch with. */
  instanceProfile: string | undefined;
  /** The variable each setting comes from, for messages that say what to set. */
  variables: Record<'vpcId' | 'subnetId' | 'sharedSecurityGroupId' | 'instanceProfile', string>;
}

/** A target with its own AWS clients (credentials, region, rate-limit buckets). */
export interface Target extends TargetSettings {
  aws: AwsPorts;
}

/** The targets the configuration describes: the primary always. */
export function targetSettings(config: Config): TargetSettings[] {
  return [
    {
      name: 'primary',
      region: config.AWS_REGION,
      vpcId: config.EC2_VPC_ID,
      subnetId: config.EC2_SUBNET_ID,
      sharedSecurityGroupId: config.EC2_SECURITY_GROUP,
      eicSecurityGroupId: config.EIC_ENDPOINT_SG_ID,
      instanceProfile: config.EC2_TENANT_IAM_PROFILE,
      variables: {
        vpcId: 'EC2_VPC_ID',
        subnetId: 'EC2_SUBNET_ID',
        sharedSecurityGroupId: 'EC2_SECURITY_GROUP',
        instanceProfile: 'EC2_TENANT_IAM_PROFILE',
      },
    },
  ];
}

/**
 * Every target's clients plus the one Cloudflare account, assembled once at startup. A
 * controller acting for an owner is given {@link portsFor} the owner's target, never another's.
 */
export class CloudTargets {
  private readonly byName: ReadonlyMap<TargetName, Target>;

  constructor(
    readonly all: readonly Target[],
    readonly cloudflare: CloudflarePorts | undefined,
  ) {
    if (!all.some((t) => t.name === 'primary')) throw new Error('the primary target is required');
    this.byName = new Map(all.map((t) => [t.name, t]));
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
    return this.cloudflare ? { ...target.aws, ...this.cloudflare } : { ...target.aws };
  }
}
