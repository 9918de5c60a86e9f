import { AssumeRoleCommand, type STSClient } from '@aws-sdk/client-sts';

/** AWS credentials as the SDK's clients take them. */
export interface AwsCredentialIdentity {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

/** Error codes AWS answers when a session's temporary credentials are no longer valid. */
export const EXPIRED_CREDENTIALS = new Set(['ExpiredToken', 'ExpiredTokenException', 'RequestExpired']);

/**
 * Temporary credentials of a role assumed from the operator's own credentials (the canary
 * target, DESIGN §10): fetched on first use, renewed ahead of their expiry (the SDK asks again
 * five minutes before it), and fetched anew at once when the provider says they expired
 * ({@link expire}), whatever our clock thinks.
 */
export class AssumedRoleCredentials {
  private current: (AwsCredentialIdentity & { expiration: Date }) | undefined;
  private pending: Promise<AwsCredentialIdentity> | undefined;

  constructor(
    private readonly sts: STSClient,
    readonly roleArn: string,
    private readonly sessionName = 'molecule-operator',
    private readonly durationSeconds = 3600,
  ) {}

  /** The credential provider the target's SDK clients are given. */
  readonly provider = (): Promise<AwsCredentialIdentity> => {
    const c = this.current;
    if (c && c.expiration.getTime() - Date.now() > 5 * 60_000) return Promise.resolve(c);
    this.pending ??= this.assume().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  };

  /**
   * The provider refused them (ExpiredToken: our clock and its disagree, or the session was
   * revoked). NOTE: the SDK keeps the identity it was given until that identity says it expires,
   * so the one handed out is marked expired in place; the next attempt asks for new ones.
   */
  expire(): void {
    if (this.current) this.current.expiration = new Date(0);
    this.current = undefined;
  }

  private async assume(): Promise<AwsCredentialIdentity> {
    const res = await this.sts.send(
      new AssumeRoleCommand({
        RoleArn: this.roleArn,
        RoleSessionName: this.sessionName,
        DurationSeconds: this.durationSeconds,
      }),
    );
    const c = res.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration)
      throw new Error(`AssumeRole ${this.roleArn}: no credentials in the answer`);
    this.current = {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      sessionToken: c.SessionToken,
      expiration: c.Expiration,
    };
    return this.current;
  }
}
