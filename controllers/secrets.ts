import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { CloudPorts, InstanceState, SecretSummary } from '../src/cloud/ports.js';
import { bootstrapSecretName } from '../src/provisioning/names.js';
import { arnPlace, bundlePolicy, instanceArn, samePolicy } from '../src/provisioning/policies.js';
import { ownerTags, TAG, tagDrift } from '../src/provisioning/tags.js';
import { absent, type Controller, type DesiredInput, type Observation } from '../src/runtime/controller.js';
import {
  errorCodeOf,
  isConflict,
  isNotFound,
  SECRET_NAME_BLOCKED,
  TransientError,
} from '../src/runtime/errors.js';

/** Keys of the bootstrap bundle the tenant fetches at boot with its instance profile. */
export const BUNDLE_KEYS = [
  'orgId',
  'orgSlug',
  'dbPassword',
  'adminToken',
  'tunnelToken',
  'provisionSharedSecret',
  'ghcrPullToken',
  'cpBaseUrl',
] as const;
export type Bundle = Record<(typeof BUNDLE_KEYS)[number], string>;

/** Generated once per tenant and never silently rotated. */
const GENERATED = ['dbPassword', 'adminToken'] as const;

export interface DesiredSecret {
  name: string;
  orgId: string;
  orgSlug: string;
  tunnelId: string | undefined;
  tags: Record<string, string>;
  provisionSharedSecret: string;
  ghcrPullToken: string;
  cpBaseUrl: string;
  recoveryDays: number;
  /** Fingerprint of the inputs that are not generated: a change means the bundle must be rewritten. */
  fingerprint: string;
  /**
   * The roles (named after the instance profiles) the resource policy is about; without a
   * tenant profile no instance is launched and the policy is not managed.
   */
  tenantRole: string | undefined;
  workspaceRole: string | undefined;
}

export interface ObservedSecret {
  summary: SecretSummary;
  /** Read only when the version changed since it was last verified; held in memory, never stored. */
  bundle: Partial<Bundle> | undefined;
  tunnelToken: string | undefined;
  /** The resource policy to write, when the one in place does not say it. */
  policy: string | undefined;
}

interface SecretState {
  verifiedVersionId?: string;
  fingerprint?: string;
  regenerated?: string[];
  /** The policy last verified in place, and the secret's LastChangedDate then (any change moves it). */
  policy?: string;
  policyCheckedAt?: string;
}

/** Tenant instances that can still run (and so ask for their credentials). */
const LIVE: InstanceState[] = ['pending', 'running', 'stopping', 'stopped'];

/**
 * The tenant's Secrets Manager bootstrap bundle. The generated credentials live only in the
 * secret itself: never in a log line, a database row or user-data.
 */
