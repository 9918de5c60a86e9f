import { createRequire } from 'node:module';
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths whose values never reach a log line. Secrets are also kept out of log calls in the
 * first place; this is the second line of defence, and test/unit/logger.test.ts proves it.
 */
// Top level and two levels down: `{ err: { cause: { token } } }` is redacted too.
const SECRET_KEYS = [
  'password',
  'dbPassword',
  'adminToken',
  'token',
  'tunnelToken',
  'secret',
  'SecretString',
  'authorization',
  'apiToken',
  'CP_ADMIN_API_TOKEN',
  'CLOUDFLARE_API_TOKEN',
  'PROVISION_SHARED_SECRET',
  'GHCR_PULL_TOKEN',
  'DATABASE_URL',
  'userData',
  'UserData',
  'bundle',
  'provisionSharedSecret',
  'ghcrPullToken',
];

export const REDACT_PATHS = [
  ...SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]),
  'req.headers.authorization',
  'headers.authorization',
];

/**
 * JSON lines for collectors, unless `format` is `pretty`: coloured, one readable line per entry on
 * stdout (pino-pretty, loaded only then). Redaction happens before either.
 */
export function createLogger(
  options: { level?: string; name?: string; format?: 'json' | 'pretty' } = {},
  destination?: DestinationStream,
): Logger {
  if (options.format === 'pretty' && !destination) {
    const pretty = createRequire(import.meta.url)('pino-pretty') as (o: object) => DestinationStream;
    destination = pretty({
      sync: true,
      colorize: process.stdout.isTTY === true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
    });
  }
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
