import { createHash, randomUUID } from 'node:crypto';
import type { SecretsPort } from '../src/cloud/ports.js';
import type { TargetSettings } from '../src/cloud/targets.js';
import type { Config } from '../src/config.js';
import type { Logger } from '../src/observability/logger.js';
import { workspaceBootstrapSecretName } from '../src/provisioning/names.js';
import { arnPlace, samePolicy, workspaceBootstrapPolicy } from '../src/provisioning/policies.js';
import { ownershipTags, TAG, tagDrift } from '../src/provisioning/tags.js';
import { errorCodeOf, isConflict, isNotFound } from '../src/runtime/errors.js';

/**
 * The env-wide secret workspaces boot from (DESIGN §12): the image pull credential and the
 * platform URL, nothing of any tenant, readable by the workspace role from an instance only.
 * One per target (account). It belongs to the env, not to an owner, so it is not a registry
 * controller: the leader of each target keeps it on every resync (create, value, tags, policy,
 * restore when scheduled for deletion) and never deletes it. The orphan scan counts it as
 * managed and never as an orphan.
 */

export interface WorkspaceBootstrapDeps {
  config: Config;
  logger: Logger;
}

interface Verified {
  /** LastChangedDate when value and policy were last found as wanted; any change moves it. */
  changedAt: string;
  fingerprint: string;
}

export interface WorkspaceBootstrapKeeper {
  /** Brings the target's secret in line; throws on a failed call (the next resync retries). */
  ensure(target: TargetSettings, secrets: SecretsPort): Promise<string[]>;
  /** Its name as the manager's per-target job. */
  readonly name: string;
}

export function createWorkspaceBootstrap(deps: WorkspaceBootstrapDeps): WorkspaceBootstrapKeeper {
  const { config } = deps;
  const env = config.MOLECULE_ENV;
  const name = workspaceBootstrapSecretName(env);
  const value = JSON.stringify({
    ghcrPullToken: config.GHCR_PULL_TOKEN ?? '',
    cpBaseUrl: config.CP_BASE_URL,
  });
  const tags = { ...ownershipTags(env), [TAG.name]: name, [TAG.role]: 'workspace-bootstrap' };
  const digest = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 32);
  // A token per value: a lost create is replayed as a no-op. A put uses a fresh one (a known
  // token is ignored, which would leave a value changed out of band in place).
  const token = digest(value);
  const verified = new Map<string, Verified>();

  return {
    name: 'workspace-bootstrap',
    async ensure(target, secrets) {
      const done: string[] = [];
      const role = target.workspaceProfile ?? target.instanceProfile;
      let summary = await secrets.describeSecret(name).catch((e) => {
        if (isNotFound(e)) return undefined;
        throw e;
      });
      if (!summary) {
        try {
          await secrets.createSecret({
            name,
            value,
            tags,
            token,
            description: `molecule ${env} workspace bootstrap (pull credential, platform URL)`,
          });
          done.push('created');
        } catch (e) {
          if (!isConflict(e) || errorCodeOf(e) === 'ScheduledForDeletion') throw e;
        }
        summary = await secrets.describeSecret(name);
      }
      if (summary.deletedDate) {
        await secrets.restoreSecret(name);
        done.push('restored');
        summary = await secrets.describeSecret(name);
      }
      if (tagDrift(tags, summary.tags).length > 0) {
        await secrets.tagSecret(name, tags);
        done.push('retagged');
      }
      const place = arnPlace(summary.arn);
      const policy =
        role && place ? workspaceBootstrapPolicy({ account: place.account, workspaceRole: role }) : undefined;
      const fingerprint = digest(`${token}|${policy ?? ''}`);
      const changedAt = summary.lastChangedDate?.toISOString() ?? '';
      const last = verified.get(target.name);
      if (last?.changedAt === changedAt && last.fingerprint === fingerprint) return done;

      if ((await secrets.getSecretValue(name)).value !== value) {
        await secrets.putSecretValue(name, value, randomUUID());
        done.push('value');
      }
      if (policy && !samePolicy(await secrets.getResourcePolicy(name), policy)) {
        await secrets.putResourcePolicy(name, policy);
        done.push('policy');
      }
      if (done.length === 0) verified.set(target.name, { changedAt, fingerprint });
      else {
        verified.delete(target.name);
        deps.logger.info({ target: target.name, secret: name, done }, 'kept the workspace bootstrap secret');
      }
      return done;
    },
  };
}
