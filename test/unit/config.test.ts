import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CONFIG_KEYS, ConfigError, loadConfig } from '../../src/config.js';

/** Runs loadConfig expecting a ConfigError and returns it. */
function configError(env: Record<string, string | undefined>, required?: Parameters<typeof loadConfig>[1]) {
  try {
    loadConfig(env, required);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the seed defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      AWS_REGION: 'us-east-1',
      EC2_INSTANCE_TYPE: 't3.small',
      APP_DOMAIN: 'moleculesai.app',
      MOLECULE_ENV: 'dev',
      ORPHAN_POLICY: 'report',
      ORPHAN_GRACE: 3_600_000,
      PORT: 8080,
    });
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.CP_ADMIN_API_TOKEN).toBeUndefined();
  });

  it('treats empty and blank strings as unset', () => {
    const config = loadConfig({ AWS_REGION: '', EC2_INSTANCE_TYPE: '   ', DATABASE_URL: '', PORT: '' });
    expect(config).toMatchObject({ AWS_REGION: 'us-east-1', EC2_INSTANCE_TYPE: 't3.small', PORT: 8080 });
    expect(config.DATABASE_URL).toBeUndefined();
    const err = configError({ CP_ADMIN_API_TOKEN: '' }, { required: ['CP_ADMIN_API_TOKEN'] });
    expect(err.problems).toEqual([
      { variable: 'CP_ADMIN_API_TOKEN', message: expect.stringMatching(/required/) },
    ]);
  });

  it('parses values it accepts', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
      AWS_REGION: 'eu-west-2',
      ORPHAN_GRACE: '30m',
      ORPHAN_MAX_FRACTION: '0.5',
      SECRET_RECOVERY_DAYS: '0',
      PORT: '0',
      CP_ADMIN_API_TOKEN: 'a-token-of-sixteen+',
    });
    expect(config).toMatchObject({
      AWS_REGION: 'eu-west-2',
      ORPHAN_GRACE: 1_800_000,
      ORPHAN_MAX_FRACTION: 0.5,
      SECRET_RECOVERY_DAYS: 0,
      PORT: 0,
    });
  });

  it.each([
    { variable: 'AWS_REGION', value: 'mars' },
    { variable: 'DATABASE_URL', value: 'mysql://db' },
    { variable: 'EC2_AMI', value: 'ubuntu' },
    { variable: 'ORPHAN_POLICY', value: 'maybe' },
    { variable: 'ORPHAN_GRACE', value: 'soon' },
    { variable: 'ORPHAN_MAX_FRACTION', value: '2' },
    { variable: 'SECRET_RECOVERY_DAYS', value: '3' },
    { variable: 'PORT', value: '70000' },
    { variable: 'CP_ADMIN_API_TOKEN', value: 'short' },
    { variable: 'CLOUDFLARE_BASE_URL', value: 'ftp://x' },
    { variable: 'RESYNC_CRON', value: 'every minute' },
    { variable: 'LOG_LEVEL', value: 'loud' },
  ])('rejects $variable=$value naming the variable', ({ variable, value }) => {
    const err = configError({ [variable]: value });
    expect(err.problems.map((p) => p.variable)).toEqual([variable]);
    expect(err.message).toContain(variable);
  });

  it('reports every problem in one error, missing required variables included', () => {
    const err = configError(
      {
        AWS_REGION: 'nowhere',
        PORT: '-1',
        ORPHAN_POLICY: 'maybe',
        EC2_VPC_ID: 'vpc-nope',
        LOG_LEVEL: 'loud',
      },
      { required: ['CP_ADMIN_API_TOKEN'] },
    );
    const names = ['CP_ADMIN_API_TOKEN', 'AWS_REGION', 'PORT', 'ORPHAN_POLICY', 'EC2_VPC_ID', 'LOG_LEVEL'];
    expect(err.problems.map((p) => p.variable).sort()).toEqual([...names].sort());
    for (const name of names) expect(err.message).toContain(name);
    expect(err.message).toMatch(/6 problems/);
  });

  it('knows every variable DESIGN §8 names', () => {
    const design =
      'DATABASE_URL MOLECULE_ENV AWS_REGION AWS_ENDPOINT_URL EC2_AMI EC2_VPC_ID EC2_SUBNET_ID EC2_SECURITY_GROUP ' +
      'EC2_INSTANCE_TYPE EC2_KEY_NAME EC2_TENANT_IAM_PROFILE EIC_ENDPOINT_SG_ID TENANT_IMAGE CANARY_TENANT_IMAGE ' +
      'CLOUDFLARE_API_TOKEN CLOUDFLARE_ACCOUNT_ID CLOUDFLARE_ZONE_ID CLOUDFLARE_BASE_URL APP_DOMAIN ' +
      'TENANT_ORIGIN_SERVICE CP_ADMIN_API_TOKEN CP_BASE_URL PROVISION_SHARED_SECRET GHCR_PULL_TOKEN ' +
      'SECRET_RECOVERY_DAYS RESYNC_CRON ORPHAN_SCAN_CRON ORPHAN_POLICY ORPHAN_GRACE ORPHAN_MAX_DELETIONS ' +
      'ORPHAN_MAX_FRACTION PORT METRICS_PORT LOG_LEVEL';
    expect(CONFIG_KEYS).toEqual(expect.arrayContaining(design.split(' ')));
  });

  it('ignores variables it does not know', () => {
    expect(() => loadConfig({ HOME: '/root', SOMETHING_ELSE: '!!' })).not.toThrow();
  });
});

