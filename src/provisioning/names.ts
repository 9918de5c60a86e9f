/**
 * Deterministic names: every resource an owner can have is found again by name alone, so a
 * create whose response was lost is adopted, never repeated.
 */
export const MANAGED_BY = 'molecule-operator';

export const tunnelName = (env: string, orgId: string) => `molecule-${env}-${orgId}`;
export const tunnelNamePrefix = (env: string) => `molecule-${env}-`;
export const tenantSecurityGroupName = (env: string, orgId: string) => `molecule-${env}-tenant-${orgId}`;
export const workspaceSecurityGroupName = (env: string, workspaceId: string) =>
  `molecule-${env}-ws-${workspaceId}`;
export const secretNamePrefix = (env: string) => `molecule/${env}/tenant/`;
export const bootstrapSecretName = (env: string, orgId: string) =>
  `molecule/${env}/tenant/${orgId}/bootstrap`;
/** The env-wide secret workspaces boot from (DESIGN §12): no tenant secret in it. */
export const workspaceBootstrapSecretName = (env: string) => `molecule/${env}/shared/workspace-bootstrap`;
export const tenantHostname = (slug: string, appDomain: string) => `${slug}.${appDomain}`;
export const tunnelCnameTarget = (tunnelId: string) => `${tunnelId}.cfargotunnel.com`;
export const dnsComment = (env: string, orgId: string) => `molecule-operator env=${env} org=${orgId}`;
/**
 * The keep mark: the tag `molecule-keep=true` on AWS resources; on a DNS record, the comment
 * followed by ` molecule-keep` (a tunnel is kept by a kept record that points at it). The orphan
 * scan never deletes a kept resource.
 */
export const KEEP_MARK = 'molecule-keep';
export const dnsCommentKept = (comment: string | undefined) => !!comment?.endsWith(` ${KEEP_MARK}`);
/** The comment without its keep mark. */
export const dnsCommentBase = (comment: string | undefined) =>
  comment && dnsCommentKept(comment) ? comment.slice(0, -(KEEP_MARK.length + 1)) : comment;
export const dnsCommentMarker = (env: string) => `molecule-operator env=${env} `;

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/** One compiled pattern per env and kind: a resync asks for tens of thousands of names. */
const patterns = new Map<string, RegExp>();
function pattern(kind: string, env: string, source: (env: string) => string): RegExp {
  const key = `${kind}\u0000${env}`;
  let re = patterns.get(key);
  if (!re) {
    re = new RegExp(source(escapeRegExp(env)));
    patterns.set(key, re);
  }
  return re;
}

/** The org id in one of our tunnel names for this env, if it is one. */
export function orgIdFromTunnelName(env: string, name: string): string | undefined {
  return pattern('tunnel', env, (e) => `^molecule-${e}-(${UUID})$`).exec(name)?.[1];
}

/** The org id in one of our bootstrap secret names for this env (the name may carry the ARN's suffix). */
export function orgIdFromSecretName(env: string, name: string): string | undefined {
  return pattern('secret', env, (e) => `^molecule/${e}/tenant/(${UUID})/bootstrap`).exec(name)?.[1];
}

/** The org id in one of our DNS record comments for this env. */
export function orgIdFromDnsComment(env: string, comment: string | undefined): string | undefined {
  if (!comment) return undefined;
  return pattern('dns', env, (e) => `^molecule-operator env=${e} org=(${UUID})( ${KEEP_MARK})?$`).exec(
    comment,
  )?.[1];
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
