import { AwsError } from './protocol.js';

/**
 * EC2 Query-protocol parameters: a flat `Key.1.Sub=value` form body with 1-based lists.
 * Helpers here turn it into lists and structs, compile `Filter.N` into a predicate, and
 * make opaque pagination tokens.
 */
export class QueryParams {
  private constructor(private readonly flat: Map<string, string>) {}

  static parse(body: string): QueryParams {
    return new QueryParams(new Map(new URLSearchParams(body)));
  }

  get(key: string): string | undefined {
    return this.flat.get(key);
  }

  has(key: string): boolean {
    return this.flat.has(key);
  }

  /** `prefix.1`, `prefix.2`, ... (the SDK writes contiguous indexes). */
  list(prefix: string): string[] {
    const out: string[] = [];
    for (let i = 1; ; i++) {
      const v = this.flat.get(`${prefix}.${i}`);
      if (v === undefined) return out;
      out.push(v);
    }
  }

  /** Sub-parameters of `prefix.N.*`, ordered by N. */
  structs(prefix: string): QueryParams[] {
    const lead = `${prefix}.`;
    const groups = new Map<number, Map<string, string>>();
    for (const [k, v] of this.flat) {
      if (!k.startsWith(lead)) continue;
      const rest = k.slice(lead.length);
      const dot = rest.indexOf('.');
      if (dot < 0) continue;
      const n = Number(rest.slice(0, dot));
      if (!Number.isInteger(n)) continue;
      let g = groups.get(n);
      if (!g) {
        g = new Map();
        groups.set(n, g);
      }
      g.set(rest.slice(dot + 1), v);
    }
    return [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([, g]) => new QueryParams(g));
  }

  /** Sub-parameters of `prefix.*` (a nested struct, not a list). */
  struct(prefix: string): QueryParams {
    const lead = `${prefix}.`;
    const g = new Map<string, string>();
    for (const [k, v] of this.flat) if (k.startsWith(lead)) g.set(k.slice(lead.length), v);
    return new QueryParams(g);
  }

  get size(): number {
    return this.flat.size;
  }

