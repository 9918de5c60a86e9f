import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  PutSecretValueCommand,
  paginateListSecrets,
  RestoreSecretCommand,
  TagResourceCommand,
  UntagResourceCommand,
} from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY, failure, type Harness, startHarness, tags } from './helpers.js';

let h: Harness;
let n = 0;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

const TOKEN_A = '11111111-1111-4111-8111-111111111111';
const TOKEN_B = '22222222-2222-4222-8222-222222222222';

function name(): string {
  n++;
  return `molecule/test/tenant/${n}/bootstrap`;
}

describe('CreateSecret', () => {
  it('returns an ARN with a random 6-character suffix and the token as VersionId', async () => {
    const secretName = name();
    const out = await h.sm.send(
      new CreateSecretCommand({ Name: secretName, SecretString: '{"a":1}', ClientRequestToken: TOKEN_A }),
    );
    expect(out.$metadata.httpStatusCode).toBe(200);
    expect(out.Name).toBe(secretName);
    expect(out.VersionId).toBe(TOKEN_A);
    expect(out.ARN).toMatch(
      new RegExp(`^arn:aws:secretsmanager:us-east-1:123456789012:secret:${secretName}-[A-Za-z0-9]{6}$`),
    );
  });

  it('treats a replay with the same token and value as a no-op, and a new token as ResourceExistsException', async () => {
    const secretName = name();
    const first = await h.sm.send(
      new CreateSecretCommand({ Name: secretName, SecretString: 'v', ClientRequestToken: TOKEN_A }),
    );
    const replay = await h.sm.send(
      new CreateSecretCommand({ Name: secretName, SecretString: 'v', ClientRequestToken: TOKEN_A }),
    );
    expect(replay.ARN).toBe(first.ARN);
    expect(replay.VersionId).toBe(TOKEN_A);
    const e = await failure(h.sm.send(new CreateSecretCommand({ Name: secretName, SecretString: 'v' })));
    expect(e.name).toBe('ResourceExistsException');
    expect(e.message).toBe(`The operation failed because the secret ${secretName} already exists.`);
    expect(e.$metadata.httpStatusCode).toBe(400);
    const changed = await failure(
      h.sm.send(
        new CreateSecretCommand({ Name: secretName, SecretString: 'other', ClientRequestToken: TOKEN_A }),
      ),
    );
    expect(changed.name).toBe('ResourceExistsException');
  });

  it('rejects invalid names', async () => {
    const e = await failure(h.sm.send(new CreateSecretCommand({ Name: 'bad name!', SecretString: 'v' })));
    expect(e.name).toBe('InvalidParameterException');
  });
});

describe('values and versions', () => {
  it('resolves SecretId by name, full ARN and partial ARN', async () => {
    const secretName = name();
    const { ARN } = await h.sm.send(new CreateSecretCommand({ Name: secretName, SecretString: 'hello' }));
    const partial = ARN!.slice(0, -7);
    for (const id of [secretName, ARN!, partial]) {
      const out = await h.sm.send(new GetSecretValueCommand({ SecretId: id }));
      expect(out.SecretString).toBe('hello');
      expect(out.VersionStages).toEqual(['AWSCURRENT']);
      expect(out.CreatedDate).toBeInstanceOf(Date);
    }
  });

  it('PutSecretValue moves AWSCURRENT and leaves AWSPREVIOUS on the old version', async () => {
    const secretName = name();
    await h.sm.send(
      new CreateSecretCommand({ Name: secretName, SecretString: 'one', ClientRequestToken: TOKEN_A }),
    );
    const put = await h.sm.send(
      new PutSecretValueCommand({ SecretId: secretName, SecretString: 'two', ClientRequestToken: TOKEN_B }),
    );
    expect(put.VersionId).toBe(TOKEN_B);
    expect(put.VersionStages).toEqual(['AWSCURRENT']);
    expect((await h.sm.send(new GetSecretValueCommand({ SecretId: secretName }))).SecretString).toBe('two');
    const previous = await h.sm.send(
      new GetSecretValueCommand({ SecretId: secretName, VersionStage: 'AWSPREVIOUS' }),
    );
    expect(previous.SecretString).toBe('one');
    expect(
      (await h.sm.send(new GetSecretValueCommand({ SecretId: secretName, VersionId: TOKEN_A }))).SecretString,
    ).toBe('one');
    const d = await h.sm.send(new DescribeSecretCommand({ SecretId: secretName }));
    expect(d.VersionIdsToStages).toEqual({ [TOKEN_A]: ['AWSPREVIOUS'], [TOKEN_B]: ['AWSCURRENT'] });
    const replay = await h.sm.send(
      new PutSecretValueCommand({ SecretId: secretName, SecretString: 'two', ClientRequestToken: TOKEN_B }),
    );
    expect(replay.VersionId).toBe(TOKEN_B);
  });

  it('reports a missing AWSCURRENT value and unknown secrets as ResourceNotFoundException', async () => {
    const secretName = name();
    await h.sm.send(new CreateSecretCommand({ Name: secretName }));
    const empty = await failure(h.sm.send(new GetSecretValueCommand({ SecretId: secretName })));
    expect(empty.name).toBe('ResourceNotFoundException');
    expect(empty.message).toBe(
      "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
    );
    const unknown = await failure(h.sm.send(new DescribeSecretCommand({ SecretId: 'no/such/secret' })));
    expect(unknown.name).toBe('ResourceNotFoundException');
    expect(unknown.message).toBe("Secrets Manager can't find the specified secret.");
    expect(unknown.$metadata.httpStatusCode).toBe(400);
  });

  it('describes a secret with epoch timestamps, tags and stages', async () => {
    const secretName = name();
    await h.sm.send(
      new CreateSecretCommand({
        Name: secretName,
        Description: 'bundle',
        SecretString: 'x',
        Tags: tags({ OrgID: 'o-1' }),
      }),
    );
    const d = await h.sm.send(new DescribeSecretCommand({ SecretId: secretName }));
    expect(d.Description).toBe('bundle');
    expect(d.Tags).toEqual(tags({ OrgID: 'o-1' }));
    expect(d.CreatedDate).toBeInstanceOf(Date);
    expect(Math.abs(d.CreatedDate!.getTime() - h.sim.now())).toBeLessThan(60_000);
    expect(d.DeletedDate).toBeUndefined();
  });

  it('tags and untags', async () => {
    const secretName = name();
    await h.sm.send(new CreateSecretCommand({ Name: secretName, SecretString: 'x', Tags: tags({ A: '1' }) }));
    await h.sm.send(new TagResourceCommand({ SecretId: secretName, Tags: tags({ B: '2', A: 'one' }) }));
    await h.sm.send(new UntagResourceCommand({ SecretId: secretName, TagKeys: ['B'] }));
    const d = await h.sm.send(new DescribeSecretCommand({ SecretId: secretName }));
    expect(d.Tags).toEqual(tags({ A: 'one' }));
  });
});

