import {
  checkLength,
  checkRange,
  dropUndefined,
  epochSeconds,
  type JsonBody,
  jsonError,
  jsonResponse,
  optArray,
  optBool,
  optNumber,
  optString,
  parseJsonBody,
  reqString,
  tagList,
} from './awsjson.js';
import { type BucketSpec, SECRETS_MANAGER_BUCKETS } from './limits.js';
import { accessDenied, evaluate, isPublic, parsePolicy } from './policy.js';
import { AwsError, type Prepared, type SimContext, type SimRequest } from './protocol.js';
import { fnv } from './query.js';
import { type Secret, type SecretVersion, secretPurged } from './state.js';

/** Secrets Manager over awsJson1_1 (reference B). */

type Handler = (ctx: SimContext, b: JsonBody, req: SimRequest) => unknown;

const HANDLERS: Record<string, Handler> = {
  CreateSecret: createSecret,
  PutSecretValue: putSecretValue,
  GetSecretValue: getSecretValue,
  DescribeSecret: describeSecret,
  ListSecrets: listSecrets,
  DeleteSecret: deleteSecret,
  RestoreSecret: restoreSecret,
  TagResource: tagResource,
  UntagResource: untagResource,
  UpdateSecret: updateSecret,
  PutResourcePolicy: putResourcePolicy,
  GetResourcePolicy: getResourcePolicy,
  DeleteResourcePolicy: deleteResourcePolicy,
};

const READS = new Set(['GetSecretValue', 'DescribeSecret', 'ListSecrets', 'GetResourcePolicy']);

function bucketFor(op: string): { key: string; spec: BucketSpec } {
  if (op === 'GetSecretValue' || op === 'DescribeSecret') {
    return { key: 'secretsmanager:read', spec: SECRETS_MANAGER_BUCKETS.read };
  }
  if (op === 'ListSecrets')
    return { key: 'secretsmanager:ListSecrets', spec: SECRETS_MANAGER_BUCKETS.ListSecrets };
  return { key: `secretsmanager:${op}`, spec: SECRETS_MANAGER_BUCKETS.write };
}

export function prepareSecrets(ctx: SimContext, req: SimRequest, op: string): Prepared {
  const handler = HANDLERS[op];
  let body: JsonBody = {};
  let parseError: AwsError | undefined;
  try {
    body = parseJsonBody(req.body);
  } catch (e) {
    parseError = e as AwsError;
  }
  const target =
    typeof body.Name === 'string' ? body.Name : typeof body.SecretId === 'string' ? body.SecretId : undefined;
  return {
    service: 'secretsmanager',
    operation: op,
    mutating: handler !== undefined && !READS.has(op),
    target,
    bucket: handler ? bucketFor(op) : undefined,
    run() {
      try {
        if (!handler) throw new AwsError('UnknownOperationException', `Unknown operation ${op}`);
        if (parseError) throw parseError;
        if (ctx.caller.sourceInstanceArn !== undefined) authorize(ctx, op, body);
        return jsonResponse(200, handler(ctx, body, req), req.requestId);
      } catch (e) {
        if (e instanceof AwsError) return jsonError(e, req.requestId);
        return jsonError(
          new AwsError('InternalServiceError', `An error occurred on the server side: ${String(e)}`, 500),
          req.requestId,
        );
      }
    },
    throttled: () => jsonError(new AwsError('ThrottlingException', 'Rate exceeded'), req.requestId),
    failed: () =>
      jsonError(
        new AwsError('InternalServiceError', 'An error occurred on the server side.', 500),
        req.requestId,
      ),
  };
}

// --- authorization ----------------------------------------------------------------

/**
 * NOTE: only an instance's credentials (its instance profile's role) are checked, against the
 * secret's resource policy: the role has no Secrets Manager permission of its own (DESIGN §12),
 * so calls that name no secret, and secrets that do not exist, are denied too. Every other
 * caller acts as its account's administrator.
 */
