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
  /** The container image the instance runs (DESIGN §11): set at launch, moved by a redeploy. */
  image: 'Image',
  /** Fingerprint of the boot script (without its image) the instance was launched with. */
  bootScript: 'BootScript',
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
  // Built for every owner on every resync: literal keys (the values of TAG, which a test keeps
  // in step) make this one fixed-shape object instead of a spread plus computed keys.
  const tags: Tags = {
    ManagedBy: MANAGED_BY,
    MOLECULE_ENV: input.env,
    OrgID: input.orgId,
    OrgSlug: input.orgSlug,
    Role: input.workspace ? 'workspace' : 'tenant',
    Name: input.name,
  };
  if (input.workspace) {
    tags.WorkspaceID = input.workspace.id;
    tags.Runtime = input.workspace.runtime;
  }
  return tags;
}

/** Tag keys whose value differs from (or is missing in) `want`; extra keys on `have` are left alone. */
export function tagDrift(want: Tags, have: Tags): string[] {
  return Object.keys(want).filter((k) => have[k] !== want[k]);
}