describe('loadConfig: lease timings', () => {
  // A leader must stop acting before its lease can be taken: retry period < renew deadline < duration.

  it('accepts the defaults', () => {
    expect(loadConfig({})).toMatchObject({
      LEASE_DURATION: 15_000,
      LEASE_RENEW_DEADLINE: 10_000,
      LEASE_RETRY_PERIOD: 2_000,
    });
  });

  it('accepts each one a millisecond shorter than the next, compared after parsing units', () => {
    const config = loadConfig({
      LEASE_DURATION: '3s',
      LEASE_RENEW_DEADLINE: '2999ms',
      LEASE_RETRY_PERIOD: '2998ms',
    });
    expect(config).toMatchObject({
      LEASE_DURATION: 3000,
      LEASE_RENEW_DEADLINE: 2999,
      LEASE_RETRY_PERIOD: 2998,
    });
  });

  it.each([
    {
      what: 'a renew deadline equal to the duration',
      env: { LEASE_DURATION: '10s' },
      variable: 'LEASE_RENEW_DEADLINE',
      longer: 'LEASE_DURATION',
    },
    {
      what: 'a renew deadline equal to the duration in other units',
      env: { LEASE_DURATION: '4s', LEASE_RENEW_DEADLINE: '4000ms', LEASE_RETRY_PERIOD: '1s' },
      variable: 'LEASE_RENEW_DEADLINE',
      longer: 'LEASE_DURATION',
    },
    {
      what: 'a renew deadline longer than the duration',
      env: { LEASE_RENEW_DEADLINE: '20s' },
      variable: 'LEASE_RENEW_DEADLINE',
      longer: 'LEASE_DURATION',
    },
    {
      what: 'a retry period equal to the renew deadline',
      env: { LEASE_RETRY_PERIOD: '10s' },
      variable: 'LEASE_RETRY_PERIOD',
      longer: 'LEASE_RENEW_DEADLINE',
    },
    {
      what: 'a retry period longer than the renew deadline',
      env: { LEASE_RETRY_PERIOD: '12s' },
      variable: 'LEASE_RETRY_PERIOD',
      longer: 'LEASE_RENEW_DEADLINE',
    },
  ])('rejects $what, naming both variables', ({ env, variable, longer }) => {
    const err = configError(env);
    expect(err.problems).toEqual([{ variable, message: expect.stringContaining(longer) }]);
    expect(err.message).toContain(`${variable}: must be shorter than ${longer}`);
  });

  it('reports both orderings at once, together with missing required variables', () => {
    const err = configError(
      { LEASE_DURATION: '5s', LEASE_RENEW_DEADLINE: '6s', LEASE_RETRY_PERIOD: '7s' },
      { required: ['CP_ADMIN_API_TOKEN'] },
    );
    expect(err.problems.map((p) => p.variable).sort()).toEqual([
      'CP_ADMIN_API_TOKEN',
      'LEASE_RENEW_DEADLINE',
      'LEASE_RETRY_PERIOD',
    ]);
    expect(err.message).toMatch(/3 problems/);
  });

  it('reports a misordering together with an unrelated invalid variable', () => {
    const err = configError({ PORT: '-1', LEASE_DURATION: '5s', LEASE_RENEW_DEADLINE: '6s' });
    expect(err.problems.map((p) => p.variable).sort()).toEqual(['LEASE_RENEW_DEADLINE', 'PORT']);
  });

  it('rejects a zero lease timing', () => {
    const err = configError({ LEASE_RETRY_PERIOD: '0s' });
    expect(err.problems).toEqual([{ variable: 'LEASE_RETRY_PERIOD', message: 'must be longer than zero' }]);
  });

  it('reports an unparseable lease value as itself, not as a misordering', () => {
    const err = configError({ LEASE_RENEW_DEADLINE: 'soon' });
    expect(err.problems).toEqual([
      { variable: 'LEASE_RENEW_DEADLINE', message: expect.stringMatching(/expected a duration/) },
    ]);
  });
});