function authorize(ctx: SimContext, op: string, b: JsonBody): void {
  const principal = ctx.caller;
  const action = `secretsmanager:${op}`;
  const id = typeof b.SecretId === 'string' ? b.SecretId : undefined;
  const s = id === undefined ? undefined : findSecret(ctx, id, ctx.clock.now());
  if (!s) throw accessDenied({ action, resource: id ?? '*', principal }, 'noIdentityPolicy');
  const request = { action, resource: s.id, principal };
  const decision =
    s.resourcePolicy === undefined ? 'implicitDeny' : evaluate(parsePolicy(s.resourcePolicy), request);
  if (decision !== 'allow') throw accessDenied(request, decision);
}

// --- helpers ------------------------------------------------------------------

const NOT_FOUND = "Secrets Manager can't find the specified secret.";
const MARKED_FOR_DELETION =
  "You can't perform this operation on the secret because it was marked for deletion.";
const NAME = /^[A-Za-z0-9/_+=.@-]+$/;
const ARN = /^arn:aws[a-z-]*:secretsmanager:[^:]*:\d{12}:secret:(.+)$/;

/** SecretId may be the name, the full ARN, or a partial ARN (without the 6-char suffix). */
function findSecret(ctx: SimContext, id: string, now: number): Secret | undefined {
  const m = ARN.exec(id);
  if (!m) return ctx.state.secretNamed(id, now);
  const tail = m[1]!;
  if (tail.length > 7 && tail[tail.length - 7] === '-') {
    const full = ctx.state.secretNamed(tail.slice(0, -7), now);
    if (full && full.id === id) return full;
  }
  const partial = ctx.state.secretNamed(tail, now);
  return partial?.id.startsWith(`${id}-`) ? partial : undefined;
}

function requireSecret(ctx: SimContext, b: JsonBody, now: number): Secret {
  const id = reqString(b, 'SecretId');
  const s = findSecret(ctx, id, now);
  if (!s) throw new AwsError('ResourceNotFoundException', NOT_FOUND);
  return s;
}

function requireLive(s: Secret): void {
  if (s.deletedAt !== undefined) throw new AwsError('InvalidRequestException', MARKED_FOR_DELETION);
}

function checkToken(token: string | undefined): void {
  if (token !== undefined) checkLength('clientRequestToken', token, 32, 64);
}

function secretValue(b: JsonBody): { secretString?: string; secretBinary?: string } {
  const secretString = optString(b, 'SecretString');
  const secretBinary = optString(b, 'SecretBinary');
  if (secretString !== undefined && secretBinary !== undefined) {
    throw new AwsError(
      'InvalidParameterException',
      "You can't specify both a binary secret value and a string secret value in the same secret.",
    );
  }
  return { secretString, secretBinary };
}

function sameValue(v: SecretVersion, want: { secretString?: string; secretBinary?: string }): boolean {
  return v.secretString === want.secretString && v.secretBinary === want.secretBinary;
}

function checkTags(tags: { Key: string }[]): void {
  for (const t of tags) {
    checkLength('tags.member.key', t.Key, 1, 128);
    if (t.Key.toLowerCase().startsWith('aws:')) {
      throw new AwsError(
        'InvalidParameterException',
        'Invalid tag key: tag keys starting with aws: are reserved.',
      );
    }
  }
}

/**
 * Moves `stages` onto `version`. When AWSCURRENT moves, the previous holder becomes
 * AWSPREVIOUS (which leaves whichever version had it). Unlabelled versions beyond 100 are dropped.
 */
function stageVersion(s: Secret, version: SecretVersion, stages: string[]): void {
  const previousCurrent = s.versions.find((v) => v !== version && v.stages.includes('AWSCURRENT'));
  for (const v of s.versions) if (v !== version) v.stages = v.stages.filter((x) => !stages.includes(x));
  for (const st of stages) if (!version.stages.includes(st)) version.stages.push(st);
  if (stages.includes('AWSCURRENT') && previousCurrent) {
    for (const v of s.versions) v.stages = v.stages.filter((x) => x !== 'AWSPREVIOUS');
    previousCurrent.stages.push('AWSPREVIOUS');
  }
  const unlabelled = s.versions.filter((v) => v.stages.length === 0);
  if (s.versions.length > 100 && unlabelled.length > 0) {
    const drop = new Set(unlabelled.slice(0, s.versions.length - 100));
    s.versions = s.versions.filter((v) => !drop.has(v));
  }
}