export function createSecretsController(
  deps: Pick<CloudPorts, 'secrets' | 'tunnels'>,
): Controller<DesiredSecret, ObservedSecret> {
  const tunnelToken = async (d: DesiredSecret) =>
    d.tunnelId && deps.tunnels ? deps.tunnels.getTunnelToken(d.tunnelId) : '';

  /**
   * CreateSecret said the name is "already scheduled for deletion": that is not success. If a
   * secret holds the name and it is this org's bundle (its tags say so), it was deleted out of
   * band with a recovery window: restore it, credentials and all. If none does, the name was
   * force-deleted and Secrets Manager frees it only after a while; if another secret holds it,
   * it is not ours to restore. Both wait, saying so.
   */
  const reclaim = async (d: DesiredSecret, cause: unknown) => {
    const held = await deps.secrets.describeSecret(d.name).catch((e) => {
      if (isNotFound(e)) return undefined;
      throw e;
    });
    const ours =
      held !== undefined &&
      !tagDrift(
        { [TAG.managedBy]: d.tags[TAG.managedBy]!, [TAG.env]: d.tags[TAG.env]!, [TAG.orgId]: d.orgId },
        held.tags,
      ).length;
    if (held && ours) {
      // Restored meanwhile (another pass, an operator): nothing left to do but adopt it.
      if (held.deletedDate) await deps.secrets.restoreSecret(d.name);
      return {
        externalIds: ids(held),
        adopted: true,
        details: { name: d.name, restored: !!held.deletedDate },
      };
    }
    throw new TransientError(
      held
        ? `${d.name} is held by a secret that is not this org's bundle (scheduled for deletion); waiting for it to go`
        : `${d.name} was force-deleted moments ago and Secrets Manager has not freed the name yet; waiting`,
      { service: 'secretsmanager', operation: 'CreateSecret', code: SECRET_NAME_BLOCKED, cause },
    );
  };

  return {
    desired: toDesired,

    async observe(d, ctx): Promise<Observation<ObservedSecret>> {
      const summary = (await ctx.view.secrets(d.name))[0];
      if (!summary) return absent();
      const scheduled = !!summary.deletedDate;
      // For the cascade, a secret scheduled for deletion is gone.
      if (ctx.deleting) {
        return scheduled
          ? absent()
          : {
              exists: true,
              upToDate: false,
              diff: ['deleting'],
              externalIds: ids(summary),
              resource: { summary, bundle: undefined, tunnelToken: undefined, policy: undefined },
            };
      }
      const state = (ctx.status?.state ?? {}) as SecretState;
      const diff: string[] = [];
      if (scheduled) diff.push('secret is scheduled for deletion');
      for (const k of tagDrift(d.tags, summary.tags)) diff.push(`tag ${k}`);
      let bundle: Partial<Bundle> | undefined;
      let token: string | undefined;
      const verified =
        summary.currentVersionId !== undefined &&
        state.verifiedVersionId === summary.currentVersionId &&
        state.fingerprint === d.fingerprint;
      if (!scheduled && !verified) {
        bundle = parseBundle((await deps.secrets.getSecretValue(d.name)).value);
        token = await tunnelToken(d);
        diff.push(...bundleDiff(d, bundle, token));
      }
      // The resource policy follows the org's tenant instance (DESIGN §12). It is read back only
      // when the secret changed since it was last verified, or the policy we want changed.
      let policy: string | undefined;
      let policyVerified: Partial<SecretState> = {};
      const place = arnPlace(summary.arn);
      if (!scheduled && d.tenantRole && place) {
        const tenants = (await ctx.view.instances({ kind: 'org', id: d.orgId }, d.orgId)).filter((i) =>
          LIVE.includes(i.state),
        );
        const want = bundlePolicy({
          account: place.account,
          tenantRole: d.tenantRole,
          workspaceRole: d.workspaceRole ?? d.tenantRole,
          instanceArns: tenants.map((i) => instanceArn(place.region, place.account, i.id)),
        });
        const changedAt = summary.lastChangedDate?.toISOString() ?? '';
        if (!(state.policy === want && state.policyCheckedAt === changedAt)) {
          if (samePolicy(await deps.secrets.getResourcePolicy(d.name), want))
            policyVerified = { policy: want, policyCheckedAt: changedAt };
          else {
            policy = want;
            diff.push(
              tenants.length > 0
                ? 'policy: not limited to the current tenant instance'
                : 'policy: not closed until the tenant instance exists',
            );
          }
        }
      }
      const regenerated = state.regenerated ?? [];
      return {
        exists: true,
        upToDate: diff.length === 0,
        diff,
        externalIds: ids(summary),
        state: {
          ...(diff.length === 0 && !verified
            ? { verifiedVersionId: summary.currentVersionId, fingerprint: d.fingerprint }
            : {}),
          ...policyVerified,
        },
        ...(regenerated.length > 0
          ? {
              readyCondition: {
                reason: 'CredentialsRegenerated',
                message: `the earlier bundle could not be read; new ${regenerated.join(', ')} were generated`,
              },
            }
          : {}),
        resource: { summary, bundle, tunnelToken: token, policy },
      };
    },

    // The token becomes the first VersionId: a lost CreateSecret is replayed as a no-op.
    createToken: (d, _obs, previous) => previous ?? `${d.orgId}-bootstrap-1`,

    async create(d, token, ctx) {
      const prior = (ctx.status?.state ?? {}) as SecretState;
      const value: Bundle = {
        orgId: d.orgId,
        orgSlug: d.orgSlug,
        dbPassword: generate(),
        adminToken: generate(),
        tunnelToken: await tunnelToken(d),
        provisionSharedSecret: d.provisionSharedSecret,
        ghcrPullToken: d.ghcrPullToken,
        cpBaseUrl: d.cpBaseUrl,
      };
      try {
        const res = await deps.secrets.createSecret({
          name: d.name,
          value: JSON.stringify(value),
          tags: d.tags,
          token,
          description: `molecule tenant ${d.orgSlug} bootstrap bundle`,
        });
        // Recreated after it was verified before: the old credentials are gone for good.
        const regenerated = prior.verifiedVersionId ? [...GENERATED] : [];
        return {
          externalIds: { secretArn: res.arn },
          state: { verifiedVersionId: res.versionId, fingerprint: d.fingerprint, regenerated },
          details: { name: d.name, regenerated },
        };
      } catch (e) {
        if (!isConflict(e)) throw e;
        if (errorCodeOf(e) === 'ScheduledForDeletion') return reclaim(d, e);
        return { adopted: true, details: { name: d.name } };
      }
    },

    async update(d, obs) {
      const { summary } = obs.resource!;
      if (summary.deletedDate) {
        await deps.secrets.restoreSecret(d.name);
        return { details: { restored: true } };
      }
      const details: Record<string, unknown> = {};
      if (tagDrift(d.tags, summary.tags).length > 0) {
        await deps.secrets.tagSecret(d.name, d.tags);
        details.retagged = true;
      }
      if (obs.resource!.policy) {
        // Written, not marked verified: the next observe reads it back (LastChangedDate moved).
        await deps.secrets.putResourcePolicy(d.name, obs.resource!.policy);
        details.policy = 'written';
      }
      const bundle = obs.resource!.bundle;
      if (bundle && bundleDiff(d, bundle, obs.resource!.tunnelToken).length > 0) {
        const regenerated = GENERATED.filter((k) => !bundle[k]);
        const value: Bundle = {
          orgId: d.orgId,
          orgSlug: d.orgSlug,
          dbPassword: bundle.dbPassword || generate(),
          adminToken: bundle.adminToken || generate(),
          tunnelToken: obs.resource!.tunnelToken ?? (await tunnelToken(d)),
          provisionSharedSecret: d.provisionSharedSecret,
          ghcrPullToken: d.ghcrPullToken,
          cpBaseUrl: d.cpBaseUrl,
        };
        const res = await deps.secrets.putSecretValue(d.name, JSON.stringify(value), randomUUID());
        details.rewritten = true;
        details.regenerated = regenerated;
        return {
          state: {
            verifiedVersionId: res.versionId,
            fingerprint: d.fingerprint,
            ...(regenerated.length > 0 ? { regenerated } : {}),
          },
          details,
        };
      }
      return { details };
    },

    async delete(d) {
      await deps.secrets.deleteSecret(d.name, d.recoveryDays);
      return { gone: true, details: { name: d.name, recoveryDays: d.recoveryDays } };
    },
  };
}

