import {
  type Org,
  orgs,
  reconcileStatus,
  type StatusRow,
  type Workspace,
  workspaces,
} from '../../schema/index.js';
import type { Database } from './client.js';
import type { OwnerRef } from './desired.js';
import { jsonRow } from './rows.js';

const ORG = jsonRow(orgs);
const WORKSPACE = jsonRow(workspaces);
const STATUS = jsonRow(reconcileStatus);

const OWNED = 'owned AS (SELECT * FROM workspaces WHERE org_id = ANY((SELECT ids FROM ids)::uuid[]))';

/**
 * SHA-256 of every row of the orgs (`ids`), of all their workspaces (`owned`) and of the status
 * rows of both, whole and in a fixed order: any write to any of them changes it (rows carry
 * `updated_at`). Computed by the server; the operator receives 44 characters.
 */
const ROWS_DIGEST = `
  encode(sha256(convert_to(concat_ws('|',
    coalesce((SELECT string_agg(o::text, ',' ORDER BY o.id) FROM orgs o
      WHERE o.id = ANY((SELECT ids FROM ids)::uuid[])), ''),
    coalesce((SELECT string_agg(w::text, ',' ORDER BY w.id) FROM owned w), ''),
    coalesce((SELECT string_agg(s::text, ',' ORDER BY s.owner_id, s.controller) FROM reconcile_status s
      WHERE s.owner_id = ANY((SELECT ids FROM ids)::uuid[] || ARRAY(SELECT id FROM owned))), '')
  ), 'UTF8')), 'base64')`;

// One statement: the three sets are read at one instant, and each arrives as one JSON array
// (see rows.ts). Status rows are those of the orgs and of the live workspaces read here.
// `orgIds` is the SQL of the uuid[] of orgs to read; `digest` adds the rows' digest, taken in
// the same statement.
const loadSql = (orgIds: string, digest: boolean) => `
  WITH ids AS (SELECT ${orgIds} AS ids),
  live AS (
    SELECT * FROM workspaces WHERE org_id = ANY((SELECT ids FROM ids)::uuid[]) AND purged_at IS NULL
  )${digest ? `, ${OWNED}` : ''}
  SELECT
    (SELECT json_agg(${ORG.sql}) FROM orgs WHERE id = ANY((SELECT ids FROM ids)::uuid[])) AS orgs,
    (SELECT json_agg(${WORKSPACE.sql} ORDER BY created_at, id) FROM live) AS workspaces,
    (SELECT json_agg(${STATUS.sql}) FROM reconcile_status
      WHERE owner_id = ANY((SELECT ids FROM ids)::uuid[] || ARRAY(SELECT id FROM live))) AS status
    ${digest ? `, ${ROWS_DIGEST} AS digest` : ''}`;

const LOAD = loadSql('$1::uuid[]', true);
/** The digest of each batch ($1 the org ids, $2 each one's batch number): one statement for a whole resync. */
const DIGESTS = `
  WITH batches AS (
    SELECT n, array_agg(org_id) AS ids FROM unnest($1::uuid[], $2::int[]) AS t(org_id, n) GROUP BY n
  )
  SELECT b.n, d.digest FROM batches b,
    LATERAL (WITH ids AS (SELECT b.ids AS ids), ${OWNED} SELECT ${ROWS_DIGEST} AS digest) d`;
/** The org of one owner ($1 its kind, $2 its id): the org itself, or the workspace's org. */
const LOAD_OWNER = loadSql(
  "ARRAY[CASE WHEN $1 = 'org' THEN $2::uuid ELSE (SELECT org_id FROM workspaces WHERE id = $2::uuid) END]",
  false,
);

type LoadRow = {
  orgs: unknown[][] | null;
  workspaces: unknown[][] | null;
  status: unknown[][] | null;
  digest?: string;
};