function versionsToStages(s: Secret): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const v of s.versions) if (v.stages.length > 0) out[v.id] = [...v.stages];
  return out;
}

function day(ms: number): number {
  return Math.floor(ms / 86_400_000) * 86_400_000;
}

function summary(
  s: Secret,
  versionsKey: 'VersionIdsToStages' | 'SecretVersionsToStages',
  asOf = Number.POSITIVE_INFINITY,
): Record<string, unknown> {
  const deletedAt = s.deletedAt !== undefined && s.deletedAt <= asOf ? s.deletedAt : undefined;
  return dropUndefined({
    ARN: s.id,
    Name: s.name,
    Description: s.description,
    KmsKeyId: s.kmsKeyId,
    LastChangedDate: epochSeconds(s.lastChangedAt),
    LastAccessedDate: s.lastAccessedAt === undefined ? undefined : epochSeconds(day(s.lastAccessedAt)),
    DeletedDate: deletedAt === undefined ? undefined : epochSeconds(deletedAt),
    Tags: [...s.tags].map(([Key, Value]) => ({ Key, Value })),
    [versionsKey]: versionsToStages(s),
    CreatedDate: epochSeconds(s.createdAt),
    PrimaryRegion: s.region,
  });
}

// --- operations -------------------------------------------------------------------

function createSecret(ctx: SimContext, b: JsonBody, req: SimRequest): unknown {
  const { state, clock, rng } = ctx;
  const now = clock.now();
  const name = reqString(b, 'Name');
  checkLength('name', name, 1, 512);
  if (!NAME.test(name)) {
    throw new AwsError(
      'InvalidParameterException',
      'Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!',
    );
  }
  const token = optString(b, 'ClientRequestToken');
  checkToken(token);
  const value = secretValue(b);
  const description = optString(b, 'Description');
  if (description !== undefined) checkLength('description', description, 0, 2048);
  const tags = tagList(b, 'Tags');
  checkTags(tags);

  const existing = state.secretNamed(name, now);
  // NOTE: a force-deleted name is freed asynchronously (fault setting `secretNameReuseMs`).
  if (!existing && now < (state.blockedSecretNames.get(name) ?? 0)) {
    throw new AwsError(
      'InvalidRequestException',
      "You can't create this secret because a secret with this name is already scheduled for deletion.",
    );
  }
  if (existing) {
    if (existing.deletedAt !== undefined) {
      throw new AwsError(
        'InvalidRequestException',
        "You can't create this secret because a secret with this name is already scheduled for deletion.",
      );
    }
    // NOTE: a retry with the same token and value is a no-op success (the SDK reuses tokens).
    const same = token === undefined ? undefined : existing.versions.find((v) => v.id === token);
    if (same && sameValue(same, value)) return { ARN: existing.id, Name: existing.name, VersionId: same.id };
    throw new AwsError(
      'ResourceExistsException',
      `The operation failed because the secret ${name} already exists.`,
    );
  }
  const hasValue = value.secretString !== undefined || value.secretBinary !== undefined;
  const secret: Secret = {
    seq: state.nextSeq(),
    id: `arn:aws:secretsmanager:${req.region}:${ctx.state.account}:secret:${name}-${rng.alnum(6)}`,
    name,
    region: req.region,
    description,
    kmsKeyId: optString(b, 'KmsKeyId'),
    versions: [],
    createdAt: now,
    lastChangedAt: now,
    tags: new Map(tags.map((t) => [t.Key, t.Value])),
    everTagged: tags.length > 0,
  };
  if (hasValue) {
    secret.versions.push({
      id: token ?? rng.uuid(),
      ...dropUndefined({ ...value }),
      createdAt: now,
      stages: ['AWSCURRENT'],
    });
  }
  state.addSecret(secret, now);
  return dropUndefined({ ARN: secret.id, Name: name, VersionId: secret.versions[0]?.id });
}

