import {
  type CloudError,
  ConflictError,
  NotFoundError,
  TerminalError,
  ThrottledError,
  TransientError,
} from '../../runtime/errors.js';

const NOT_FOUND = new Set([
  'InvalidInstanceID.NotFound',
  'InvalidGroup.NotFound',
  'InvalidGroupId.NotFound',
  'InvalidVpcID.NotFound',
  'ResourceNotFoundException',
  'InvocationDoesNotExist',
]);

const CONFLICT = new Set([
  'InvalidGroup.Duplicate',
  'InvalidPermission.Duplicate',
  'IncorrectInstanceState',
  'IdempotentParameterMismatch',
  'ResourceExistsException',
  // SSM: the instance is not running (or not reachable by the agent); a later attempt may work.
  'InvalidInstanceId',
]);

const THROTTLED = new Set([
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'TooManyRequestsException',
  'LimitExceededException',
  'EC2ThrottledException',
  'SlowDown',
]);

// Waiting helps with these: something else must finish first (instances shutting down,
// a freshly created id not yet visible everywhere, capacity freeing up).
const TRANSIENT = new Set([
  'DependencyViolation',
  'InternalError',
  'InternalFailure',
  'InternalServiceError',
  'InternalServiceException',
  'ServiceUnavailable',
  'Unavailable',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'InsufficientInstanceCapacity',
  'InstanceLimitExceeded',
  'PaginationTokenExpiredException',
  // Temporary credentials expired (our clock and the provider's disagree, or the session was
  // revoked): fresh ones are fetched for the next attempt (cloud/aws/credentials.ts).
  'ExpiredToken',
  'ExpiredTokenException',
  'RequestExpired',
]);

const TERMINAL_REASON: Record<string, string> = {
  UnauthorizedOperation: 'PermissionDenied',
  AuthFailure: 'PermissionDenied',
  AccessDeniedException: 'PermissionDenied',
  AccessDenied: 'PermissionDenied',
  InvalidClientTokenId: 'InvalidCredentials',
  UnrecognizedClientException: 'InvalidCredentials',
  'InvalidAMIID.NotFound': 'InvalidImage',
  'InvalidAMIID.Malformed': 'InvalidImage',
  'InvalidSubnetID.NotFound': 'InvalidSubnet',
  InvalidParameterValue: 'InvalidParameter',
  InvalidParameterCombination: 'InvalidParameter',
  InvalidParameterException: 'InvalidParameter',
  MissingParameter: 'InvalidParameter',
  Unsupported: 'InvalidParameter',
};

interface SdkError {
  name?: string;
  message?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
  code?: string;
}

/** Translates an AWS SDK v3 error (or a socket error beneath it) into one of our classes. */
export function translateAwsError(err: unknown, service: string, operation: string): CloudError {
  const e = (err ?? {}) as SdkError;
  const code = e.name ?? e.code ?? 'Unknown';
  const status = e.$metadata?.httpStatusCode;
  const details = { service, operation, code, cause: err };
  const message = `${service} ${operation}: ${code}`;
  // InvalidRequestException is Secrets Manager's word for "scheduled for deletion" (and a few others).
  if (code === 'InvalidRequestException' && /deleted|deletion/i.test(e.message ?? '')) {
    return new ConflictError(`${message}: secret is scheduled for deletion`, {
      ...details,
      code: 'ScheduledForDeletion',
    });
  }
  if (NOT_FOUND.has(code)) return new NotFoundError(message, details);
  if (CONFLICT.has(code)) return new ConflictError(message, details);
  if (THROTTLED.has(code) || status === 429) return new ThrottledError(message, details);
  if (TRANSIENT.has(code)) return new TransientError(message, details);
  if (status === undefined || status >= 500 || e.$fault === 'server')
    return new TransientError(message, details);
  if (TERMINAL_REASON[code])
    return new TerminalError(`${message}: ${e.message ?? ''}`.trim(), {
      ...details,
      reason: TERMINAL_REASON[code],
    });
  // An unknown client error: retrying as-is cannot help. The next resync still looks again.
  return new TerminalError(`${message}: ${e.message ?? ''}`.trim(), { ...details, reason: 'CloudRejected' });
}