describe('loadConfig: the HTTP API', () => {
  it('defaults to budgets the demo and the benchmarks stay under, no trusted proxy, no extra reserved slugs', () => {
    expect(loadConfig({})).toMatchObject({
      API_RATE_LIMIT: 6000,
      API_RATE_LIMIT_WINDOW: 60_000,
      API_AUTH_FAILURE_LIMIT: 20,
      API_AUTH_FAILURE_WINDOW: 60_000,
      API_TRUST_PROXY: false,
      RESERVED_SLUGS: [],
    });
  });

  it.each([
    {
      reason: 'limits off',
      given: { API_RATE_LIMIT: '0', API_AUTH_FAILURE_LIMIT: '0' },
      want: { API_RATE_LIMIT: 0, API_AUTH_FAILURE_LIMIT: 0 },
    },
    {
      reason: 'windows with units',
      given: { API_RATE_LIMIT_WINDOW: '10s', API_AUTH_FAILURE_WINDOW: '15m' },
      want: { API_RATE_LIMIT_WINDOW: 10_000, API_AUTH_FAILURE_WINDOW: 900_000 },
    },
    { reason: 'trust any proxy', given: { API_TRUST_PROXY: 'true' }, want: { API_TRUST_PROXY: true } },
    {
      reason: 'trust no proxy, said so',
      given: { API_TRUST_PROXY: 'false' },
      want: { API_TRUST_PROXY: false },
    },
    {
      reason: 'trusted proxies by address and CIDR, IPv4 and IPv6',
      given: { API_TRUST_PROXY: '10.0.0.0/8, 192.168.1.7,fd00::/8' },
      want: { API_TRUST_PROXY: ['10.0.0.0/8', '192.168.1.7', 'fd00::/8'] },
    },
    {
      reason: 'reserved slugs, trimmed, lowercased, once each',
      given: { RESERVED_SLUGS: ' Billing ,partners,,billing' },
      want: { RESERVED_SLUGS: ['billing', 'partners'] },
    },
  ])('accepts $reason', ({ given, want }) => {
    expect(loadConfig(given)).toMatchObject(want);
  });

  it.each([
    { variable: 'API_RATE_LIMIT', value: 'lots' },
    { variable: 'API_RATE_LIMIT', value: '-1' },
    { variable: 'API_RATE_LIMIT_WINDOW', value: '0s' },
    { variable: 'API_AUTH_FAILURE_LIMIT', value: '2.5' },
    { variable: 'API_AUTH_FAILURE_WINDOW', value: 'a while' },
    { variable: 'API_TRUST_PROXY', value: 'ingress.local' },
    { variable: 'API_TRUST_PROXY', value: '10.0.0.0/33' },
    { variable: 'API_TRUST_PROXY', value: '2' },
    { variable: 'RESERVED_SLUGS', value: 'ok,not_a_label' },
  ])('rejects $variable=$value naming the variable', ({ variable, value }) => {
    const err = configError({ [variable]: value });
    expect(err.problems.map((p) => p.variable)).toEqual([variable]);
  });

  it('names the entries it cannot use, together with every other problem', () => {
    const err = configError({
      API_TRUST_PROXY: '10.0.0.1, proxy.internal',
      RESERVED_SLUGS: 'fine,-bad-',
      API_RATE_LIMIT: 'many',
    });
    expect(err.problems).toEqual(
      expect.arrayContaining([
        { variable: 'API_TRUST_PROXY', message: expect.stringContaining('proxy.internal') },
        { variable: 'RESERVED_SLUGS', message: expect.stringContaining('-bad-') },
        { variable: 'API_RATE_LIMIT', message: expect.any(String) },
      ]),
    );
    expect(err.message).toMatch(/3 problems/);
  });
});

