import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths whose values never reach a log line. Secrets are also kept out of log calls in the
 * first place; this is the second line of defence, and test/unit/logger.test.ts proves it.
 */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'dbPassword',
  '*.dbPassword',
  'adminToken',
  '*.adminToken',
  'token',
  '*.token',
  'tunnelToken',
  '*.tunnelToken',
  'secret',
  '*.secret',
  'SecretString',
  '*.SecretString',
  '*.*.SecretString',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'headers.authorization',
  'apiToken',
  '*.apiToken',
  'CP_ADMIN_API_TOKEN',
  '*.CP_ADMIN_API_TOKEN',
  'CLOUDFLARE_API_TOKEN',
  '*.CLOUDFLARE_API_TOKEN',
  'PROVISION_SHARED_SECRET',
  '*.PROVISION_SHARED_SECRET',
  'GHCR_PULL_TOKEN',
  '*.GHCR_PULL_TOKEN',
  'DATABASE_URL',
  '*.DATABASE_URL',
  'userData',
  '*.userData',
  'UserData',
  '*.UserData',
  'bundle',
  '*.bundle',
];

export function createLogger(options: { level?: string; name?: string } = {}, destination?: DestinationStream): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      name: options.name ?? 'molecule-operator',
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      base: { pid: process.pid },
      serializers: { err: pino.stdSerializers.err },
    },
    destination,
  );
}
