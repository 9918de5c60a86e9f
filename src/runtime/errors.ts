/**
 * The few error classes the reconciler acts on. Adapters translate every SDK error into one of
 * these, so controllers never see an SDK type:
 * - NotFound: the thing asked about does not exist (never produced by a failed list).
 * - Conflict: it already exists / is in a state that forbids the call (adopt or wait).
 * - Throttled: the provider asked us to slow down; retried with backoff.
 * - Transient: 5xx, timeouts, sockets, dependency still shutting down; retried with backoff.
 * - Terminal: bad spec or permission denied; retrying cannot help, the reason goes to status.
 */
export type ErrorClass = 'NotFound' | 'Conflict' | 'Throttled' | 'Transient' | 'Terminal';

export interface CloudErrorDetails {
  service?: string;
  operation?: string;
  /** The provider's own code, e.g. `InvalidGroup.Duplicate` or Cloudflare `1013`. */
  code?: string;
  cause?: unknown;
}

export class CloudError extends Error {
  readonly service: string | undefined;
  readonly operation: string | undefined;
  readonly code: string | undefined;
  constructor(
    readonly errorClass: ErrorClass,
    message: string,
    details: CloudErrorDetails = {},
  ) {
    super(message, { cause: details.cause });
    this.name = `${errorClass}Error`;
    this.service = details.service;
    this.operation = details.operation;
    this.code = details.code;
  }
}

export class NotFoundError extends CloudError {
  constructor(message: string, details?: CloudErrorDetails) {
    super('NotFound', message, details);
  }
}
export class ConflictError extends CloudError {
  constructor(message: string, details?: CloudErrorDetails) {
    super('Conflict', message, details);
  }
}
export class ThrottledError extends CloudError {
  constructor(message: string, details?: CloudErrorDetails) {
    super('Throttled', message, details);
  }
}
export class TransientError extends CloudError {
  constructor(message: string, details?: CloudErrorDetails) {
    super('Transient', message, details);
  }
}
/** Not retried: the owner's status carries `reason` until the spec or the environment changes. */
export class TerminalError extends CloudError {
  constructor(message: string, details: CloudErrorDetails & { reason?: string } = {}) {
    super('Terminal', message, details);
    this.reason = details.reason ?? 'TerminalError';
  }
  readonly reason: string;
}

/** Thrown when this replica lost (or never had) the leader lease: it must not touch the cloud. */
export class NotLeaderError extends Error {
  constructor(message = 'not the leader: refusing to act') {
    super(message);
    this.name = 'NotLeaderError';
  }
}

/**
 * The database refused a write (or a cloud mutation) of an earlier lease term (db/fence.ts):
 * another replica leads now, whatever this one still believes. It steps down at once.
 */
export class FencedOutError extends NotLeaderError {
  constructor(readonly lease: string) {
    super(`the lease ${lease} changed hands: a write of an earlier term was refused`);
    this.name = 'FencedOutError';
  }
}

export function errorClassOf(err: unknown): ErrorClass {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (e instanceof CloudError) return e.errorClass;
  }
  return 'Transient';
}

/**
 * The code of a write call's NotFound on an object we observed: it was created or changed
 * moments ago and the provider's write path does not see it yet (EC2 eventual consistency).
 * Transient, and never read as "absent": a describe decides afterwards.
 */
export const NOT_YET_CONSISTENT = 'NotYetConsistent';

/** CreateSecret cannot take the name yet (force-deleted moments ago, or held by a deleted secret not ours). */
export const SECRET_NAME_BLOCKED = 'SecretNameBlocked';

export const isNotFound = (err: unknown) => errorClassOf(err) === 'NotFound';
export const isConflict = (err: unknown) => errorClassOf(err) === 'Conflict';

/** The provider code of the first CloudError in the cause chain. */
export function errorCodeOf(err: unknown): string | undefined {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (e instanceof CloudError) return e.code;
  }
  return undefined;
}

export function coerceError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** A short, secret-free description for status rows and logs. */
export function describeError(err: unknown): string {
  const e = coerceError(err);
  const parts = [e.message];
  for (let c: unknown = e.cause; c instanceof Error && parts.length < 3; c = c.cause) parts.push(c.message);
  return parts.join(': ').slice(0, 500);
}