/**
 * The desired rows and status rows of a batch of orgs (with their live workspaces), read in
 * one statement when a resync starts on the batch, so that reconciling an owner that needs
 * nothing costs no database round trip. It is a snapshot: the reconciler only ever uses it to
 * conclude that there is nothing to do, and re-reads the rows before it writes or acts
 * (runtime/reconciler.ts). A change written after the snapshot was taken NOTIFYs its own
 * reconcile, which reads fresh rows.
 */
export class DesiredSnapshot {
  private readonly orgsById = new Map<string, Org>();
  private readonly workspacesById = new Map<string, Workspace>();
  private readonly workspacesByOrg = new Map<string, Workspace[]>();
  private readonly statusByOwner = new Map<string, StatusRow[]>();

  /**
   * @param digest of the rows read, when read for a batch of orgs ({@link rowsDigest}), from
   *   the same statement (so of these very rows)
   */
  private constructor(
    o: Org[],
    w: Workspace[],
    s: StatusRow[],
    readonly digest?: string,
  ) {
    for (const org of o) this.orgsById.set(org.id, org);
    for (const ws of w) {
      this.workspacesById.set(ws.id, ws);
      const list = this.workspacesByOrg.get(ws.orgId);
      if (list) list.push(ws);
      else this.workspacesByOrg.set(ws.orgId, [ws]);
    }
    for (const row of s) {
      const list = this.statusByOwner.get(row.ownerId);
      if (list) list.push(row);
      else this.statusByOwner.set(row.ownerId, [row]);
    }
  }

  /**
   * Reads the orgs, their live workspaces (creation order) and every status row of both. Raw
   * SQL (rows.ts): a resync reads every row, and drizzle's mapping was most of its CPU.
   */
  static async load(database: Database, orgIds: string[]): Promise<DesiredSnapshot> {
    if (orgIds.length === 0) return new DesiredSnapshot([], [], [], '');
    return DesiredSnapshot.from(await database.query<LoadRow>(LOAD, [orgIds]));
  }

  /**
   * What {@link load} would find for each batch of orgs, as a digest of their rows (and of all
   * their workspaces' and status rows), in one statement: equal to the `digest` of a snapshot of
   * the batch when nothing was written since.
   */
  static async rowsDigests(database: Database, batches: readonly (readonly string[])[]): Promise<string[]> {
    const ids = batches.flat();
    const numbers = batches.flatMap((b, n) => b.map(() => n));
    const out = batches.map(() => '');
    if (ids.length === 0) return out;
    for (const row of await database.query<{ n: number; digest: string }>(DIGESTS, [ids, numbers]))
      out[row.n] = row.digest;
    return out;
  }

  /**
   * The same rows for the org of one owner (an org, or a workspace's org), in one round trip:
   * what a reconcile reads when it needs fresh rows. A workspace that is purged or unknown is
   * not in it.
   */
  static async loadOwner(database: Database, owner: OwnerRef): Promise<DesiredSnapshot> {
    return DesiredSnapshot.from(await database.query<LoadRow>(LOAD_OWNER, [owner.kind, owner.id]));
  }

  private static from([rows]: LoadRow[]): DesiredSnapshot {
    return new DesiredSnapshot(
      (rows?.orgs ?? []).map(ORG.decode),
      (rows?.workspaces ?? []).map(WORKSPACE.decode),
      (rows?.status ?? []).map(STATUS.decode),
      rows?.digest,
    );
  }

  /** True when the snapshot was taken for this org (and so for its workspaces). */
  covers(orgId: string): boolean {
    return this.orgsById.has(orgId);
  }

  org(id: string): Org | undefined {
    return this.orgsById.get(id);
  }

  workspace(id: string): Workspace | undefined {
    return this.workspacesById.get(id);
  }

  /** The org's live workspaces, in creation order (as DesiredStateRepository.listWorkspaces). */
  workspacesOf(orgId: string): Workspace[] {
    return this.workspacesByOrg.get(orgId) ?? [];
  }

  statusOf(ownerId: string): StatusRow[] {
    return this.statusByOwner.get(ownerId) ?? [];
  }
}
