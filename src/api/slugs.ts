import { isIP } from 'node:net';
import type { Config } from '../config.js';

/** Same rule as the orgs_slug_format check constraint: a DNS label of 3–32 characters. */
export const SLUG_PATTERN = /^[a-z0-9]([a-z0-9-]{1,30})[a-z0-9]$/;

/**
 * Labels people expect to belong to whoever runs the domain, never to a tenant: a tenant at
 * `login.<APP_DOMAIN>` or `status.<APP_DOMAIN>` could collect credentials or speak for the
 * service. Only labels a slug could take (3–32 characters) are listed.
 */
export const BUILT_IN_RESERVED_SLUGS: readonly string[] = [
  // the service's own hosts
  'api',
  'app',
  'www',
  'admin',
  'status',
  'console',
  'dashboard',
  'portal',
  'control',
  'controlplane',
  'operator',
  'molecule',
  'internal',
  'intranet',
  // sign-in and accounts
  'auth',
  'login',
  'logout',
  'signin',
  'signup',
  'register',
  'oauth',
  'sso',
  'account',
  'accounts',
  'billing',
  'payment',
  'payments',
  'security',
  'identity',
  // content and help
  'docs',
  'help',
  'support',
  'blog',
  'news',
  'community',
  'forum',
  'wiki',
  'cdn',
  'static',
  'assets',
  'media',
  'images',
  'files',
  'download',
  'downloads',
  // mail, DNS and infrastructure
  'mail',
  'email',
  'webmail',
  'smtp',
  'imap',
  'pop3',
  'autodiscover',
  'autoconfig',
  'ns1',
  'ns2',
  'ns3',
  'ns4',
  'dns',
  'ftp',
  'sftp',
  'ssh',
  'vpn',
  'git',
  'localhost',
  'wpad',
  'isatap',
  // mailbox names of RFC 2142
  'abuse',
  'postmaster',
  'hostmaster',
  'webmaster',
  'noc',
  'root',
  // environments and tooling
  'dev',
  'staging',
  'prod',
  'production',
  'test',
  'demo',
  'sandbox',
  'beta',
  'metrics',
  'monitoring',
  'grafana',
  'prometheus',
  'logs',
  'health',
];

/**
 * Every reserved label: the built-in list, the first label of CP_BASE_URL's host (the control
 * plane's own hostname, when it is a name) and RESERVED_SLUGS.
 */
export function reservedSlugs(config: Pick<Config, 'CP_BASE_URL' | 'RESERVED_SLUGS'>): ReadonlySet<string> {
  const reserved = new Set([...BUILT_IN_RESERVED_SLUGS, ...config.RESERVED_SLUGS]);
  const host = new URL(config.CP_BASE_URL).hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) === 0) reserved.add(host.split('.')[0]!.toLowerCase());
  return reserved;
}

/**
 * Why a well-formed slug cannot be taken, or undefined when it can. Labels with `--` in
 * positions 3–4 are reserved for encodings (IDNA's "R-LDH" labels; `xn--` is punycode, which
 * browsers show as other characters, e.g. a look-alike of another tenant's name).
 */
export function slugRefusal(slug: string, reserved: ReadonlySet<string>): string | undefined {
  if (slug.startsWith('xn--')) return 'must not be punycode ("xn--…"): browsers would show other characters';
  if (slug.slice(2, 4) === '--') return 'must not have "--" in positions 3–4 (reserved for encoded labels)';
  if (reserved.has(slug)) return 'is reserved: it names a host of the service itself';
  return undefined;
}
