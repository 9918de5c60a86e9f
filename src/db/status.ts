import { and, eq, sql } from 'drizzle-orm';
import { type AuditRow, reconcileStatus, type StatusRow, tenantResources } from '../../schema/index.js';
import type { Db } from './client.js';
import type { OwnerKind } from './desired.js';
import { type FenceProvider, fencedInsert } from './fence.js';

export type StatusPatch = Partial<
  Pick<
    StatusRow,
    | 'ready'
    | 'reason'
    | 'message'
    | 'observedGeneration'
    | 'externalIds'
    | 'state'
    | 'pending'
    | 'attempts'
    | 'lastError'
    | 'nextAttemptAt'
    | 'lastReconciledAt'
  >
>;

export type AuditEntry = Omit<AuditRow, 'id' | 'at' | 'details'> & { details?: Record<string, unknown> };

/**
 * Per-(controller, owner) status rows and the audit trail. Each controller writes only its own
 * rows. With a fence (the reconciler's), every write commits only under the lease term it was
 * decided in (fence.ts).
 */
export class StatusRepository {
  constructor(
    private readonly db: Db,
    private readonly fence?: FenceProvider,
  ) {}

  /** The same repository, its writes fenced by `fence`. */
  fenced(fence: FenceProvider): StatusRepository {
    return new StatusRepository(this.db, fence);
  }

  async get(controller: string, ownerId: string): Promise<StatusRow | undefined> {
    const [row] = await this.db
      .select()
      .from(reconcileStatus)
      .where(and(eq(reconcileStatus.controller, controller), eq(reconcileStatus.ownerId, ownerId)));
    return row;
  }

  async upsert(
    key: { controller: string; ownerId: string; ownerKind: OwnerKind; orgId: string },
    patch: StatusPatch,
  ): Promise<void> {
    if (this.fence) {
      await fencedInsert(this.db, this.fence(), reconcileStatus, [{ ...key, ...patch }], {
        target: [reconcileStatus.controller, reconcileStatus.ownerId],
        update: Object.keys(patch).filter((k) => patch[k as keyof StatusPatch] !== undefined),
        also: sql`updated_at = now()`,
      });
      return;
    }
    await this.db
      .insert(reconcileStatus)
      .values({ ...key, ...patch })
      .onConflictDoUpdate({
        target: [reconcileStatus.controller, reconcileStatus.ownerId],
        set: { ...patch, updatedAt: sql`now()` },
      });
  }

  /**
   * Owners whose deletion was requested more than 10 minutes ago and whose resource a
   * controller still holds (its row is not `Deleted`), counted per controller.
   */
  async stuckDeletions(): Promise<Map<string, number>> {
    const result = await this.db.execute(
      sql`SELECT s.controller, count(*)::int AS n
            FROM reconcile_status s
            JOIN orgs o ON o.id = s.org_id
            LEFT JOIN workspaces w ON w.id = s.owner_id
           WHERE s.reason <> 'Deleted'
             AND COALESCE(w.purged_at, o.purged_at) IS NULL
             AND LEAST(COALESCE(w.deletion_requested_at, 'infinity'), COALESCE(o.deletion_requested_at, 'infinity')) < now() - interval '10 minutes'
           GROUP BY s.controller`,
    );
    const rows = (result as unknown as { rows: { controller: string; n: number }[] }).rows;
    return new Map(rows.map((r) => [r.controller, Number(r.n)]));
  }

  async audit(entries: AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const rows = entries.map((e) => ({ ...e, details: e.details ?? {} }));
    if (this.fence) await fencedInsert(this.db, this.fence(), tenantResources, rows);
    else await this.db.insert(tenantResources).values(rows);
  }
}
