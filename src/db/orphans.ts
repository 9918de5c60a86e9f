import { and, asc, gt, isNull, sql } from 'drizzle-orm';
import { type OrphanRow, orphans } from '../../schema/index.js';
import type { Db } from './client.js';

/** Read side of the orphan ledger: what the API and CLI show. The orphan controller writes it. */
export class OrphanLedger {
  constructor(private readonly db: Db) {}

  /** Ledger rows in id order after `afterId`; open ones only (neither resolved nor deleted) unless `all`. */
  async list(limit: number, options: { afterId?: number; all?: boolean } = {}): Promise<OrphanRow[]> {
    return this.db
      .select()
      .from(orphans)
      .where(
        and(
          options.afterId === undefined ? undefined : gt(orphans.id, options.afterId),
          options.all ? undefined : and(isNull(orphans.resolvedAt), isNull(orphans.deletedAt)),
        ),
      )
      .orderBy(asc(orphans.id))
      .limit(limit);
  }

  /** Every ledger row, oldest first seen first; open ones only unless `open` is false (CLI). */
  async listAll(options: { open?: boolean } = {}): Promise<OrphanRow[]> {
    return this.db
      .select()
      .from(orphans)
      .where(options.open === false ? undefined : and(isNull(orphans.resolvedAt), isNull(orphans.deletedAt)))
      .orderBy(asc(orphans.firstSeen), asc(orphans.id));
  }

  /** Open orphans per kind. Kinds with none are absent. */
  async openCountsByKind(): Promise<Record<string, number>> {
    const rows = await this.db
      .select({ kind: orphans.kind, n: sql<number>`count(*)::int` })
      .from(orphans)
      .where(and(isNull(orphans.resolvedAt), isNull(orphans.deletedAt)))
      .groupBy(orphans.kind);
    return Object.fromEntries(rows.map((r) => [r.kind, r.n]));
  }
}