function addVersion(ctx: SimContext, s: Secret, b: JsonBody, stagesIn: unknown[] | undefined): SecretVersion {
  const now = ctx.clock.now();
  const token = optString(b, 'ClientRequestToken');
  checkToken(token);
  const value = secretValue(b);
  if (value.secretString === undefined && value.secretBinary === undefined) {
    throw new AwsError('InvalidRequestException', 'You must provide either SecretString or SecretBinary.');
  }
  const stages = (stagesIn ?? ['AWSCURRENT']).map(String);
  const existing = token === undefined ? undefined : s.versions.find((v) => v.id === token);
  if (existing) {
    if (!sameValue(existing, value)) {
      throw new AwsError(
        'ResourceExistsException',
        "You can't modify an existing version, you can only create a new version.",
      );
    }
    return existing;
  }
  const version: SecretVersion = {
    id: token ?? ctx.rng.uuid(),
    ...dropUndefined({ ...value }),
    createdAt: now,
    stages: [],
  };
  s.versions.push(version);
  stageVersion(s, version, stages);
  s.lastChangedAt = now;
  return version;
}

function putSecretValue(ctx: SimContext, b: JsonBody): unknown {
  const s = requireSecret(ctx, b, ctx.clock.now());
  requireLive(s);
  const v = addVersion(ctx, s, b, optArray(b, 'VersionStages'));
  return { ARN: s.id, Name: s.name, VersionId: v.id, VersionStages: [...v.stages] };
}

function updateSecret(ctx: SimContext, b: JsonBody): unknown {
  const now = ctx.clock.now();
  const s = requireSecret(ctx, b, now);
  requireLive(s);
  const description = optString(b, 'Description');
  if (description !== undefined) s.description = description;
  const kms = optString(b, 'KmsKeyId');
  if (kms !== undefined) s.kmsKeyId = kms;
  s.lastChangedAt = now;
  const hasValue = b.SecretString !== undefined || b.SecretBinary !== undefined;
  const v = hasValue ? addVersion(ctx, s, b, undefined) : undefined;
  return dropUndefined({ ARN: s.id, Name: s.name, VersionId: v?.id });
}

function getSecretValue(ctx: SimContext, b: JsonBody): unknown {
  const now = ctx.clock.now();
  const s = requireSecret(ctx, b, now);
  requireLive(s);
  const versionId = optString(b, 'VersionId');
  const stage = optString(b, 'VersionStage') ?? (versionId === undefined ? 'AWSCURRENT' : undefined);
  let v: SecretVersion | undefined;
  if (versionId !== undefined) {
    v = s.versions.find((x) => x.id === versionId);
    if (!v || (stage !== undefined && !v.stages.includes(stage))) {
      throw new AwsError(
        'ResourceNotFoundException',
        `Secrets Manager can't find the specified secret value for VersionId: ${versionId}`,
      );
    }
  } else {
    v = s.versions.find((x) => x.stages.includes(stage!));
    if (!v) {
      throw new AwsError(
        'ResourceNotFoundException',
        `Secrets Manager can't find the specified secret value for staging label: ${stage}`,
      );
    }
  }
  s.lastAccessedAt = now;
  return dropUndefined({
    ARN: s.id,
    Name: s.name,
    VersionId: v.id,
    SecretString: v.secretString,
    SecretBinary: v.secretBinary,
    VersionStages: [...v.stages],
    CreatedDate: epochSeconds(v.createdAt),
  });
}

function describeSecret(ctx: SimContext, b: JsonBody): unknown {
  return summary(requireSecret(ctx, b, ctx.clock.now()), 'VersionIdsToStages');
}

const FILTER_KEYS = [
  'description',
  'name',
  'tag-key',
  'tag-value',
  'primary-region',
  'owning-service',
  'all',
];

/**
 * NOTE: filters are prefix matches (case-sensitive except description), a leading `!`
 * negates, values of one filter are ORed and filters are ANDed. `tag-key` and `tag-value`
 * are evaluated independently (not necessarily on the same tag).
 */
