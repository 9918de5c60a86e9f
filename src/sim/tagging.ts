import {
  type JsonBody,
  jsonError,
  jsonResponse,
  optArray,
  optNumber,
  optString,
  parseJsonBody,
} from './awsjson.js';
import { groupArn, instanceArn } from './ec2-render.js';
import { DURATIONS, TAGGING_BUCKETS } from './limits.js';
import { AwsError, type Prepared, type SimContext, type SimRequest } from './protocol.js';
import { fnv } from './query.js';
import { SEED } from './seed.js';
import { settle, type Tags } from './state.js';

/**
 * Resource Groups Tagging API GetResources (reference C). It lists every resource that is
 * or was tagged, including ghosts: resources gone from their own API within the last
 * {@link DURATIONS.taggingGhostMs}, with the tags they had.
 */

interface Entry {
  /** Position for pagination, unique within its kind. */
  seq: number;
  arn: string;
  tags: Tags;
}

interface Kind {
  type: string;
  scan(ctx: SimContext, fromSeq: number, now: number): Iterable<Entry>;
}

const KINDS: Kind[] = [
  {
    type: 'ec2:instance',
    *scan(ctx, fromSeq, now) {
      const end = DURATIONS.terminatedVisibleMs + DURATIONS.taggingGhostMs;
      for (const i of ctx.state.instances.scan(fromSeq)) {
        if (!i.everTagged) continue;
        settle(i, now);
        if (i.terminatedAt !== undefined && now >= i.terminatedAt + end) continue;
        yield { seq: i.seq, arn: instanceArn(i), tags: i.tags };
      }
    },
  },
  {
    type: 'ec2:volume',
    *scan(ctx, fromSeq, now) {
      // Volumes ride on their instance's seq: seq * 16 + index keeps them ordered and unique.
      for (const i of ctx.state.instances.scan(Math.floor(fromSeq / 16))) {
        settle(i, now);
        for (let n = 0; n < i.volumes.length && n < 16; n++) {
          const v = i.volumes[n]!;
          const seq = i.seq * 16 + n;
          if (seq < fromSeq || !v.everTagged) continue;
          if (v.deletedAt !== undefined && now >= v.deletedAt + DURATIONS.taggingGhostMs) continue;
          yield {
            seq,
            arn: `arn:aws:ec2:${i.region}:${i.ownerId ?? SEED.accountId}:volume/${v.id}`,
            tags: v.tags,
          };
        }
      }
    },
  },
  {
    type: 'ec2:security-group',
    *scan(ctx, fromSeq, now) {
      for (const sg of ctx.state.securityGroups.scan(fromSeq)) {
        if (!sg.everTagged) continue;
        if (sg.deletedAt !== undefined && now >= sg.deletedAt + DURATIONS.taggingGhostMs) continue;
        yield { seq: sg.seq, arn: groupArn(sg), tags: sg.tags };
      }
    },
  },
  {
    type: 'secretsmanager:secret',
    *scan(ctx, fromSeq, now) {
      for (const s of ctx.state.secrets.scan(fromSeq)) {
        if (!s.everTagged) continue;
        if (s.deletionDate !== undefined && now >= s.deletionDate + DURATIONS.taggingGhostMs) continue;
        yield { seq: s.seq, arn: s.id, tags: s.tags };
      }
    },
  },
];

export function prepareTagging(ctx: SimContext, req: SimRequest, op: string): Prepared {
  return {
    service: 'tagging',
    operation: op,
    mutating: false,
    bucket:
      op === 'GetResources' ? { key: 'tagging:GetResources', spec: TAGGING_BUCKETS.GetResources } : undefined,
    run() {
      try {
        if (op !== 'GetResources') throw new AwsError('UnknownOperationException', `Unknown operation ${op}`);
        return jsonResponse(200, getResources(ctx, parseJsonBody(req.body)), req.requestId);
      } catch (e) {
        if (e instanceof AwsError) return jsonError(e, req.requestId);
        return jsonError(
          new AwsError('InternalServiceException', `Internal error: ${String(e)}`, 500),
          req.requestId,
        );
      }
    },
    throttled: () => jsonError(new AwsError('ThrottledException', 'Rate exceeded'), req.requestId),
    failed: () =>
      jsonError(new AwsError('InternalServiceException', 'Internal service error.', 500), req.requestId),
  };
}

function invalid(message: string): AwsError {
  return new AwsError('InvalidParameterException', message);
}

type TagTest = (tags: Tags) => boolean;

function compileTagFilters(raw: unknown[]): TagTest | undefined {
  if (raw.length === 0) return undefined;
  if (raw.length > 50) throw invalid('TagFilters can contain at most 50 keys.');
  const tests = raw.map((f) => {
    const o = (f ?? {}) as JsonBody;
    const key = optString(o, 'Key');
    if (key === undefined) throw invalid('TagFilters must specify a Key.');
    const values = (optArray(o, 'Values') ?? []).map(String);
    if (values.length > 20) throw invalid('A tag filter can contain at most 20 values.');
    const set = new Set(values);
    // NOTE: no values means "any value"; values of one key are ORed; matching is exact.
    return (tags: Tags) => {
      const v = tags.get(key);
      return v !== undefined && (set.size === 0 || set.has(v));
    };
  });
  return (tags) => tests.every((t) => t(tags));
}

