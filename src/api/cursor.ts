import { z } from 'zod';
import { ApiError } from './errors.js';

/**
 * Opaque list cursors: base64url of a small JSON value. Opaque to clients so the ordering key
 * can change; validated on the way back in so a forged cursor is a 400, never a SQL error.
 */
export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function decodeCursor<T extends z.ZodType>(schema: T, cursor: string): z.output<T> {
  const invalid = () =>
    new ApiError(400, 'ValidationFailed', 'invalid cursor', [
      { path: 'query.cursor', message: 'not a cursor returned by this list' },
    ]);
  if (!/^[A-Za-z0-9_-]{1,512}$/.test(cursor)) throw invalid();
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw invalid();
  return parsed.data;
}

/** Org list position: [created_at as epoch microseconds, id]. */
export const OrgCursor = z
  .tuple([z.string().regex(/^\d{1,17}$/), z.guid()])
  .transform(([createdAtMicros, id]) => ({ createdAtMicros, id }));

/** Orphan ledger position: the last row id. */
export const OrphanCursor = z.tuple([z.int().min(0).max(Number.MAX_SAFE_INTEGER)]).transform(([id]) => id);

/** Pin audit position: the last (oldest) row id of the page. */
export const PinChangeCursor = z.tuple([z.int().min(0).max(Number.MAX_SAFE_INTEGER)]).transform(([id]) => id);