function compileSecretFilters(raw: unknown[]): (s: Secret) => boolean {
  const tests = raw.map((f, n) => {
    const o = (f ?? {}) as JsonBody;
    const key = optString(o, 'Key');
    if (key === undefined || !FILTER_KEYS.includes(key)) {
      throw new AwsError(
        'ValidationException',
        `1 validation error detected: Value '${key}' at 'filters.${n + 1}.member.key' failed to satisfy constraint: Member must satisfy enum value set: [${FILTER_KEYS.join(', ')}]`,
      );
    }
    const values = (optArray(o, 'Values') ?? []).map(String);
    const candidates = (s: Secret): { text: string; ci: boolean }[] => {
      const tagKeys = [...s.tags.keys()].map((text) => ({ text, ci: false }));
      const tagValues = [...s.tags.values()].map((text) => ({ text, ci: false }));
      const desc = s.description === undefined ? [] : [{ text: s.description, ci: true }];
      switch (key) {
        case 'name':
          return [{ text: s.name, ci: false }];
        case 'description':
          return desc;
        case 'tag-key':
          return tagKeys;
        case 'tag-value':
          return tagValues;
        case 'primary-region':
          return [{ text: s.region, ci: false }];
        case 'owning-service':
          return [];
        default:
          return [{ text: s.name, ci: false }, ...desc, ...tagKeys, ...tagValues];
      }
    };
    return (s: Secret): boolean => {
      const cands = candidates(s);
      return values.some((raw) => {
        const negate = raw.startsWith('!');
        const prefix = negate ? raw.slice(1) : raw;
        const hit = cands.some((c) =>
          c.ci ? c.text.toLowerCase().startsWith(prefix.toLowerCase()) : c.text.startsWith(prefix),
        );
        return negate ? !hit : hit;
      });
    };
  });
  return (s) => tests.every((t) => t(s));
}

function listSecrets(ctx: SimContext, b: JsonBody): unknown {
  const now = ctx.clock.now();
  const max = optNumber(b, 'MaxResults') ?? 100;
  checkRange('maxResults', max, 1, 100);
  const includePlanned = optBool(b, 'IncludePlannedDeletion') ?? false;
  const descending = (optString(b, 'SortOrder') ?? 'desc') === 'desc';
  const filter = compileSecretFilters(optArray(b, 'Filters') ?? []);
  const fingerprint = fnv(JSON.stringify([b.Filters ?? null, includePlanned, descending]));
  const tokenIn = optString(b, 'NextToken');
  let fromSeq = descending ? Number.MAX_SAFE_INTEGER : 0;
  if (tokenIn !== undefined) {
    const text = Buffer.from(tokenIn, 'base64url').toString();
    const [seq, fp] = text.split('.');
    if (fp !== fingerprint || !Number.isInteger(Number(seq)) || seq === '') {
      throw new AwsError('InvalidNextTokenException', 'The NextToken value is invalid.');
    }
    fromSeq = Number(seq);
  }
  // NOTE: ListSecrets is eventually consistent (fault setting `listSecretsLagMs`): it shows the
  // secrets as they were that long ago; values and tags are current.
  const asOf = now - (ctx.faults().listSecretsLagMs ?? 0);
  const cut = ctx.faults().shortPages ? Math.floor(ctx.chance() * (max + 1)) : max;
  const page: Secret[] = [];
  let next: number | undefined;
  for (const s of ctx.state.secrets.scan(fromSeq, descending)) {
    if (s.createdAt > asOf || secretPurged(s, asOf)) continue;
    if (s.deletedAt !== undefined && s.deletedAt <= asOf && !includePlanned) continue;
    if (!filter(s)) continue;
    if (page.length >= cut) {
      next = s.seq;
      break;
    }
    page.push(s);
  }
  return dropUndefined({
    SecretList: page.map((s) => summary(s, 'SecretVersionsToStages', asOf)),
    NextToken: next === undefined ? undefined : Buffer.from(`${next}.${fingerprint}`).toString('base64url'),
  });
}

