import { and, inArray, isNull } from 'drizzle-orm';
import {
  type Org,
  orgs,
  reconcileStatus,
  type StatusRow,
  type Workspace,
  workspaces,
} from '../../schema/index.js';
import type { Db } from './client.js';

/**
 * The desired rows and status rows of a batch of orgs (with their live workspaces), read in
 * three queries when a resync starts on the batch, so that reconciling an owner that needs
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

  /** Reads the orgs, their live workspaces (creation order) and every status row of both. */
  static async load(db: Db, orgIds: string[]): Promise<DesiredSnapshot> {
    if (orgIds.length === 0) return new DesiredSnapshot([], [], []);
    const [o, w] = await Promise.all([
      db.select().from(orgs).where(inArray(orgs.id, orgIds)),
      db
        .select()
        .from(workspaces)
        .where(and(inArray(workspaces.orgId, orgIds), isNull(workspaces.purgedAt)))
        .orderBy(workspaces.createdAt, workspaces.id),
    ]);
    const owners = [...orgIds, ...w.map((x) => x.id)];
    const s = await db.select().from(reconcileStatus).where(inArray(reconcileStatus.ownerId, owners));
    return new DesiredSnapshot(o, w, s);
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
