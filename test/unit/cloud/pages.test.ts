import Cloudflare from 'cloudflare';
import { describe, expect, it } from 'vitest';
import { readListSecretsPage, splitNextToken } from '../../../src/cloud/aws/secrets.js';
import { CloudflareAdapter, decodeListPage } from '../../../src/cloud/cloudflare/adapter.js';
import { bytesDigest, PageMemo } from '../../../src/cloud/pages.js';
import type { SecretSummary } from '../../../src/cloud/ports.js';
import { unlimited } from '../../../src/cloud/ratelimit.js';
import { TransientError } from '../../../src/runtime/errors.js';

const bytes = (s: string) => [Buffer.from(s)];

describe('PageMemo: a page is decoded again only when its bytes changed', () => {
  it('returns what the last run made of the same bytes, and decodes anything else', () => {
    const memo = new PageMemo<{ text: string }>();
    let decoded = 0;
    const decode = (text: string) => () => {
      decoded++;
      return { text };
    };
    const first = memo.begin('secrets');
    const a = first.read('', bytes('page a'), decode('a'));
    const b = first.read('t1', bytes('page b'), decode('b'));
    first.end();
    expect(decoded).toBe(2);

    const second = memo.begin('secrets');
    expect(second.read('', bytes('page a'), decode('a'))).toBe(a); // the very object
    // Same request, other bytes: decoded; same bytes under another request: decoded too.
    expect(second.read('t1', bytes('page B'), decode('B'))).toEqual({ text: 'B' });
    expect(second.read('t2', bytes('page b'), decode('b'))).not.toBe(b);
    second.end();
    expect(decoded).toBe(4);
  });

  it('forgets nothing for a run that did not end, and nothing it cannot decode', () => {
    const memo = new PageMemo<string>();
    const run = memo.begin('l');
    const kept = run.read('1', bytes('x'), () => 'x');
    run.end();
    const broken = memo.begin('l');
    expect(broken.read('1', bytes('y'), () => 'y')).toBe('y');
    // No end(): a listing that failed half-way is not what the next run compares with.
    const again = memo.begin('l');
    expect(again.read('1', bytes('x'), () => 'decoded')).toBe(kept);
    expect(again.read('2', bytes('z'), () => undefined)).toBeUndefined();
    again.end();
    let decoded = false;
    memo.begin('l').read('2', bytes('z'), () => {
      decoded = true;
      return 'z';
    });
    expect(decoded).toBe(true);
  });

  it('keeps listings apart', () => {
    const memo = new PageMemo<string>();
    for (const name of ['a', 'b']) {
      const run = memo.begin(name);
      run.read('1', bytes('same'), () => `from ${name}`);
      run.end();
    }
    expect(memo.begin('a').read('1', bytes('same'), () => 'again')).toBe('from a');
    expect(memo.begin('b').read('1', bytes('same'), () => 'again')).toBe('from b');
  });

  it('remembers the last `limit` listings, no more', () => {
    const memo = new PageMemo<string>(3);
    for (let i = 0; i < 4; i++) {
      const run = memo.begin(`listing ${i}`);
      run.read('1', bytes('same'), () => `from ${i}`);
      run.end();
    }
    for (let i = 1; i < 4; i++)
      expect(memo.begin(`listing ${i}`).read('1', bytes('same'), () => 'again')).toBe(`from ${i}`);
    expect(memo.begin('listing 0').read('1', bytes('same'), () => 'again')).toBe('again');
  });

  it('digests the bytes, not how they were cut', () => {
    expect(bytesDigest([Buffer.from('ab'), Buffer.from('c')])).toBe(bytesDigest([Buffer.from('abc')]));
    expect(bytesDigest([Buffer.from('abc')])).not.toBe(bytesDigest([Buffer.from('abd')]));
  });
});