describe('loadConfig: credentials from files', () => {
  const folder = () => {
    const dir = mkdtempSync(join(tmpdir(), 'molecule-credentials-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };

  it('reads <KEY>_FILE, dropping one trailing newline', () => {
    const dir = folder();
    writeFileSync(join(dir, 'token'), 'cf-token\n');
    const config = loadConfig({ CLOUDFLARE_API_TOKEN_FILE: join(dir, 'token') });
    expect(config.CLOUDFLARE_API_TOKEN).toBe('cf-token');
  });

  it('refuses a value and its file together, an empty file and an unreadable one, naming each', () => {
    const dir = folder();
    writeFileSync(join(dir, 'empty'), '\n');
    const err = configError({
      CLOUDFLARE_API_TOKEN: 'inline',
      CLOUDFLARE_API_TOKEN_FILE: join(dir, 'empty'),
      PROVISION_SHARED_SECRET_FILE: join(dir, 'empty'),
      DATABASE_URL_FILE: join(dir, 'missing'),
    });
    expect(err.problems).toEqual(
      expect.arrayContaining([
        { variable: 'CLOUDFLARE_API_TOKEN_FILE', message: expect.stringMatching(/not both/) },
        { variable: 'PROVISION_SHARED_SECRET_FILE', message: expect.stringMatching(/is empty/) },
        { variable: 'DATABASE_URL_FILE', message: expect.stringMatching(/ENOENT/) },
      ]),
    );
    // No secret value in any message.
    expect(err.message).not.toContain('inline');
  });

  it('reads each credential from CREDENTIALS_DIRECTORY; a file left out means unset', () => {
    const dir = folder();
    writeFileSync(join(dir, 'DATABASE_URL'), 'postgres://molecule:pw@db.internal:5432/molecule\n');
    writeFileSync(join(dir, 'CP_ADMIN_API_TOKEN'), 'a'.repeat(32));
    const config = loadConfig({ CREDENTIALS_DIRECTORY: dir, CLOUDFLARE_API_TOKEN: 'from-env' });
    expect(config.DATABASE_URL).toBe('postgres://molecule:pw@db.internal:5432/molecule');
    expect(config.CP_ADMIN_API_TOKEN).toBe('a'.repeat(32));
    expect(config.CLOUDFLARE_API_TOKEN).toBe('from-env'); // the environment wins over the folder
    expect(config.GHCR_PULL_TOKEN).toBeUndefined();
  });

  it('refuses a CREDENTIALS_DIRECTORY that is missing, and an empty credential file in it', () => {
    const dir = folder();
    expect(configError({ CREDENTIALS_DIRECTORY: join(dir, 'nope') }).problems).toEqual([
      { variable: 'CREDENTIALS_DIRECTORY', message: expect.stringMatching(/ENOENT/) },
    ]);
    writeFileSync(join(dir, 'GHCR_PULL_TOKEN'), '');
    expect(configError({ CREDENTIALS_DIRECTORY: dir }).problems).toEqual([
      { variable: 'CREDENTIALS_DIRECTORY', message: expect.stringMatching(/GHCR_PULL_TOKEN is empty/) },
    ]);
  });
});
