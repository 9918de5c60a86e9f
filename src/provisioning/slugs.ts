import type { Config } from '../config.js';

/**
 * Slugs become hostnames (`<slug>.<APP_DOMAIN>`). Those that are, or look like, a hostname of
 * the platform itself (DESIGN §12) are refused: a tenant called `api` or `login` could pass
 * for it.
 */
export const BUILT_IN_RESERVED_SLUGS: readonly string[] = [
  'api',
  'www',
  'app',
  'admin',
  'status',
  'mail',
  'auth',
  'login',
  'sso',
  'account',
  'accounts',
  'billing',
  'dashboard',
  'console',
  'portal',
  'docs',
  'help',
  'support',
  'blog',
  'cdn',
  'static',
  'assets',
  'metrics',
  'grafana',
  'smtp',
  'imap',
  'webmail',
  'autoconfig',
  'autodiscover',
  'ns1',
  'ns2',
  'vpn',
  'registry',
  'security',
  'internal',
  'staging',
  'prod',
  'dev',
  'test',
];

/** Every reserved slug under this configuration: the built-in list, RESERVED_SLUGS, and CP_BASE_URL's first label. */
export function reservedSlugs(config: Pick<Config, 'RESERVED_SLUGS' | 'CP_BASE_URL'>): ReadonlySet<string> {
  const set = new Set([...BUILT_IN_RESERVED_SLUGS, ...config.RESERVED_SLUGS]);
  const host = URL.parse(config.CP_BASE_URL)?.hostname;
  const label = host?.split('.')[0];
  if (label && !/^\d+$/.test(label)) set.add(label.toLowerCase());
  return set;
}
