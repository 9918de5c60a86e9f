import { and, eq, sql } from 'drizzle-orm';
import { type AuditRow, reconcileStatus, type StatusRow, tenantResources } from '../../schema/index.js';
import type { Db } from './client.js';
import type { OwnerKind } from './desired.js';

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

/** Per-(controller, owner) status rows and the audit trail. Each controller writes only its own rows. */
export class StatusRepository {
  constructor(private readonly db: Db) {}

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
    await this.db
      .insert(reconcileStatus)
      .values({ ...key, ...patch })
      .onConflictDoUpdate({
        target: [reconcileStatus.controller, reconcileStatus.ownerId],
        set: { ...patch, updatedAt: sql`now()` },
      });
  }

  async audit(entries: AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.db.insert(tenantResources).values(entries.map((e) => ({ ...e, details: e.details ?? {} })));
  }
}