describe('ListSecrets', () => {
  it('filters by name prefix, tag key/value, description and negation', async () => {
    await h.sm.send(
      new CreateSecretCommand({
        Name: 'list/alpha',
        Description: 'First one',
        SecretString: 'x',
        Tags: tags({ Env: 'dev', Kind: 'a' }),
      }),
    );
    await h.sm.send(
      new CreateSecretCommand({
        Name: 'list/beta',
        Description: 'second',
        SecretString: 'x',
        Tags: tags({ Env: 'prod' }),
      }),
    );
    const names = async (
      Filters: { Key: 'name' | 'tag-key' | 'tag-value' | 'description' | 'all'; Values: string[] }[],
    ) => {
      const out = await h.sm.send(new ListSecretsCommand({ Filters }));
      return out.SecretList!.map((s) => s.Name).sort();
    };
    expect(await names([{ Key: 'name', Values: ['list/'] }])).toEqual(['list/alpha', 'list/beta']);
    expect(
      await names([
        { Key: 'name', Values: ['list/'] },
        { Key: 'tag-key', Values: ['Kind'] },
      ]),
    ).toEqual(['list/alpha']);
    expect(
      await names([
        { Key: 'name', Values: ['list/'] },
        { Key: 'tag-value', Values: ['pro'] },
      ]),
    ).toEqual(['list/beta']);
    expect(
      await names([
        { Key: 'name', Values: ['list/'] },
        { Key: 'tag-value', Values: ['!prod'] },
      ]),
    ).toEqual(['list/alpha']);
    expect(await names([{ Key: 'description', Values: ['first'] }])).toEqual(['list/alpha']);
    expect(await names([{ Key: 'all', Values: ['list/b'] }])).toEqual(['list/beta']);
  });

  it('paginates with MaxResults and NextToken through the SDK paginator', async () => {
    for (let k = 0; k < 10; k++)
      await h.sm.send(new CreateSecretCommand({ Name: `page/${k}`, SecretString: 'x' }));
    const seen: string[] = [];
    let pages = 0;
    for await (const page of paginateListSecrets(
      { client: h.sm, pageSize: 3 },
      { Filters: [{ Key: 'name', Values: ['page/'] }] },
    )) {
      pages++;
      seen.push(...page.SecretList!.map((s) => s.Name!));
    }
    expect(pages).toBe(4);
    expect(new Set(seen).size).toBe(10);
    const bad = await failure(h.sm.send(new ListSecretsCommand({ NextToken: 'garbage' })));
    expect(bad.name).toBe('InvalidNextTokenException');
  });
});