describe('ListSecrets pages: judged by their content, less the page token', () => {
  const body = (names: string[], token?: string) =>
    Buffer.from(
      JSON.stringify({
        SecretList: names.map((Name) => ({ Name, ARN: `arn:${Name}`, Tags: [{ Key: 'k', Value: 'v' }] })),
        ...(token === undefined ? {} : { NextToken: token }),
      }),
    );

  it('cuts the token out, or gives up on any other way of writing it', () => {
    const whole = body(['a']);
    expect(splitNextToken(whole)).toEqual({ content: [whole], token: undefined });
    const cut = splitNextToken(body(['a'], 'tok+/='))!;
    expect(cut.token).toBe('tok+/=');
    expect(Buffer.concat(cut.content).toString()).toBe(body(['a'], '').toString());
    expect(splitNextToken(body(['a'], ''))?.token).toBeUndefined();
    for (const odd of [
      '{"SecretList":[],"NextToken": "t"}',
      '{"SecretList":[],"NextToken":null}',
      '{"SecretList":[],"NextToken":"t\\u0041"}',
      '{"NextToken":"t","SecretList":[],"NextToken":"u"}',
      // A tag value ending in an escaped quote and the key's name: the key is found twice.
      '{"SecretList":[{"Tags":[{"Key":"x","Value":"\\"NextToken"}]}],"NextToken":"t"}',
      '{"SecretList":[],"NextToken":"t',
    ])
      expect(splitNextToken(Buffer.from(odd)), odd).toBeUndefined();
  });

  it('gives back the last secrets under another token, and always the token just read', () => {
    const memo = new PageMemo<SecretSummary[]>();
    const first = memo.begin('molecule/');
    const a = readListSecretsPage(first, '0', body(['a', 'b'], 'token-1'))!;
    first.end();
    expect(a.nextToken).toBe('token-1');
    expect(a.secrets.map((s) => s.name)).toEqual(['a', 'b']);

    const second = memo.begin('molecule/');
    const again = readListSecretsPage(second, '0', body(['a', 'b'], 'token-2'))!;
    expect(again.secrets).toBe(a.secrets);
    expect(again.nextToken).toBe('token-2');
    const last = readListSecretsPage(second, '0', body(['a', 'b']))!;
    expect(last.nextToken).toBeUndefined(); // the last page now: not the remembered token
    second.end();

    const third = memo.begin('molecule/');
    const changed = readListSecretsPage(third, '0', body(['a', 'c'], 'token-3'))!;
    expect(changed.secrets.map((s) => s.name)).toEqual(['a', 'c']);
    expect(changed.nextToken).toBe('token-3');
  });
});

describe('Cloudflare list pages', () => {
  const ids = (items: unknown[]) => items.map((i) => (i as { id: string }).id);

  it('reads the items and whether another page may follow', () => {
    const page = (body: unknown) => decodeListPage(Buffer.from(JSON.stringify(body)), ids);
    expect(page({ result: [{ id: 'a' }, { id: 'b' }], result_info: { per_page: 2 } })).toEqual({
      items: ['a', 'b'],
      more: true,
    });
    // Shorter than per_page: the last page (no call for an empty one after it).
    expect(page({ result: [{ id: 'a' }], result_info: { per_page: 2 } })?.more).toBe(false);
    expect(page({ result: [], result_info: { per_page: 2 } })?.more).toBe(false);
    // Without result_info, the SDK's rule: until an empty page.
    expect(page({ result: [{ id: 'a' }] })?.more).toBe(true);
  });

  it('refuses a body that is not a list envelope (never read as an empty page)', () => {
    for (const body of ['not json', 'null', '[]', '{"result":{}}', '{"success":false,"result":[]}', '{}'])
      expect(decodeListPage(Buffer.from(body), ids)).toBeUndefined();
  });

  it('fails a listing whose page is not a list, where the SDK alone would have read none', async () => {
    const client = new Cloudflare({
      apiToken: 'token',
      baseURL: 'http://cloudflare.invalid/client/v4',
      maxRetries: 0,
      // The port boundary: a proxy's error page with a 200.
      fetch: async () =>
        new Response('<html>maintenance</html>', { status: 200, headers: { 'content-type': 'text/html' } }),
    });
    const cf = new CloudflareAdapter(
      client,
      { accountId: 'a', zoneId: 'z' },
      { limiter: unlimited, target: '' },
    );
    await expect(cf.listTunnels({ namePrefix: 'molecule-test-' })).rejects.toBeInstanceOf(TransientError);
    await expect(cf.listRecords({ name: 'x.moleculesai.app' })).rejects.toBeInstanceOf(TransientError);
  });
});
