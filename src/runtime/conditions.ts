import {
  CloudError,
  describeError,
  errorClassOf,
  NOT_YET_CONSISTENT,
  SECRET_NAME_BLOCKED,
  TerminalError,
} from './errors.js';

/** The status condition an error leaves behind: a CamelCase reason and a stable message. */
export function conditionForError(err: unknown): { reason: string; message: string } {
  const message = describeError(err);
  if (err instanceof TerminalError) return { reason: err.reason, message };
  const code = err instanceof CloudError ? err.code : undefined;
  if (code === 'DependencyViolation') return { reason: 'WaitingForDependents', message };
  if (code === '1022') return { reason: 'WaitingForTunnelConnections', message };
  if (code === NOT_YET_CONSISTENT) return { reason: 'WaitingForConsistency', message };
  if (code === SECRET_NAME_BLOCKED) return { reason: 'WaitingForSecretName', message };
  if (code === 'RateLimited') return { reason: 'RateLimited', message };
  switch (errorClassOf(err)) {
    case 'Throttled':
      return { reason: 'Throttled', message };
    case 'Conflict':
      return { reason: 'Conflict', message };
    case 'NotFound':
      return { reason: 'NotFound', message };
    case 'Terminal':
      return { reason: 'TerminalError', message };
    default:
      return { reason: 'ReconcileError', message };
  }
}
