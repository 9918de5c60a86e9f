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

// One statement: the three sets are read at one instant, and each arrives as one JSON array
// (see rows.ts). Status rows are those of the orgs and of the live workspaces read here.
// `orgIds` is the SQL of the uuid[] of orgs to read.
const loadSql = (orgIds: string) => `
  WITH ids AS (SELECT ${orgIds} AS ids),
  live AS (
    SELECT * FROM workspaces WHERE org_id = ANY((SELECT ids FROM ids)::uuid[]) AND purged_at IS NULL
  )
  SELECT
    (SELECT json_agg(${ORG.sql}) FROM orgs WHERE id = ANY((SELECT ids FROM ids)::uuid[])) AS orgs,
    (SELECT json_agg(${WORKSPACE.sql} ORDER BY created_at, id) FROM live) AS workspaces,
    (SELECT json_agg(${STATUS.sql}) FROM reconcile_status
      WHERE owner_id = ANY((SELECT ids FROM ids)::uuid[] || ARRAY(SELECT id FROM live))) AS status`;

const LOAD = loadSql('$1::uuid[]');
/** The org of one owner ($1 its kind, $2 its id): the org itself, or the workspace's org. */
const LOAD_OWNER = loadSql(
  "ARRAY[CASE WHEN $1 = 'org' THEN $2::uuid ELSE (SELECT org_id FROM workspaces WHERE id = $2::uuid) END]",
);

type LoadRow = { orgs: unknown[][] | null; workspaces: unknown[][] | null; status: unknown[][] | null };

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

  private constructor(o: Org[], w: Workspace[], s: StatusRow[]) {
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
    if (orgIds.length === 0) return new DesiredSnapshot([], [], []);
    return DesiredSnapshot.from(await database.query<LoadRow>(LOAD, [orgIds]));
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
