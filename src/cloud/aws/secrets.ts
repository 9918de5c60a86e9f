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
import { type ListingRun, PageMemo } from '../pages.js';
import type { SecretSummary, SecretsPort, Tags } from '../ports.js';
import { fromTags, toTags } from './ec2.js';
import { readBodies } from './ec2-listing.js';
import { translateAwsError } from './errors.js';

export class SecretsAdapter implements SecretsPort {
  /**
   * The secrets of the last listings' pages (cloud/pages.ts): two listings, the resync's and
   * the orphan scan's (a wider prefix).
   */
  private readonly pages = new PageMemo<SecretSummary[]>(2);

  constructor(
    private readonly client: SecretsManagerClient,
    private readonly ctx: CallContext,
    private readonly pageSize = 100,
    /** Read ListSecrets pages with {@link decodeListSecretsPage} instead of the SDK's deserializer (tests compare both). */
    private readonly decodeListings = true,
  ) {}

  private send<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return call(this.ctx, 'secretsmanager', operation, 'secretsmanager', fn, translateAwsError);
  }

  async listSecrets(prefix: string): Promise<SecretSummary[]> {
    const out: SecretSummary[] = [];
    // A page as it was last time is not decoded again (cloud/pages.ts).
    const run = this.decodeListings ? this.pages.begin(prefix) : undefined;
    let token: string | undefined;
    let place = 0;
    do {
      const command = new ListSecretsCommand({
        Filters: [{ Key: 'name', Values: [prefix] }],
        IncludePlannedDeletion: true,
        MaxResults: this.pageSize,
        NextToken: token,
      });
      const at = String(place++);
      const decoded = run
        ? readBodies(command, (chunks) => readListSecretsPage(run, at, Buffer.concat(chunks)), '{}')
        : () => undefined;
      const res = await this.send('ListSecrets', () => this.client.send(command));
      const page = decoded();
      // NOTE: the name filter is a prefix match; keep only exact prefix hits (case-sensitive).
      if (page) {
        for (const s of page.secrets) if (s.name.startsWith(prefix)) out.push(s);
      } else for (const s of res.SecretList ?? []) if (s.Name?.startsWith(prefix)) out.push(toSummary(s));
      token = page ? page.nextToken : res.NextToken || undefined;
    } while (token);
    run?.end();
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

/**
 * A ListSecrets page read through a listing's memo: its secrets are the last run's when its
 * bytes, less its page token, are; the token is always this response's own (tokens may differ
 * from one call to the next for the same page). Decoded here when the token cannot be told
 * apart from the rest (see {@link splitNextToken}), or is not the one the decoder reads.
 */
export function readListSecretsPage(
  run: ListingRun<SecretSummary[]>,
  place: string,
  body: Buffer,
): ListSecretsPage | undefined {
  const parts = splitNextToken(body);
  if (!parts) return decodeListSecretsPage(body);
  const secrets = run.read(place, parts.content, () => {
    const page = decodeListSecretsPage(body);
    return page && page.nextToken === parts.token ? page.secrets : undefined;
  });
  return secrets ? { secrets, nextToken: parts.token } : decodeListSecretsPage(body);
}

const NEXT_TOKEN_KEY = Buffer.from('"NextToken"');
const NEXT_TOKEN_STRING = Buffer.from('"NextToken":"');
const QUOTE = 0x22;

/**
 * A ListSecrets body cut around its page token's value: the bytes that say what the page
 * holds, and the token (undefined on the last page). Undefined when the token is not written
 * the one way read here (`"NextToken":"…"`, once, no escapes): the caller decodes the page
 * then. In JSON the key's quotes cannot be a string's content (those are escaped), so a match
 * is the key itself.
 */
export function splitNextToken(body: Buffer): { content: Buffer[]; token: string | undefined } | undefined {
  const at = body.lastIndexOf(NEXT_TOKEN_KEY);
  if (at < 0) return { content: [body], token: undefined };
  if (body.indexOf(NEXT_TOKEN_KEY) !== at) return undefined;
  if (!body.subarray(at, at + NEXT_TOKEN_STRING.length).equals(NEXT_TOKEN_STRING)) return undefined;
  const start = at + NEXT_TOKEN_STRING.length;
  const end = body.indexOf(QUOTE, start);
  if (end < 0) return undefined;
  const token = body.toString('utf8', start, end);
  if (token.includes('\\')) return undefined;
  return { content: [body.subarray(0, start), body.subarray(end)], token: token === '' ? undefined : token };
}

export interface ListSecretsPage {
  secrets: SecretSummary[];
  nextToken: string | undefined;
}

/**
 * A ListSecrets page (AWS JSON 1.1) → our summaries, by JSON.parse and a copy of the few fields
 * kept: at 10,000 orgs a resync lists 10,000 secrets, and the SDK's schema-driven deserializer
 * cost several times more, in CPU and garbage, than the parse. The same fields and the same
 * conversions as {@link toSummary} after the SDK (timestamps are epoch seconds, to the
 * millisecond). Anything unexpected gives undefined: the SDK reads that page.
 */
export function decodeListSecretsPage(raw: Buffer): ListSecretsPage | undefined {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isObject(body)) return undefined;
  const list = body.SecretList ?? [];
  const next = body.NextToken;
  if (!Array.isArray(list) || (next !== undefined && next !== null && typeof next !== 'string'))
    return undefined;
  const secrets: SecretSummary[] = [];
  for (const e of list) {
    if (!isObject(e)) return undefined;
    const tags: Tags = {};
    if (e.Tags !== undefined && e.Tags !== null) {
      if (!Array.isArray(e.Tags)) return undefined;
      for (const t of e.Tags) {
        if (!isObject(t) || typeof t.Key !== 'string') return undefined;
        tags[t.Key] = typeof t.Value === 'string' ? t.Value : '';
      }
    }
    let current: string | undefined;
    const stages = e.SecretVersionsToStages;
    if (stages !== undefined && stages !== null) {
      if (!isObject(stages)) return undefined;
      for (const [id, s] of Object.entries(stages))
        if (Array.isArray(s) && s.includes('AWSCURRENT')) {
          current = id;
          break;
        }
    }
    const deletedDate = epoch(e.DeletedDate);
    const lastChangedDate = epoch(e.LastChangedDate);
    if (deletedDate === null || lastChangedDate === null) return undefined;
    if (
      (e.ARN !== undefined && typeof e.ARN !== 'string') ||
      (e.Name !== undefined && typeof e.Name !== 'string')
    )
      return undefined;
    secrets.push({
      arn: (e.ARN as string | undefined) ?? '',
      name: (e.Name as string | undefined) ?? '',
      tags,
      currentVersionId: current,
      deletedDate,
      lastChangedDate,
    });
  }
  return { secrets, nextToken: typeof next === 'string' && next !== '' ? next : undefined };
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** An epoch-seconds timestamp as the SDK reads it; null when it is not one. */
function epoch(v: unknown): Date | undefined | null {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
  return Number.isFinite(n) ? new Date(Math.round(n * 1000)) : null;
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
