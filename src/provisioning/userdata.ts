/**
 * Boot script for tenant and workspace instances. It carries no secret (seed #113: the
 * plaintext user-data path was removed): the instance fetches its bootstrap bundle from
 * Secrets Manager by name, with its instance profile.
 */
export interface UserDataInput {
  role: 'tenant' | 'workspace';
  env: string;
  region: string;
  orgId: string;
  workspaceId?: string;
  runtime?: string;
  image: string;
  secretName: string;
  cpBaseUrl: string;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function renderUserData(input: UserDataInput): string {
  const vars: [string, string][] = [
    ['MOLECULE_ROLE', input.role],
    ['MOLECULE_ENV', input.env],
    ['AWS_REGION', input.region],
    ['MOLECULE_ORG_ID', input.orgId],
    ['MOLECULE_WORKSPACE_ID', input.workspaceId ?? ''],
    ['MOLECULE_RUNTIME', input.runtime ?? ''],
    ['MOLECULE_IMAGE', input.image],
    ['MOLECULE_BOOTSTRAP_SECRET', input.secretName],
    ['CP_BASE_URL', input.cpBaseUrl],
  ];
  return [
    '#!/bin/bash',
    'set -euo pipefail',
    ...vars.map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    '# The bundle is read with the instance profile; nothing secret is written to this script.',
    'bundle=$(aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$MOLECULE_BOOTSTRAP_SECRET" --query SecretString --output text)',
    'install -d -m 0700 /etc/molecule',
    'umask 077; printf "%s" "$bundle" > /etc/molecule/bootstrap.json',
    'unset bundle',
    'docker pull "$MOLECULE_IMAGE"',
    'docker run -d --restart=always --name molecule --env-file <(jq -r \'to_entries[] | "\\(.key)=\\(.value)"\' /etc/molecule/bootstrap.json) "$MOLECULE_IMAGE"',
    '',
  ].join('\n');
}
