import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetResourcePolicyCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  PutResourcePolicyCommand,
  PutSecretValueCommand,
  RestoreSecretCommand,
  type SecretListEntry,
  type SecretsManagerClient,
  TagResourceCommand,
} from '@aws-sdk/client-secrets-manager';
import { isConflict, isNotFound } from '../../runtime/errors.js';
import { type CallContext, call } from '../instrument.js';
import type { SecretSummary, SecretsPort, Tags } from '../ports.js';
import { fromTags, toTags } from './ec2.js';
import { translateAwsError } from './errors.js';

export class SecretsAdapter implements SecretsPort {
  constructor(
    private readonly client: SecretsManagerClient,
    private readonly ctx: CallContext,
    private readonly pageSize = 100,
  ) {}

  private send<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return call(this.ctx, 'secretsmanager', operation, 'secretsmanager', fn, translateAwsError);
  }

  async listSecrets(prefix: string): Promise<SecretSummary[]> {
    const out: SecretSummary[] = [];
    let token: string | undefined;
    do {
      const res = await this.send('ListSecrets', () =>
        this.client.send(
          new ListSecretsCommand({
            Filters: [{ Key: 'name', Values: [prefix] }],
            IncludePlannedDeletion: true,
            MaxResults: this.pageSize,
            NextToken: token,
          }),
        ),
      );
      // NOTE: the name filter is a prefix match; keep only exact prefix hits (case-sensitive).
      for (const s of res.SecretList ?? []) if (s.Name?.startsWith(prefix)) out.push(toSummary(s));
      token = res.NextToken || undefined;
    } while (token);
    return out;
  }

  async describeSecret(name: string): Promise<SecretSummary> {
    const res = await this.send('DescribeSecret', () =>
      this.client.send(new DescribeSecretCommand({ SecretId: name })),
    );
    return toSummary({ ...res, SecretVersionsToStages: res.VersionIdsToStages });
  }

  async getSecretValue(name: string): Promise<{ value: string; versionId: string }> {
    const res = await this.send('GetSecretValue', () =>
      this.client.send(new GetSecretValueCommand({ SecretId: name })),
    );
    return { value: res.SecretString ?? '', versionId: res.VersionId ?? '' };
  }

  async createSecret(input: { name: string; value: string; tags: Tags; token: string; description: string }) {
    const res = await this.send('CreateSecret', () =>
      this.client.send(
        new CreateSecretCommand({
          Name: input.name,
          SecretString: input.value,
          ClientRequestToken: input.token,
          Description: input.description,
          Tags: toTags(input.tags),
        }),
      ),
    );
    return { arn: res.ARN ?? '', versionId: res.VersionId ?? '' };
  }

  async putSecretValue(name: string, value: string, token: string) {
    const res = await this.send('PutSecretValue', () =>
      this.client.send(
        new PutSecretValueCommand({ SecretId: name, SecretString: value, ClientRequestToken: token }),
      ),
    );
    return { versionId: res.VersionId ?? '' };
  }

  async restoreSecret(name: string): Promise<void> {
    await this.send('RestoreSecret', () => this.client.send(new RestoreSecretCommand({ SecretId: name })));
  }

  async deleteSecret(name: string, recoveryDays: number): Promise<void> {
    try {
      await this.send('DeleteSecret', () =>
        this.client.send(
          new DeleteSecretCommand(
            recoveryDays === 0
              ? { SecretId: name, ForceDeleteWithoutRecovery: true }
              : { SecretId: name, RecoveryWindowInDays: recoveryDays },
          ),
        ),
      );
    } catch (e) {
      // Already gone, or already scheduled for deletion: the outcome we wanted.
      if (!isNotFound(e) && !isConflict(e)) throw e;
    }
  }

  async getResourcePolicy(name: string): Promise<string | undefined> {
    const res = await this.send('GetResourcePolicy', () =>
      this.client.send(new GetResourcePolicyCommand({ SecretId: name })),
    );
    return res.ResourcePolicy || undefined;
  }

  async putResourcePolicy(name: string, policy: string): Promise<void> {
    await this.send('PutResourcePolicy', () =>
      this.client.send(
        new PutResourcePolicyCommand({ SecretId: name, ResourcePolicy: policy, BlockPublicPolicy: true }),
      ),
    );
  }

  async tagSecret(name: string, tags: Tags): Promise<void> {
    await this.send('TagResource', () =>
      this.client.send(new TagResourceCommand({ SecretId: name, Tags: toTags(tags) })),
    );
  }
}

function toSummary(s: SecretListEntry): SecretSummary {
  const current = Object.entries(s.SecretVersionsToStages ?? {}).find(([, stages]) =>
    stages?.includes('AWSCURRENT'),
  );
  return {
    arn: s.ARN ?? '',
    name: s.Name ?? '',
    tags: fromTags(s.Tags),
    currentVersionId: current?.[0],
    deletedDate: s.DeletedDate,
    lastChangedDate: s.LastChangedDate,
  };
}
