import { AwsError, type SimContext } from './protocol.js';
import type { QueryParams } from './query.js';
import type { SimState } from './state.js';

/** Helpers shared by the EC2 instance and security-group handlers. */

export function hiddenByConsistency(ctx: SimContext, createdAt: number, now: number): boolean {
  const window = ctx.faults().eventualConsistencyMs;
  return window > 0 && now - createdAt < window;
}

/**
 * Write-call consistency (fault setting `writeConsistencyMs`): an object created moments ago,
 * or an instance terminated moments ago, is not yet (or no longer) found by calls that change it.
 */
export function hiddenFromWrites(
  ctx: SimContext,
  now: number,
  createdAt: number,
  terminatedAt?: number,
): boolean {
  const window = ctx.faults().writeConsistencyMs ?? 0;
  return (
    window > 0 && (now - createdAt < window || (terminatedAt !== undefined && now - terminatedAt < window))
  );
}

/** Short pages (fault setting `shortPages`): a page's size is cut at random, 0 included. */
export function pageChance(ctx: SimContext, limit: number | undefined): (() => number) | undefined {
  return limit !== undefined && ctx.faults().shortPages ? () => ctx.chance() : undefined;
}

export function groupNameOf(state: SimState): (id: string) => string {
  return (id) => state.securityGroups.get(id)?.name ?? '';
}

export const MAX_TAGS = 50;

export function validateTagKey(key: string): void {
  if (key === '') throw new AwsError('InvalidParameterValue', 'Tag key cannot be empty');
  if (key.length > 128)
    throw new AwsError('InvalidParameterValue', `Tag key exceeds the maximum length of 128 characters`);
  if (key.toLowerCase().startsWith('aws:')) {
    throw new AwsError(
      'InvalidParameterValue',
      "Tag keys starting with 'aws:' are reserved for internal use",
    );
  }
}

/** `TagSpecification.N` → tags per resource type, validated against the allowed types. */
export function tagSpecifications(p: QueryParams, allowed: string[]): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const spec of p.structs('TagSpecification')) {
    const type = spec.get('ResourceType') ?? '';
    if (!allowed.includes(type)) {
      throw new AwsError(
        'InvalidParameterValue',
        `'${type}' is not a valid taggable resource type for this operation.`,
      );
    }
    if (out.has(type)) {
      throw new AwsError(
        'InvalidParameterValue',
        'The same resource type may not be specified more than once in tag specifications',
      );
    }
    const tags = new Map<string, string>();
    for (const t of spec.structs('Tag')) {
      const key = t.get('Key') ?? '';
      validateTagKey(key);
      tags.set(key, t.get('Value') ?? '');
    }
    if (tags.size > MAX_TAGS)
      throw new AwsError('TagLimitExceeded', 'The maximum number of Tags for a resource has been reached.');
    out.set(type, tags);
  }
  return out;
}
