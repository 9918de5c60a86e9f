import { createHash } from 'node:crypto';

/**
 * Boot scripts for tenant and workspace instances. They carry no secret (seed #113: the
 * plaintext user-data path was removed) and name only the secret the instance may read
 * (DESIGN §12):
 * - a tenant reads its org's bootstrap bundle, whose resource policy admits the tenant role
 *   from this very instance only; the policy follows the launch, so the script retries until
 *   the read succeeds;
 * - a workspace reads the env-wide workspace bootstrap secret (pull credential, platform URL)
 *   and nothing of its tenant's: it registers with its tenant by the instance identity
 *   document, which the host fetches and hands to the container as a read-only file.
 * Instances launch with IMDSv2 and a hop limit of 1: containers cannot reach the metadata
 * service, so they cannot take the instance role's credentials.
 */
export interface UserDataInput {
  role: 'tenant' | 'workspace';
  env: string;
  region: string;
  orgId: string;
  workspaceId?: string;
  runtime?: string;
  /**
   * The container image (DESIGN §11); undefined for a workspace whose runtime has no image pin:
   * the host boots without a container and there is nothing to redeploy.
   */
  image: string | undefined;
  /** The secret this instance boots from: its org's bundle (tenant) or the workspace bootstrap secret. */
  secretName: string;
  cpBaseUrl: string;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Reads the boot secret with the instance role, retrying while the secret's policy does not admit this instance yet. */
const READ_SECRET = [
  'read_boot_secret() {',
  '  local tries=0',
  '  until aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$MOLECULE_BOOTSTRAP_SECRET" --query SecretString --output text; do',
  '    tries=$((tries + 1))',
  '    if [ "$tries" -ge 120 ]; then echo "boot secret still unreadable after 10 minutes" >&2; return 1; fi',
  '    sleep 5',
  '  done',
  '}',
];

/** The variables and the secret reader both the boot script and a redeploy start from. */
function preamble(input: UserDataInput): string[] {
  const vars: [string, string][] = [
    ['MOLECULE_ROLE', input.role],
    ['MOLECULE_ENV', input.env],
    ['AWS_REGION', input.region],
    ['MOLECULE_ORG_ID', input.orgId],
    ['MOLECULE_WORKSPACE_ID', input.workspaceId ?? ''],
    ['MOLECULE_RUNTIME', input.runtime ?? ''],
    ['MOLECULE_IMAGE', input.image ?? ''],
    ['MOLECULE_BOOTSTRAP_SECRET', input.secretName],
    ['CP_BASE_URL', input.cpBaseUrl],
  ];
  return [
    'set -euo pipefail',
    ...vars.map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    '# Secrets are read with the instance role; nothing secret is written to this script.',
    ...READ_SECRET,
    'install -d -m 0700 /etc/molecule',
  ];
}

/**
 * The container section: read the secret, log in, pull the image and (re)create the
 * container. The one source of the `docker run` arguments: the boot script runs it at first
 * boot and a redeploy (SSM Run Command) runs it again with the new image, so a redeployed
 * container is started exactly as a freshly launched one. The host reads its secret itself,
 * as at boot: no secret is in the script or the command.
 */
function containerSection(input: UserDataInput): string[] {
  // Pulled before the old container is removed: a failed pull leaves the running one alone.
  const replace = ['docker pull "$MOLECULE_IMAGE"', 'docker rm -f molecule >/dev/null 2>&1 || true'];
  if (input.role === 'tenant')
    return [
      '(umask 077; read_boot_secret > /etc/molecule/bootstrap.json)',
      'jq -r .ghcrPullToken /etc/molecule/bootstrap.json | docker login ghcr.io --username molecule --password-stdin',
      ...replace,
      'docker run -d --restart=always --name molecule --env-file <(jq -r \'to_entries[] | "\\(.key)=\\(.value)"\' /etc/molecule/bootstrap.json) "$MOLECULE_IMAGE"',
    ];
  return [
    '(umask 077; read_boot_secret > /etc/molecule/workspace-bootstrap.json)',
    'jq -r .ghcrPullToken /etc/molecule/workspace-bootstrap.json | docker login ghcr.io --username molecule --password-stdin',
    '# The identity document proves to the tenant which instance (and so which workspace) this is.',
    'imds_token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300")',
    'curl -sf -H "X-aws-ec2-metadata-token: $imds_token" http://169.254.169.254/latest/dynamic/instance-identity/document > /etc/molecule/identity.json',
    'curl -sf -H "X-aws-ec2-metadata-token: $imds_token" http://169.254.169.254/latest/dynamic/instance-identity/pkcs7 > /etc/molecule/identity.pkcs7',
    'unset imds_token',
    ...replace,
    '# Only what the agent needs: who it is and where the platform is. No tenant secret.',
    'docker run -d --restart=always --name molecule \\',
    '  -e MOLECULE_ORG_ID -e MOLECULE_WORKSPACE_ID -e MOLECULE_RUNTIME -e MOLECULE_ENV \\',
    '  -e CP_BASE_URL="$(jq -r .cpBaseUrl /etc/molecule/workspace-bootstrap.json)" \\',
    '  -v /etc/molecule/identity.json:/etc/molecule/identity.json:ro \\',
    '  -v /etc/molecule/identity.pkcs7:/etc/molecule/identity.pkcs7:ro \\',
    '  "$MOLECULE_IMAGE"',
  ];
}

export function renderUserData(input: UserDataInput): string {
  return [
    '#!/bin/bash',
    ...preamble(input),
    ...(input.image === undefined
      ? ['# No image is pinned for this runtime: the host runs no container.']
      : containerSection(input)),
    '',
  ].join('\n');
}

/**
 * The redeploy command (SSM `AWS-RunShellScript`, one script): the boot script's container
 * section with the new image. Never stops or reboots the host.
 */
export function renderRedeployCommand(input: UserDataInput & { image: string }): string {
  return ['#!/bin/bash', ...preamble(input), ...containerSection(input), ''].join('\n');
}

/**
 * What the boot script would be without its image (which redeploys change in place) and its
 * owner's ids: a launch that would use another boot script than a running instance's makes that
 * instance `Outdated`. The same for every owner of a kind, so it is computed once per kind (every
 * reconcile of every owner asks).
 */
export function bootScriptFingerprint(input: UserDataInput): string {
  const secretTemplate = input.secretName.split(input.orgId).join('<org>');
  const key = [
    input.role,
    input.env,
    input.region,
    input.cpBaseUrl,
    secretTemplate,
    input.image === undefined,
  ].join('\u0000');
  let hash = fingerprints.get(key);
  if (hash === undefined) {
    const template: UserDataInput = {
      role: input.role,
      env: input.env,
      region: input.region,
      orgId: '<org>',
      ...(input.workspaceId === undefined ? {} : { workspaceId: '<workspace>' }),
      ...(input.runtime === undefined ? {} : { runtime: '<runtime>' }),
      image: input.image === undefined ? undefined : '<image>',
      secretName: secretTemplate,
      cpBaseUrl: input.cpBaseUrl,
    };
    hash = createHash('sha256').update(renderUserData(template)).digest('hex').slice(0, 16);
    if (fingerprints.size > 1000) fingerprints.clear();
    fingerprints.set(key, hash);
  }
  return hash;
}

const fingerprints = new Map<string, string>();