  int(key: string, paramName = key): number | undefined {
    const v = this.flat.get(key);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n)) {
      throw new AwsError('InvalidParameterValue', `Invalid value '${v}' for ${paramName}`);
    }
    return n;
  }

  bool(key: string): boolean | undefined {
    const v = this.flat.get(key);
    if (v === undefined) return undefined;
    return v === 'true';
  }

  /** A stable digest of every parameter except `omit`, for idempotency and page tokens. */
  fingerprint(omit: string[]): string {
    const skip = new Set(['Action', 'Version', 'DryRun', ...omit]);
    const parts = [...this.flat.entries()]
      .filter(([k]) => !skip.has(k))
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`);
    return fnv(parts.join('&'));
  }
}

export function fnv(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

// --- filters ---------------------------------------------------------------

/** What a filter name reads from an item; `undefined` means "unknown filter". */
export type Extractor<T> = (item: T) => string | readonly string[] | undefined;

interface ValueMatcher {
  exact: Set<string>;
  patterns: RegExp[];
}

/**
 * NOTE: EC2 wildcards: `*` is zero or more characters, `?` zero or one (as the reference
 * states), and a backslash escapes either. Matching is case-sensitive.
 */
function compileValues(values: string[]): ValueMatcher {
  const m: ValueMatcher = { exact: new Set(), patterns: [] };
  for (const v of values) {
    if (!/[*?\\]/.test(v)) {
      m.exact.add(v);
      continue;
    }
    let re = '^';
    for (let i = 0; i < v.length; i++) {
      const c = v[i]!;
      if (c === '\\' && i + 1 < v.length) re += escapeRe(v[++i]!);
      else if (c === '*') re += '.*';
      else if (c === '?') re += '.?';
      else re += escapeRe(c);
    }
    m.patterns.push(new RegExp(`${re}$`, 's'));
  }
  return m;
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

function matchOne(m: ValueMatcher, v: string): boolean {
  if (m.exact.has(v)) return true;
  for (const p of m.patterns) if (p.test(v)) return true;
  return false;
}

/** EC2's limits on a call's filters (FilterLimitExceeded beyond them). */
const MAX_FILTER_VALUES = 200;
const MAX_FILTER_VALUE_LENGTH = 255;

/**
 * Compiles `Filter.N.Name` / `Filter.N.Value.M` into one predicate: values of a filter are
 * ORed, filters are ANDed. Unknown filter names throw InvalidParameterValue.
 */
export function compileFilters<T>(
  params: QueryParams,
  fieldFor: (name: string) => Extractor<T> | undefined,
): ((item: T) => boolean) | undefined {
  const filters = params.structs('Filter');
  if (filters.length === 0) return undefined;
  let values = 0;
  for (const f of filters) {
    for (const v of f.list('Value')) {
      if (v.length > MAX_FILTER_VALUE_LENGTH)
        throw new AwsError('FilterLimitExceeded', 'The maximum length for a filter value is 255 characters');
      values++;
    }
  }
  if (values > MAX_FILTER_VALUES)
    throw new AwsError(
      'FilterLimitExceeded',
      'The maximum number of filter values specified on a single call is 200',
    );
  const tests: ((item: T) => boolean)[] = [];
  for (const f of filters) {
    const name = f.get('Name') ?? '';
    const extract = fieldFor(name);
    if (!extract) throw new AwsError('InvalidParameterValue', `The filter '${name}' is invalid`);
    const matcher = compileValues(f.list('Value'));
    tests.push((item) => {
      const got = extract(item);
      if (got === undefined) return false;
      if (typeof got === 'string') return matchOne(matcher, got);
      for (const g of got) if (matchOne(matcher, g)) return true;
      return false;
    });
  }
  return (item) => {
    for (const t of tests) if (!t(item)) return false;
    return true;
  };
}

/** `tag:<key>`, `tag-key` and `tag-value`, common to every EC2 resource. */
export function tagField<T extends { tags: Map<string, string> }>(name: string): Extractor<T> | undefined {
  if (name.startsWith('tag:')) {
    const key = name.slice(4);
    return (item) => item.tags.get(key);
  }
  if (name === 'tag-key') return (item) => [...item.tags.keys()];
  if (name === 'tag-value') return (item) => [...item.tags.values()];
  return undefined;
}

// --- pagination ------------------------------------------------------------

/** An opaque token naming the next item's seq and bound to the request's other parameters. */
export function encodePageToken(seq: number, fingerprint: string): string {
  return Buffer.from(`${seq}.${fingerprint}`).toString('base64url');
}

export function decodePageToken(token: string, fingerprint: string): number {
  const text = Buffer.from(token, 'base64url').toString();
  const dot = text.indexOf('.');
  const seq = Number(text.slice(0, dot));
  if (dot < 0 || !Number.isInteger(seq) || text.slice(dot + 1) !== fingerprint) {
    // NOTE: the reference lists InvalidPaginationToken; the exact wording is ours.
    throw new AwsError('InvalidPaginationToken', `The pagination token '${token}' is invalid or expired.`);
  }
  return seq;
}

/**
 * Validates MaxResults (5–1000) for Describe* calls. NOTE: EC2 rejects values below 5 with
 * the message below; above 1000 we reject the same way (AWS documents 1000 as the maximum).
 */
export function maxResults(params: QueryParams): number | undefined {
  const n = params.int('MaxResults', 'maxResults');
  if (n === undefined) return undefined;
  if (n < 5) {
    throw new AwsError(
      'InvalidParameterValue',
      `Value ( ${n} ) for parameter maxResults is invalid. Expecting a value greater than 5.`,
    );
  }
  if (n > 1000) {
    throw new AwsError(
      'InvalidParameterValue',
      `Value ( ${n} ) for parameter maxResults is invalid. Expecting a value less than or equal to 1000.`,
    );
  }
  return n;
}

/**
 * Walks `items` (already in seq order from the token position), collecting up to `limit`
 * matches. Returns the page and the seq of the next match, if any, for the next token.
 */
export function collectPage<T extends { seq: number }>(
  items: Iterable<T>,
  accept: (item: T) => boolean,
  limit: number,
  chance?: () => number,
): { page: T[]; nextSeq?: number } {
  // NOTE: with short pages on, a page holds 0..limit items and still carries a token, and the
  // last one carries a token to an empty page half of the time, as AWS may answer.
  const cut = chance ? Math.floor(chance() * (limit + 1)) : limit;
  const page: T[] = [];
  for (const item of items) {
    if (!accept(item)) continue;
    if (page.length >= cut) return { page, nextSeq: item.seq };
    page.push(item);
  }
  const last = page[page.length - 1];
  if (chance && last !== undefined && chance() < 0.5) return { page, nextSeq: last.seq + 1 };
  return { page };
}