describe('deletion', () => {
  it('schedules deletion with a 30-day default window and blocks reads and re-creation', async () => {
    const secretName = name();
    await h.sm.send(new CreateSecretCommand({ Name: secretName, SecretString: 'x' }));
    const before = h.sim.now();
    const del = await h.sm.send(new DeleteSecretCommand({ SecretId: secretName }));
    expect(Math.round((del.DeletionDate!.getTime() - before) / DAY)).toBe(30);
    const get = await failure(h.sm.send(new GetSecretValueCommand({ SecretId: secretName })));
    expect(get.name).toBe('InvalidRequestException');
    expect(get.message).toBe(
      "You can't perform this operation on the secret because it was marked for deletion.",
    );
    const d = await h.sm.send(new DescribeSecretCommand({ SecretId: secretName }));
    expect(d.DeletedDate).toBeInstanceOf(Date);
    const create = await failure(h.sm.send(new CreateSecretCommand({ Name: secretName, SecretString: 'y' })));
    expect(create.name).toBe('InvalidRequestException');
    expect(create.message).toBe(
      "You can't create this secret because a secret with this name is already scheduled for deletion.",
    );
    const listed = async (IncludePlannedDeletion: boolean) =>
      (
        await h.sm.send(
          new ListSecretsCommand({
            IncludePlannedDeletion,
            Filters: [{ Key: 'name', Values: [secretName] }],
          }),
        )
      ).SecretList!.length;
    expect(await listed(false)).toBe(0);
    expect(await listed(true)).toBe(1);
  });

  it('rejects a second scheduled delete but allows a forced one', async () => {
    const secretName = name();
    await h.sm.send(new CreateSecretCommand({ Name: secretName, SecretString: 'x' }));
    await h.sm.send(new DeleteSecretCommand({ SecretId: secretName, RecoveryWindowInDays: 7 }));
    const again = await failure(
      h.sm.send(new DeleteSecretCommand({ SecretId: secretName, RecoveryWindowInDays: 7 })),
    );
    expect(again.name).toBe('InvalidRequestException');
    expect(again.message).toBe(
      "You tried to perform the operation on a secret that's currently marked deleted.",
    );
    await h.sm.send(new DeleteSecretCommand({ SecretId: secretName, ForceDeleteWithoutRecovery: true }));
    const gone = await failure(h.sm.send(new DescribeSecretCommand({ SecretId: secretName })));
    expect(gone.name).toBe('ResourceNotFoundException');
  });

  it('validates the recovery window and its exclusion with force', async () => {
    const secretName = name();
    await h.sm.send(new CreateSecretCommand({ Name: secretName, SecretString: 'x' }));
    const both = await failure(
      h.sm.send(
        new DeleteSecretCommand({
          SecretId: secretName,
          RecoveryWindowInDays: 7,
          ForceDeleteWithoutRecovery: true,
        }),
      ),
    );
    expect(both.name).toBe('InvalidParameterException');
    expect(both.message).toBe(
      "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
    );
    const short = await failure(
      h.sm.send(new DeleteSecretCommand({ SecretId: secretName, RecoveryWindowInDays: 3 })),
    );
    expect(short.message).toBe('The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).');
  });

  it('restores a scheduled secret', async () => {
    const secretName = name();
    await h.sm.send(new CreateSecretCommand({ Name: secretName, SecretString: 'kept' }));
    await h.sm.send(new DeleteSecretCommand({ SecretId: secretName }));
    const out = await h.sm.send(new RestoreSecretCommand({ SecretId: secretName }));
    expect(out.Name).toBe(secretName);
    expect((await h.sm.send(new GetSecretValueCommand({ SecretId: secretName }))).SecretString).toBe('kept');
    expect(
      (await h.sm.send(new DescribeSecretCommand({ SecretId: secretName }))).DeletedDate,
    ).toBeUndefined();
  });

  it('purges a scheduled secret when its (simulated) window ends, freeing the name', async () => {
    const secretName = name();
    const first = await h.sm.send(new CreateSecretCommand({ Name: secretName, SecretString: 'x' }));
    await h.sm.send(new DeleteSecretCommand({ SecretId: secretName, RecoveryWindowInDays: 7 }));
    h.sim.advance(7 * DAY + 1);
    const gone = await failure(h.sm.send(new DescribeSecretCommand({ SecretId: secretName })));
    expect(gone.name).toBe('ResourceNotFoundException');
    const again = await h.sm.send(new CreateSecretCommand({ Name: secretName, SecretString: 'new' }));
    expect(again.ARN).not.toBe(first.ARN);
    const stale = await failure(h.sm.send(new GetSecretValueCommand({ SecretId: first.ARN! })));
    expect(stale.name).toBe('ResourceNotFoundException');
  });

  it('force-deletes immediately, and a forced delete of an unknown secret succeeds', async () => {
    const secretName = name();
    await h.sm.send(new CreateSecretCommand({ Name: secretName, SecretString: 'x' }));
    await h.sm.send(new DeleteSecretCommand({ SecretId: secretName, ForceDeleteWithoutRecovery: true }));
    await h.sm.send(new CreateSecretCommand({ Name: secretName, SecretString: 'x' }));
    const unknown = await h.sm.send(
      new DeleteSecretCommand({ SecretId: 'never/existed', ForceDeleteWithoutRecovery: true }),
    );
    expect(unknown.Name).toBe('never/existed');
    const notForced = await failure(h.sm.send(new DeleteSecretCommand({ SecretId: 'never/existed' })));
    expect(notForced.name).toBe('ResourceNotFoundException');
  });
});