function selectedKinds(raw: unknown[]): Kind[] {
  if (raw.length === 0) return KINDS;
  if (raw.length > 100) throw invalid('ResourceTypeFilters can contain at most 100 entries.');
  const wanted = raw.map((r) => {
    const s = String(r);
    if (!/^[a-z0-9-]+(:[a-z0-9-]+)?$/.test(s)) throw invalid(`Invalid resource type filter: ${s}`);
    return s;
  });
  return KINDS.filter((k) => wanted.some((w) => w === k.type || w === k.type.split(':')[0]));
}

function getResources(ctx: SimContext, b: JsonBody): unknown {
  const now = ctx.clock.now();
  const arnList = optArray(b, 'ResourceARNList');
  const tagFiltersRaw = optArray(b, 'TagFilters') ?? [];
  const typeFiltersRaw = optArray(b, 'ResourceTypeFilters') ?? [];
  const perPage = optNumber(b, 'ResourcesPerPage');
  const tokenIn = optString(b, 'PaginationToken');
  const tagsPerPage = optNumber(b, 'TagsPerPage');
  if (tagsPerPage !== undefined && (tagsPerPage < 100 || tagsPerPage > 500)) {
    throw invalid('TagsPerPage must be between 100 and 500.');
  }
  if (arnList !== undefined) {
    if (
      tagFiltersRaw.length > 0 ||
      typeFiltersRaw.length > 0 ||
      perPage !== undefined ||
      (tokenIn ?? '') !== ''
    ) {
      throw invalid(
        'ResourceARNList cannot be used together with TagFilters, ResourceTypeFilters or pagination parameters.',
      );
    }
    if (arnList.length > 100) throw invalid('ResourceARNList can contain at most 100 ARNs.');
    return { PaginationToken: '', ResourceTagMappingList: lookupArns(ctx, arnList.map(String), now) };
  }
  // NOTE: the default page size when ResourcesPerPage is omitted is our choice (100).
  const limit = perPage ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw invalid('ResourcesPerPage must be between 1 and 100.');
  const tagTest = compileTagFilters(tagFiltersRaw);
  const kinds = selectedKinds(typeFiltersRaw);
  const fingerprint = fnv(JSON.stringify([tagFiltersRaw, typeFiltersRaw]));

  let kindIndex = 0;
  let fromSeq = 0;
  if (tokenIn !== undefined && tokenIn !== '') {
    const parts = Buffer.from(tokenIn, 'base64url').toString().split('.');
    const k = Number(parts[0]);
    const s = Number(parts[1]);
    const issued = Number(parts[3]);
    if (
      parts.length !== 4 ||
      parts[2] !== fingerprint ||
      !Number.isInteger(k) ||
      !Number.isInteger(s) ||
      !Number.isInteger(issued)
    ) {
      throw invalid('The specified pagination token is not valid.');
    }
    // NOTE: tokens live 15 minutes on AWS (fault setting `taggingTokenExpiry`); the listing
    // must start over.
    if (ctx.faults().taggingTokenExpiry && now - issued >= DURATIONS.taggingTokenMs) {
      throw new AwsError(
        'PaginationTokenExpiredException',
        'The pagination token has expired. Start the request again from the beginning.',
      );
    }
    kindIndex = k;
    fromSeq = s;
  }
  const token = (k: number, seq: number) =>
    Buffer.from(`${k}.${seq}.${fingerprint}.${now}`).toString('base64url');
  const cut = ctx.faults().shortPages ? Math.floor(ctx.chance() * (limit + 1)) : limit;
  const out: { ResourceARN: string; Tags: { Key: string; Value: string }[] }[] = [];
  for (; kindIndex < kinds.length; kindIndex++, fromSeq = 0) {
    for (const e of kinds[kindIndex]!.scan(ctx, fromSeq, now)) {
      if (tagTest && !tagTest(e.tags)) continue;
      if (out.length >= cut) return { PaginationToken: token(kindIndex, e.seq), ResourceTagMappingList: out };
      out.push(mapping(e));
    }
  }
  // A last page may still carry a token, to an empty page.
  if (ctx.faults().shortPages && out.length > 0 && ctx.chance() < 0.5)
    return { PaginationToken: token(kinds.length, 0), ResourceTagMappingList: out };
  return { PaginationToken: '', ResourceTagMappingList: out };
}

function mapping(e: Entry): { ResourceARN: string; Tags: { Key: string; Value: string }[] } {
  return { ResourceARN: e.arn, Tags: [...e.tags].map(([Key, Value]) => ({ Key, Value })) };
}

/** Unknown ARNs are skipped silently. */
function lookupArns(ctx: SimContext, arns: string[], now: number): unknown[] {
  const { state } = ctx;
  const out: unknown[] = [];
  for (const arn of arns) {
    const m = /^arn:aws:ec2:[^:]*:\d{12}:(instance|security-group|volume)\/(.+)$/.exec(arn);
    let kind: Kind | undefined;
    let seq: number | undefined;
    if (m?.[1] === 'instance') {
      kind = KINDS[0];
      seq = state.instances.get(m[2]!)?.seq;
    } else if (m?.[1] === 'volume') {
      kind = KINDS[1];
      seq = 0;
    } else if (m?.[1] === 'security-group') {
      kind = KINDS[2];
      seq = state.securityGroups.get(m[2]!)?.seq;
    } else if (arn.startsWith('arn:aws:secretsmanager:')) {
      kind = KINDS[3];
      seq = state.secrets.get(arn)?.seq;
    }
    if (!kind || seq === undefined) continue;
    for (const e of kind.scan(ctx, seq, now)) {
      if (e.arn === arn) {
        out.push(mapping(e));
        break;
      }
      if (kind !== KINDS[1]) break;
    }
  }
  return out;
}
