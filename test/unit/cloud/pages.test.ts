import Cloudflare from 'cloudflare';
import { describe, expect, it } from 'vitest';
import { CloudflareAdapter, decodeListPage } from '../../../src/cloud/cloudflare/adapter.js';
import { bytesDigest, PageMemo } from '../../../src/cloud/pages.js';
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

  it('keeps listings apart, and only the last few of them', () => {
    const memo = new PageMemo<string>();
    for (let i = 0; i < 20; i++) {
      const run = memo.begin(`listing ${i}`);
      run.read('1', bytes('same'), () => `from ${i}`);
      run.end();
    }
    expect(memo.begin('listing 19').read('1', bytes('same'), () => 'again')).toBe('from 19');
    expect(memo.begin('listing 0').read('1', bytes('same'), () => 'again')).toBe('again');
  });

  it('digests the bytes, not how they were cut', () => {
    expect(bytesDigest([Buffer.from('ab'), Buffer.from('c')])).toBe(bytesDigest([Buffer.from('abc')]));
    expect(bytesDigest([Buffer.from('abc')])).not.toBe(bytesDigest([Buffer.from('abd')]));
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
