import type { Tags } from '../cloud/ports.js';
import { MANAGED_BY } from './names.js';

export const TAG = {
  managedBy: 'ManagedBy',
  env: 'MOLECULE_ENV',
  orgId: 'OrgID',
  orgSlug: 'OrgSlug',
  role: 'Role',
  workspaceId: 'WorkspaceID',
  runtime: 'Runtime',
  sgId: 'SGID',
  tunnelId: 'TunnelID',
  name: 'Name',
  keep: 'molecule-keep',
} as const;

/** The tags that mark a resource as ours in this env: the orphan scan and the inventory filter on them. */
export const ownershipTags = (env: string): Tags => ({ [TAG.managedBy]: MANAGED_BY, [TAG.env]: env });

export interface OwnerTagInput {
  env: string;
  orgId: string;
  orgSlug: string;
  name: string;
  workspace?: { id: string; runtime: string };
}

/** Tags every AWS resource of an owner carries (seed: OrgID is what makes cascade cleanup possible). */
export function ownerTags(input: OwnerTagInput): Tags {
  const tags: Tags = {
    ...ownershipTags(input.env),
    [TAG.orgId]: input.orgId,
    [TAG.orgSlug]: input.orgSlug,
    [TAG.role]: input.workspace ? 'workspace' : 'tenant',
    [TAG.name]: input.name,
  };
  if (input.workspace) {
    tags[TAG.workspaceId] = input.workspace.id;
    tags[TAG.runtime] = input.workspace.runtime;
  }
  return tags;
}

/** Tag keys whose value differs from (or is missing in) `want`; extra keys on `have` are left alone. */
export function tagDrift(want: Tags, have: Tags): string[] {
  return Object.keys(want).filter((k) => have[k] !== want[k]);
}
