import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';

const SECRET = 'sup3r-s3cret-value-4f9a';

/** A logger writing into memory; `lines()` returns what it wrote, parsed. */
function memoryLogger() {
  const chunks: string[] = [];
  const logger = createLogger(
    { level: 'trace' },
    new Writable({
      write(chunk, _encoding, done) {
        chunks.push(String(chunk));
        done();
      },
    }),
  );
  return {
    logger,
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
  };
}

// Each case is a shape secrets really travel in: config, headers, AWS SDK inputs and
// outputs, the tenant bootstrap bundle, errors carrying request data.
const cases: { reason: string; fields: Record<string, unknown> }[] = [
  { reason: 'a top-level password', fields: { password: SECRET } },
  { reason: 'a nested password', fields: { db: { password: SECRET } } },
  { reason: 'a db password in the bundle', fields: { dbPassword: SECRET } },
  { reason: 'an admin token', fields: { tenant: { adminToken: SECRET } } },
  { reason: 'a tunnel token', fields: { tunnelToken: SECRET } },
  { reason: 'a nested tunnel token', fields: { tunnel: { token: SECRET } } },
  { reason: 'a plain token', fields: { token: SECRET } },
  { reason: 'a secret', fields: { secret: SECRET } },
  { reason: 'SecretString at the top', fields: { SecretString: SECRET } },
  { reason: 'SecretString in an SDK input', fields: { input: { SecretString: SECRET } } },
  { reason: 'SecretString in a command input', fields: { command: { input: { SecretString: SECRET } } } },
  {
    reason: 'an Authorization header on a request',
    fields: { req: { headers: { authorization: `Bearer ${SECRET}` } } },
  },
  { reason: 'an Authorization header', fields: { headers: { authorization: `Bearer ${SECRET}` } } },
  { reason: 'a lowercase authorization field', fields: { authorization: SECRET } },
  { reason: 'the Cloudflare API token', fields: { apiToken: SECRET } },
  { reason: 'config keys at the top', fields: { CP_ADMIN_API_TOKEN: SECRET, CLOUDFLARE_API_TOKEN: SECRET } },
  {
    reason: 'config keys in a config object',
    fields: {
      config: {
        CP_ADMIN_API_TOKEN: SECRET,
        PROVISION_SHARED_SECRET: SECRET,
        GHCR_PULL_TOKEN: SECRET,
        DATABASE_URL: `postgres://u:${SECRET}@db/x`,
      },
    },
  },
  { reason: 'the whole bootstrap bundle', fields: { bundle: { dbPassword: SECRET, note: SECRET } } },
  { reason: 'user data', fields: { userData: SECRET, instance: { UserData: SECRET } } },
];

describe('logger redaction', () => {
  it.each(cases)('never writes $reason', ({ fields }) => {
    const { logger, text, lines } = memoryLogger();
    logger.info({ ...fields, marker: 'kept' }, 'constant message');
    expect(text()).not.toContain(SECRET);
    // The line was written, with the rest of its fields intact.
    const [line] = lines();
    expect(line).toMatchObject({ msg: 'constant message', marker: 'kept' });
    expect(text()).toContain('[REDACTED]');
  });

  it('redacts child logger bindings and error properties', () => {
    const { logger, text, lines } = memoryLogger();
    logger.child({ controller: 'secrets', token: SECRET }).warn('bound');
    logger.error({ err: Object.assign(new Error('create secret failed'), { password: SECRET }) }, 'failed');
    expect(text()).not.toContain(SECRET);
    expect(lines().map((l) => l.msg)).toEqual(['bound', 'failed']);
    expect(lines()[1].err.message).toBe('create secret failed');
  });

  it('does not mutate the logged object', () => {
    const { logger } = memoryLogger();
    const fields = { db: { password: SECRET } };
    logger.info(fields, 'x');
    expect(fields.db.password).toBe(SECRET);
  });
});
