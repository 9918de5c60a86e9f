import type { Org, StatusRow, Workspace } from '../../schema/index.js';

/*
 * Reading orgs, workspaces and status rows with raw SQL (Database.query) where drizzle's per-row
 * mapping costs too much CPU (a resync reads every row). Each `*_ROW` expression turns one row
 * into a JSON array, and its map function turns that array into exactly the object drizzle's
 * `select()` yields: camelCase keys in column order, every column present, null for SQL NULL.
 * Aggregated with json_agg, a whole result arrives as one JSON value, which the driver parses in
 * one go rather than field by field.
 *
 * The expressions name the table's columns unqualified: use them with that table (or a CTE of
 * its rows) as the only FROM item.
 *
 * What this keeps identical to drizzle, on node-postgres and PGlite alike:
 * - Timestamps are sent as text and parsed with `new Date(text)`, as drizzle does (it turns the
 *   drivers' own timestamp parsing off). node-postgres' parser disagrees with it on years 0-99
 *   and on offsets with seconds; PGlite's would return Infinity for 'infinity'.
 * - A jsonb value that is a JSON string is parsed once more, as drizzle does.
 * - integer stays a number, text[] an array (bigint would need care: node-postgres returns it
 *   as a string, PGlite as a number; none of these columns is one).
 */

const jsonArray = (columns: string[]) => `json_build_array(${columns.join(', ')})`;
const timestamp = (column: string) => `${column}::text`;

/** An org row as a JSON array, read by {@link mapOrg}. */
export const ORG_ROW = jsonArray([
  'id',
  'slug',
  'name',
  'is_canary',
  'power_state',
  'generation',
  timestamp('deletion_requested_at'),
  'finalizers',
  timestamp('purged_at'),
  timestamp('created_at'),
  timestamp('updated_at'),
]);

export type OrgTuple = [
  id: string,
  slug: string,
  name: string,
  isCanary: boolean,
  powerState: Org['powerState'],
  generation: number,
  deletionRequestedAt: string | null,
  finalizers: string[],
  purgedAt: string | null,
  createdAt: string,
  updatedAt: string,
];

/** A workspace row as a JSON array, read by {@link mapWorkspace}. */
export const WORKSPACE_ROW = jsonArray([
  'id',
  'org_id',
  'name',
  'runtime',
  'tier',
  'power_state',
  'generation',
  timestamp('deletion_requested_at'),
  'finalizers',
  timestamp('purged_at'),
  timestamp('created_at'),
  timestamp('updated_at'),
]);

export type WorkspaceTuple = [
  id: string,
  orgId: string,
  name: string,
  runtime: string,
  tier: number,
  powerState: Workspace['powerState'],
  generation: number,
  deletionRequestedAt: string | null,
  finalizers: string[],
  purgedAt: string | null,
  createdAt: string,
  updatedAt: string,
];

/** A reconcile_status row as a JSON array, read by {@link mapStatus}. */
export const STATUS_ROW = jsonArray([
  'controller',
  'owner_id',
  'owner_kind',
  'org_id',
  'ready',
  'reason',
  'message',
  'observed_generation',
  'external_ids',
  'state',
  'pending',
  'attempts',
  'last_error',
  timestamp('next_attempt_at'),
  timestamp('last_reconciled_at'),
  timestamp('created_at'),
  timestamp('updated_at'),
]);

export type StatusTuple = [
  controller: string,
  ownerId: string,
  ownerKind: StatusRow['ownerKind'],
  orgId: string,
  ready: boolean,
  reason: string,
  message: string,
  observedGeneration: number,
  externalIds: unknown,
  state: unknown,
  pending: unknown,
  attempts: number,
  lastError: string | null,
  nextAttemptAt: string | null,
  lastReconciledAt: string | null,
  createdAt: string,
  updatedAt: string,
];

const date = (text: string | null): Date | null => (text === null ? null : new Date(text));

function json<T>(value: unknown): T {
  if (typeof value === 'string') {
    try {
      return JSON.parse(value) as T;
    } catch {
      return value as T;
    }
  }
  return value as T;
}

export function mapOrg(r: OrgTuple): Org {
  return {
    id: r[0],
    slug: r[1],
    name: r[2],
    isCanary: r[3],
    powerState: r[4],
    generation: r[5],
    deletionRequestedAt: date(r[6]),
    finalizers: r[7],
    purgedAt: date(r[8]),
    createdAt: new Date(r[9]),
    updatedAt: new Date(r[10]),
  };
}

export function mapWorkspace(r: WorkspaceTuple): Workspace {
  return {
    id: r[0],
    orgId: r[1],
    name: r[2],
    runtime: r[3],
    tier: r[4],
    powerState: r[5],
    generation: r[6],
    deletionRequestedAt: date(r[7]),
    finalizers: r[8],
    purgedAt: date(r[9]),
    createdAt: new Date(r[10]),
    updatedAt: new Date(r[11]),
  };
}

export function mapStatus(r: StatusTuple): StatusRow {
  return {
    controller: r[0],
    ownerId: r[1],
    ownerKind: r[2],
    orgId: r[3],
    ready: r[4],
    reason: r[5],
    message: r[6],
    observedGeneration: r[7],
    externalIds: json(r[8]),
    state: json(r[9]),
    pending: json(r[10]),
    attempts: r[11],
    lastError: r[12],
    nextAttemptAt: date(r[13]),
    lastReconciledAt: date(r[14]),
    createdAt: new Date(r[15]),
    updatedAt: new Date(r[16]),
  };
}