function deleteSecret(ctx: SimContext, b: JsonBody): unknown {
  const { state, clock } = ctx;
  const now = clock.now();
  const id = reqString(b, 'SecretId');
  const force = optBool(b, 'ForceDeleteWithoutRecovery') ?? false;
  const windowDays = optNumber(b, 'RecoveryWindowInDays');
  if (force && windowDays !== undefined) {
    throw new AwsError(
      'InvalidParameterException',
      "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
    );
  }
  if (windowDays !== undefined && (windowDays < 7 || windowDays > 30)) {
    throw new AwsError(
      'InvalidParameterException',
      'The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).',
    );
  }
  const s = findSecret(ctx, id, now);
  if (!s) {
    // NOTE: a forced delete of an unknown secret succeeds (reference B).
    if (force)
      return {
        ARN: ARN.test(id) ? id : undefined,
        Name: ARN.exec(id)?.[1] ?? id,
        DeletionDate: epochSeconds(now),
      };
    throw new AwsError('ResourceNotFoundException', NOT_FOUND);
  }
  if (force) {
    if (s.deletedAt !== undefined && ctx.faults().refuseForceDeleteOfScheduled) {
      // NOTE: reported of AWS (restore first, then force delete); the reference says allowed.
      throw new AwsError(
        'InvalidRequestException',
        "You tried to perform the operation on a secret that's currently marked deleted.",
      );
    }
    s.deletedAt ??= now;
    s.deletionDate = now;
    if (state.secretByName.get(s.name) === s) state.secretByName.delete(s.name);
    const block = ctx.faults().secretNameReuseMs ?? 0;
    if (block > 0) state.blockedSecretNames.set(s.name, now + block);
    return { ARN: s.id, Name: s.name, DeletionDate: epochSeconds(now) };
  }
  if (s.deletedAt !== undefined) {
    throw new AwsError(
      'InvalidRequestException',
      "You tried to perform the operation on a secret that's currently marked deleted.",
    );
  }
  s.deletedAt = now;
  s.deletionDate = now + (windowDays ?? 30) * 86_400_000;
  return { ARN: s.id, Name: s.name, DeletionDate: epochSeconds(s.deletionDate) };
}

function restoreSecret(ctx: SimContext, b: JsonBody): unknown {
  const s = requireSecret(ctx, b, ctx.clock.now());
  s.deletedAt = undefined;
  s.deletionDate = undefined;
  return { ARN: s.id, Name: s.name };
}

function tagResource(ctx: SimContext, b: JsonBody): unknown {
  const s = requireSecret(ctx, b, ctx.clock.now());
  requireLive(s);
  const tags = tagList(b, 'Tags');
  checkTags(tags);
  const keys = new Set([...s.tags.keys(), ...tags.map((t) => t.Key)]);
  if (keys.size > 50) throw new AwsError('ValidationException', 'Number of tags exceeds limit of 50.');
  for (const t of tags) ctx.state.setTag(s, t.Key, t.Value);
  return {};
}

function untagResource(ctx: SimContext, b: JsonBody): unknown {
  const s = requireSecret(ctx, b, ctx.clock.now());
  requireLive(s);
  for (const k of (optArray(b, 'TagKeys') ?? []).map(String)) ctx.state.deleteTag(s, k);
  return {};
}

// --- resource policies -------------------------------------------------------------

function putResourcePolicy(ctx: SimContext, b: JsonBody): unknown {
  const s = requireSecret(ctx, b, ctx.clock.now());
  requireLive(s);
  const text = reqString(b, 'ResourcePolicy');
  checkLength('resourcePolicy', text, 1, 20_480);
  const statements = parsePolicy(text);
  // NOTE: BlockPublicPolicy defaults to false, as in the API; a public policy is an Allow for
  // Principal "*" with no condition.
  if ((optBool(b, 'BlockPublicPolicy') ?? false) && isPublic(statements))
    throw new AwsError(
      'PublicPolicyException',
      'The BlockPublicPolicy parameter is set to true, and the resource policy did not prevent broad access to the secret.',
    );
  s.resourcePolicy = text;
  s.lastChangedAt = ctx.clock.now();
  return { ARN: s.id, Name: s.name };
}

function getResourcePolicy(ctx: SimContext, b: JsonBody): unknown {
  const s = requireSecret(ctx, b, ctx.clock.now());
  return dropUndefined({ ARN: s.id, Name: s.name, ResourcePolicy: s.resourcePolicy });
}

function deleteResourcePolicy(ctx: SimContext, b: JsonBody): unknown {
  const s = requireSecret(ctx, b, ctx.clock.now());
  requireLive(s);
  s.resourcePolicy = undefined;
  s.lastChangedAt = ctx.clock.now();
  return { ARN: s.id, Name: s.name };
}
