import type { IncomingHttpHeaders } from 'node:http';
import type { Rng } from './rng.js';
import { SEED } from './seed.js';

/**
 * Who is calling (DESIGN §10, §12). Credentials the simulator issued — an assumed role's
 * (STS AssumeRole) or an instance's (its metadata service, /_sim/instance-credentials) —
 * belong to their principal until they expire on the simulator's clock. Any other access key
 * is the default account's administrator. A session token the simulator never issued is
 * refused, as AWS refuses a forged or foreign one.
 */

export interface Principal {
  account: string;
  /** As GetCallerIdentity answers it. */
  arn: string;
  userId: string;
  /** For a role session: the role's ARN (what a resource policy's Principal.AWS names). */
  roleArn?: string;
  /** For an instance's credentials: its ARN, as `ec2:SourceInstanceARN`. */
  sourceInstanceArn?: string;
}

export interface IssuedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** Simulated ms. */
  expiresAt: number;
  principal: Principal;
}

/** Why a request's credentials are refused. */
export type CredentialProblem = 'expired' | 'invalid';

export class CredentialError extends Error {
  constructor(readonly problem: CredentialProblem) {
    super(
      problem === 'expired'
        ? 'The security token included in the request is expired'
        : 'The security token included in the request is invalid.',
    );
  }
}

export const ROLE_ARN = /^arn:aws:iam::(\d{12}):role\/((?:[\w+=,.@-]+\/)*)([\w+=,.@-]{1,64})$/;

export const defaultPrincipal = (): Principal => ({
  account: SEED.accountId,
  arn: `arn:aws:iam::${SEED.accountId}:user/simulator`,
  userId: 'AIDASIMULATOR0000001',
});

export class Identities {
  private readonly byKey = new Map<string, IssuedCredentials>();

  /** The caller of a signed request (`Credential=<key>/…` and `x-amz-security-token`). */
  resolve(headers: IncomingHttpHeaders, now: number): Principal {
    const auth = String(headers.authorization ?? '');
    const key = /Credential=([^/,\s]+)\//.exec(auth)?.[1];
    const token = headers['x-amz-security-token'];
    const issued = key ? this.byKey.get(key) : undefined;
    if (!issued) {
      if (token !== undefined) throw new CredentialError('invalid');
      return defaultPrincipal();
    }
    if (token !== issued.sessionToken) throw new CredentialError('invalid');
    if (now >= issued.expiresAt) throw new CredentialError('expired');
    return issued.principal;
  }

  /** Temporary credentials for a principal, valid `durationMs` of simulated time. */
  issue(principal: Principal, now: number, durationMs: number, rng: Rng): IssuedCredentials {
    const creds: IssuedCredentials = {
      accessKeyId: `ASIA${rng.alnum(16).toUpperCase()}`,
      secretAccessKey: rng.alnum(40),
      sessionToken: `IQoJb3JpZ2luX2VjE${rng.alnum(120)}`,
      expiresAt: now + durationMs,
      principal,
    };
    this.byKey.set(creds.accessKeyId, creds);
    return creds;
  }

  /** Drops credentials that expired a day ago or more (nothing can use them any more). */
  sweep(now: number): void {
    for (const [k, c] of this.byKey) if (now >= c.expiresAt + 86_400_000) this.byKey.delete(k);
  }

  toJSON(): IssuedCredentials[] {
    return [...this.byKey.values()];
  }

  load(saved: IssuedCredentials[] | undefined): void {
    this.byKey.clear();
    for (const c of saved ?? []) this.byKey.set(c.accessKeyId, c);
  }
}
