import { AwsError, type SimResponse } from './protocol.js';

/** awsJson1_1 plumbing shared by Secrets Manager and the Tagging API. */

export type JsonBody = Record<string, unknown>;

export function jsonResponse(status: number, body: unknown, requestId: string): SimResponse {
  return {
    status,
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': requestId },
    body: JSON.stringify(body),
  };
}

/** `{"__type":"X","Message":"…"}`, always with a 4xx/5xx status (a 200 would parse as success). */
export function jsonError(e: AwsError, requestId: string): SimResponse {
  return jsonResponse(e.status, { __type: e.code, Message: e.message }, requestId);
}

export function parseJsonBody(text: string): JsonBody {
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AwsError('SerializationException', 'Start of structure or map found where not expected.');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new AwsError('SerializationException', 'Start of structure or map found where not expected.');
  }
  return parsed as JsonBody;
}

function validation(member: string, what: string): AwsError {
  return new AwsError(
    'ValidationException',
    `1 validation error detected: Value at '${member}' failed to satisfy constraint: ${what}`,
  );
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

export function reqString(b: JsonBody, key: string): string {
  const v = b[key];
  if (v === undefined || v === null) throw validation(lowerFirst(key), 'Member must not be null');
  if (typeof v !== 'string') throw new AwsError('SerializationException', `Expected a string for ${key}`);
  return v;
}

export function optString(b: JsonBody, key: string): string | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new AwsError('SerializationException', `Expected a string for ${key}`);
  return v;
}

export function optNumber(b: JsonBody, key: string): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number') throw new AwsError('SerializationException', `Expected a number for ${key}`);
  return v;
}

export function optBool(b: JsonBody, key: string): boolean | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new AwsError('SerializationException', `Expected a boolean for ${key}`);
  return v;
}

export function optArray(b: JsonBody, key: string): unknown[] | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw new AwsError('SerializationException', `Expected a list for ${key}`);
  return v;
}

export function tagList(b: JsonBody, key: string): { Key: string; Value: string }[] {
  return (optArray(b, key) ?? []).map((t) => {
    const o = (t ?? {}) as JsonBody;
    return { Key: reqString(o, 'Key'), Value: optString(o, 'Value') ?? '' };
  });
}

export function checkLength(member: string, v: string, min: number, max: number): void {
  if (v.length < min) throw validation(member, `Member must have length greater than or equal to ${min}`);
  if (v.length > max) throw validation(member, `Member must have length less than or equal to ${max}`);
}

export function checkRange(member: string, v: number, min: number, max: number): void {
  if (v < min) throw validation(member, `Member must have value greater than or equal to ${min}`);
  if (v > max) throw validation(member, `Member must have value less than or equal to ${max}`);
}

/** JSON-protocol timestamps are epoch seconds (numbers); ISO strings make the SDK throw. */
export function epochSeconds(ms: number): number {
  return ms / 1000;
}

export function dropUndefined<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}