function toDesired(input: DesiredInput): DesiredSecret {
  const { config, org } = input;
  const name = bootstrapSecretName(config.MOLECULE_ENV, org.id);
  const tunnelId = input.self.tunnel?.externalIds.tunnelId;
  const fixed = {
    provisionSharedSecret: config.PROVISION_SHARED_SECRET ?? '',
    ghcrPullToken: config.GHCR_PULL_TOKEN ?? '',
    cpBaseUrl: config.CP_BASE_URL,
  };
  return {
    name,
    orgId: org.id,
    orgSlug: org.slug,
    tunnelId,
    tags: ownerTags({ env: config.MOLECULE_ENV, orgId: org.id, orgSlug: org.slug, name }),
    ...fixed,
    recoveryDays: config.SECRET_RECOVERY_DAYS,
    tenantRole: input.target.instanceProfile,
    workspaceRole: input.target.workspaceProfile ?? input.target.instanceProfile,
    // A truncated hash of high-entropy inputs: enough to notice a change, useless to recover them.
    fingerprint: createHash('sha256')
      .update(JSON.stringify({ ...fixed, tunnelId: tunnelId ?? '' }))
      .digest('hex')
      .slice(0, 16),
  };
}

/** What is wrong with a bundle; names keys only, never values. */
export function bundleDiff(
  d: DesiredSecret,
  bundle: Partial<Bundle>,
  tunnelToken: string | undefined,
): string[] {
  const diff: string[] = [];
  for (const k of GENERATED) if (!bundle[k]) diff.push(`bundle: ${k} missing`);
  const want: Partial<Bundle> = {
    orgId: d.orgId,
    orgSlug: d.orgSlug,
    provisionSharedSecret: d.provisionSharedSecret,
    ghcrPullToken: d.ghcrPullToken,
    cpBaseUrl: d.cpBaseUrl,
    ...(tunnelToken !== undefined ? { tunnelToken } : {}),
  };
  for (const [k, v] of Object.entries(want)) {
    if (!(k in bundle)) diff.push(`bundle: ${k} missing`);
    else if (bundle[k as keyof Bundle] !== v) diff.push(`bundle: ${k} outdated`);
  }
  return diff;
}

function parseBundle(value: string): Partial<Bundle> {
  try {
    const parsed = JSON.parse(value) as unknown;
    if (parsed && typeof parsed === 'object') return parsed as Partial<Bundle>;
  } catch {
    // An unreadable bundle is repaired like an empty one, keeping nothing.
  }
  return {};
}

const generate = () => randomBytes(24).toString('base64url');
const ids = (s: SecretSummary) => ({ secretArn: s.arn });
