/** Hand-rolled XML for the EC2 Query protocol: escaping plus a few element builders. */

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

const NEEDS_ESCAPE = /[&<>"']/;

export function escapeXml(text: string): string {
  return NEEDS_ESCAPE.test(text) ? text.replace(/[&<>"']/g, (c) => ESCAPES[c]!) : text;
}

/** `<name>value</name>`; omitted entirely when value is undefined, `<name/>` when empty. */
export function el(name: string, value: string | number | boolean | undefined | null): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'string' ? escapeXml(value) : String(value);
  return text === '' ? `<${name}/>` : `<${name}>${text}</${name}>`;
}

/**
 * A list wrapper with `<item>` members. NOTE: the SDK leaves a missing list `undefined` but
 * parses an empty wrapper as `[]`, so the wrapper is always written.
 */
export function list<T>(name: string, items: Iterable<T>, render: (item: T) => string): string {
  let inner = '';
  for (const item of items) inner += `<item>${render(item)}</item>`;
  return inner === '' ? `<${name}/>` : `<${name}>${inner}</${name}>`;
}

export function tagSet(tags: Map<string, string>, name = 'tagSet'): string {
  if (tags.size === 0) return `<${name}/>`;
  let inner = '';
  for (const [k, v] of tags)
    inner += `<item><key>${escapeXml(k)}</key>${v === '' ? '<value/>' : `<value>${escapeXml(v)}</value>`}</item>`;
  return `<${name}>${inner}</${name}>`;
}

const isoCache = new Map<number, string>();

/** RFC 3339 with milliseconds; cached because Describe pages format thousands of them. */
export function iso(ms: number): string {
  let text = isoCache.get(ms);
  if (text === undefined) {
    if (isoCache.size >= 200_000) isoCache.clear();
    text = new Date(ms).toISOString();
    isoCache.set(ms, text);
  }
  return text;
}

const NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

export function ec2Response(action: string, requestId: string, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${NS}"><requestId>${requestId}</requestId>${body}</${action}Response>`;
}

export function ec2ErrorBody(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
}
