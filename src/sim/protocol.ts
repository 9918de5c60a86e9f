import type { IncomingHttpHeaders } from 'node:http';
import type { SimClock } from './clock.js';
import type { FaultSettings } from './faults.js';
import type { Identities, Principal } from './iam.js';
import type { BucketSpec } from './limits.js';
import type { Rng } from './rng.js';
import type { SimState } from './state.js';

/** Shared request/response types and error classes for the service handlers. */

export type ServiceName = 'ec2' | 'secretsmanager' | 'tagging' | 'cloudflare' | 'sts' | 'ssm';

export interface SimRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: string;
  /** From the SigV4 credential scope; `us-east-1` when absent. */
  region: string;
  requestId: string;
}

export interface SimResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A parsed request, ready for the fault layer to throttle, fail or run. */
export interface Prepared {
  service: ServiceName;
  operation: string;
  mutating: boolean;
  /** What the call was about (group name, secret name, tunnel name, ...), for the call log. */
  target?: string;
  bucket?: { key: string; spec: BucketSpec };
  /** Whose rate limit the call counts against (Cloudflare: the API token). */
  limitKey?: string;
  /** For AWS calls: the caller's account and the region signed for (the call log records them). */
  account?: string;
  region?: string;
  run(): SimResponse;
  /** A throttling response; `retryAfterRealMs` is when a token will be back, in real ms. */
  throttled(retryAfterRealMs: number): SimResponse;
  /** An injected 5xx. */
  failed(): SimResponse;
}

export interface Durations {
  pending: number;
  stopping: number;
  shuttingDown: number;
  /** SSM: GetCommandInvocation answers InvocationDoesNotExist this long after SendCommand. */
  ssmInvocationVisible: number;
  /** SSM: an invocation is Pending this long, then InProgress ... */
  ssmDelivery: number;
  /** ... for this long, then Success or Failed. */
  ssmRun: number;
}

export interface SimContext {
  /** The AWS objects of the caller's account and region (Cloudflare's live in the default one). */
  state: SimState;
  /** Who made the request (the default account's administrator unless issued credentials say otherwise). */
  caller: Principal;
  identities: Identities;
  clock: SimClock;
  rng: Rng;
  durations: Durations;
  faults(): FaultSettings;
  /** Uniform in [0, 1) from the fault generator (never the id generator, so ids stay stable). */
  chance(): number;
  /** Every account and region's AWS objects (Cloudflare sees connectors in any of them). */
  states(): Iterable<SimState>;
}

/** An AWS error: EC2 renders it as XML, the JSON services as `{__type, Message}`. */
export class AwsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export interface CfErrorItem {
  code: number;
  message: string;
  error_chain?: { code: number; message: string }[];
}

/** A Cloudflare v4 error envelope with its HTTP status. */
export class CfError extends Error {
  readonly errors: CfErrorItem[];
  constructor(
    readonly status: number,
    ...errors: CfErrorItem[]
  ) {
    super(errors.map((e) => `${e.code} ${e.message}`).join('; '));
    this.errors = errors;
  }
}
