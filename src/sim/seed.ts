/**
 * Fixed objects every simulator starts with. They are constants so that tests, the demo
 * and a human with the AWS CLI can rely on the same ids across runs.
 */

export interface SeedInfo {
  accountId: string;
  region: string;
  vpcId: string;
  vpcCidr: string;
  subnetId: string;
  eicSecurityGroupId: string;
  cloudflareAccountId: string;
  cloudflareZoneId: string;
  zoneName: string;
  apiToken: string;
}

export const SEED: Readonly<SeedInfo> = Object.freeze({
  accountId: '123456789012',
  region: 'us-east-1',
  vpcId: 'vpc-0a1b2c3d4e5f60718',
  vpcCidr: '10.42.0.0/16',
  subnetId: 'subnet-0a1b2c3d4e5f60718',
  eicSecurityGroupId: 'sg-0e1c0e1c0e1c0e1c0',
  cloudflareAccountId: '0123456789abcdef0123456789abcdef',
  cloudflareZoneId: 'fedcba9876543210fedcba9876543210',
  zoneName: 'moleculesai.app',
  apiToken: 'sim-cloudflare-token',
});

/** The subnet spans the whole VPC so 40k instances get distinct private addresses. */
export const SEED_SUBNET_CIDR = '10.42.0.0/16';
/** NOTE: the EIC endpoint owns an ENI, which is what makes its group undeletable on AWS. */
export const SEED_EIC_ENI_ID = 'eni-0e1c0e1c0e1c0e1c0';
export const SEED_EIC_GROUP_NAME = 'eic-endpoint';
/** The seeded VPC's `default` group (every VPC has one; it cannot be deleted). */
export const SEED_DEFAULT_GROUP_ID = 'sg-0defa0170defa017d';
export const SEED_DHCP_OPTIONS_ID = 'dopt-0a1b2c3d4e5f60718';
export const SEED_ZONE_CREATED = '2024-01-01T00:00:00.000Z';
