import { and, asc, eq, gt, inArray, isNull, sql } from 'drizzle-orm';
import {
  type OrphanRow,
  orgs,
  orphans,
  reconcileStatus,
  tenantResources,
  workspaces,
} from '../../schema/index.js';
import type { Db } from './client.js';
import { type Fence, lockFence } from './fence.js';
import type { AuditEntry } from './status.js';

/** An org or workspace row, as far as the orphan scan cares. */
export interface OwnerRow {
  id: string;
  /** Set for workspaces. */
  orgId?: string;
  /** Set for orgs: the target its resources live in. */
  target?: string;
  deletionRequestedAt: Date | null;
  purgedAt: Date | null;
}

export interface Owners {
  orgs: OwnerRow[];
  workspaces: OwnerRow[];
}

/** The part of a status row the orphan scan's duplicate checks read. */
export interface StatusRef {
  controller: string;
  ownerId: string;
  externalIds: Record<string, string>;
  pending: unknown;
}

/** One orphan a scan found, as the ledger records it. */
export interface LedgerEntry {
  kind: string;
  externalId: string;
  reason: string;
  ownerKind: 'org' | 'workspace' | undefined;
  ownerId: string | undefined;
  orgId: string | undefined;
  name: string | undefined;
  details: Record<string, unknown>;
  /** The target whose account holds it; absent for Cloudflare objects. */
  target?: string | undefined;
}

/** A found orphan with its ledger row: when its current continuous sighting began, and the last decision. */
export type Sighted<E extends LedgerEntry> = E & {
  ledgerId: number;
  firstSeen: Date;
  /** The last decision audited for this row, so a repeated decision is not audited every scan. */
  decision: string | undefined;
};

const keyOf = (kind: string, externalId: string) => `${kind}\u0000${externalId}`;
const CHUNK = 5_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const uuidOrNull = (v: string | undefined) => (v && UUID.test(v) ? v : null);
const open = () => and(isNull(orphans.resolvedAt), isNull(orphans.deletedAt));

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/**
 * The orphan ledger (one row per continuous sighting of an orphan) and the audit entries its
 * changes leave: what the orphan scan writes, and what the API and CLI show.
 */
export class OrphanLedger {
  /** @param controller the name the audit trail records for the scan's entries */
  constructor(
    private readonly db: Db,
    private readonly controller = 'orphan',
    private readonly fence?: () => Fence | undefined,
  ) {}

  /**
   * The same ledger, its writes fenced by `fence` (fence.ts): a scan by a stale leader writes
   * nothing. A provider answering undefined leaves the write unfenced (a one-off report scan by
   * a process that campaigns for no lease, such as `molecule-operator orphans --scan`).
   */
  fenced(fence: () => Fence | undefined): OrphanLedger {
    return new OrphanLedger(this.db, this.controller, fence);
  }

  /** A write transaction: with a fence, the lease row is locked first and held until it commits. */
  private write<T>(fn: (tx: Parameters<Parameters<Db['transaction']>[0]>[0]) => Promise<T>): Promise<T> {
    const fence = this.fence?.();
    return this.db.transaction(async (tx) => {
      if (fence) await lockFence(tx, fence);
      return fn(tx);
    });
  }

  /** Ledger rows in id order after `afterId`; open ones only (neither resolved nor deleted) unless `all`. */
  async list(limit: number, options: { afterId?: number; all?: boolean } = {}): Promise<OrphanRow[]> {
    return this.db
      .select()
      .from(orphans)
      .where(
        and(
          options.afterId === undefined ? undefined : gt(orphans.id, options.afterId),
          options.all ? undefined : open(),
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
      .where(options.open === false ? undefined : open())
      .orderBy(asc(orphans.firstSeen), asc(orphans.id));
  }

  /** Open orphans per kind. Kinds with none are absent. */
  async openCountsByKind(): Promise<Record<string, number>> {
    const rows = await this.db
      .select({ kind: orphans.kind, n: sql<number>`count(*)::int` })
      .from(orphans)
      .where(open())
      .groupBy(orphans.kind);
    return Object.fromEntries(rows.map((r) => [r.kind, r.n]));
  }

  /**
   * Owners as the scan classifies against them: every org and workspace row (purged ones too,
   * so a resource of a purged owner reads as the owner gone), or only those with these ids.
   */
  async owners(ids?: string[]): Promise<Owners> {
    if (ids?.length === 0) return { orgs: [], workspaces: [] };
    const ws = await this.db
      .select({
        id: workspaces.id,
        orgId: workspaces.orgId,
        deletionRequestedAt: workspaces.deletionRequestedAt,
        purgedAt: workspaces.purgedAt,
      })
      .from(workspaces)
      .where(ids ? inArray(workspaces.id, ids) : undefined);
    const orgIds = ids ? [...new Set([...ids, ...ws.map((w) => w.orgId)])] : undefined;
    const og = await this.db
      .select({
        id: orgs.id,
        deletionRequestedAt: orgs.deletionRequestedAt,
        purgedAt: orgs.purgedAt,
        target: orgs.target,
      })
      .from(orgs)
      .where(orgIds ? inArray(orgs.id, orgIds) : undefined);
    return { orgs: og, workspaces: ws };
  }

  /** What these controllers' status rows record (of these owners, or all). */
  async statusRefs(controllers: readonly string[], ownerIds?: string[]): Promise<StatusRef[]> {
    if (ownerIds?.length === 0) return [];
    return this.db
      .select({
        controller: reconcileStatus.controller,
        ownerId: reconcileStatus.ownerId,
        externalIds: reconcileStatus.externalIds,
        pending: reconcileStatus.pending,
      })
      .from(reconcileStatus)
      .where(
        and(
          inArray(reconcileStatus.controller, [...controllers]),
          ownerIds ? inArray(reconcileStatus.ownerId, ownerIds) : undefined,
        ),
      );
  }

  /**
   * Brings the ledger in line with one scan of `env` in one target, in one transaction: rows for
   * what was found stay open (first_seen kept, last_seen now), new orphans get rows, and open
   * rows this scan covers (a scanned kind, in the target scanned; Cloudflare objects in no target)
   * that it no longer found are resolved. Detections and resolutions are audited.
   */
  async sync<E extends LedgerEntry>(
    env: string,
    found: E[],
    scannedKinds: readonly string[],
    at: Date,
    target: string,
    /** Kinds whose objects live in no target (Cloudflare's). */
    cloudflareKinds: readonly string[],
  ): Promise<{ open: Sighted<E>[]; detected: E[]; resolved: OrphanRow[] }> {
    return this.write(async (tx) => {
      const rows = await tx
        .select()
        .from(orphans)
        .where(and(eq(orphans.env, env), open()));
      const existing = new Map(rows.map((r) => [keyOf(r.kind, r.externalId), r]));
      const seen = new Set<string>();
      const sighted: Sighted<E>[] = [];
      const touched: number[] = [];
      const fresh: E[] = [];
      for (const o of found) {
        const key = keyOf(o.kind, o.externalId);
        if (seen.has(key)) continue;
        seen.add(key);
        const row = existing.get(key);
        if (!row) {
          fresh.push(o);
          continue;
        }
        const decision = typeof row.details.decision === 'string' ? row.details.decision : undefined;
        const details = decision ? { ...o.details, decision } : o.details;
        if (
          row.reason !== o.reason ||
          row.ownerKind !== (o.ownerKind ?? null) ||
          row.ownerId !== (o.ownerId ?? null) ||
          stableJson(row.details) !== stableJson(details)
        ) {
          await tx
            .update(orphans)
            .set({
              reason: o.reason,
              ownerKind: o.ownerKind ?? null,
              ownerId: o.ownerId ?? null,
              details,
              lastSeen: at,
            })
            .where(eq(orphans.id, row.id));
        } else touched.push(row.id);
        sighted.push({ ...o, firstSeen: row.firstSeen, ledgerId: row.id, decision });
      }
      for (const ids of chunks(touched))
        await tx.update(orphans).set({ lastSeen: at }).where(inArray(orphans.id, ids));
      for (const batch of chunks(fresh)) {
        const inserted = await tx
          .insert(orphans)
          .values(
            batch.map((o) => ({
              kind: o.kind,
              externalId: o.externalId,
              env,
              ownerKind: o.ownerKind ?? null,
              ownerId: o.ownerId ?? null,
              reason: o.reason,
              details: o.details,
              firstSeen: at,
              lastSeen: at,
              target: o.target ?? null,
            })),
          )
          .returning({ id: orphans.id, kind: orphans.kind, externalId: orphans.externalId });
        const ids = new Map(inserted.map((r) => [keyOf(r.kind, r.externalId), r.id]));
        for (const o of batch)
          sighted.push({
            ...o,
            firstSeen: at,
            ledgerId: ids.get(keyOf(o.kind, o.externalId))!,
            decision: undefined,
          });
      }
      const scanned = new Set(scannedKinds);
      const covered = (r: OrphanRow) =>
        scanned.has(r.kind) && (r.target ?? null) === (cloudflareKinds.includes(r.kind) ? null : target);
      const resolved = rows.filter((r) => covered(r) && !seen.has(keyOf(r.kind, r.externalId)));
      for (const batch of chunks(resolved)) {
        await tx
          .update(orphans)
          .set({ resolvedAt: at })
          .where(
            inArray(
              orphans.id,
              batch.map((r) => r.id),
            ),
          );
      }
      const audit = [
        ...fresh.map((o) => this.auditEntry(o, 'orphan_detected', { name: o.name, details: o.details })),
        ...resolved.map((r) =>
          this.auditEntry(
            {
              kind: r.kind,
              externalId: r.externalId,
              reason: r.reason,
              ownerKind: (r.ownerKind ?? undefined) as LedgerEntry['ownerKind'],
              ownerId: r.ownerId ?? undefined,
              orgId: undefined,
            },
            'orphan_resolved',
            { firstSeen: r.firstSeen.toISOString() },
          ),
        ),
      ];
      for (const batch of chunks(audit)) await tx.insert(tenantResources).values(batch);
      return { open: sighted, detected: fresh, resolved };
    });
  }

  /** Closes the row of an orphan the scan deleted, and audits the deletion. */
  async markDeleted(o: Sighted<LedgerEntry>, at: Date): Promise<void> {
    await this.write(async (tx) => {
      await tx
        .update(orphans)
        .set({ deletedAt: at, details: sql`${orphans.details} || '{"decision":"Deleted"}'::jsonb` })
        .where(eq(orphans.id, o.ledgerId));
      await tx
        .insert(tenantResources)
        .values(this.auditEntry(o, 'orphan_deleted', { name: o.name, firstSeen: o.firstSeen.toISOString() }));
    });
  }

  /** Audits each decision not to delete whose reason changed since the last scan, and remembers it on the row. */
  async recordDecisions(decisions: { orphan: Sighted<LedgerEntry>; why: string }[]): Promise<void> {
    const changed = decisions.filter((d) => d.orphan.decision !== d.why);
    if (changed.length === 0) return;
    await this.write(async (tx) => {
      const byWhy = new Map<string, number[]>();
      for (const d of changed) {
        const ids = byWhy.get(d.why) ?? [];
        ids.push(d.orphan.ledgerId);
        byWhy.set(d.why, ids);
      }
      for (const [why, all] of byWhy) {
        for (const ids of chunks(all)) {
          await tx
            .update(orphans)
            .set({ details: sql`${orphans.details} || jsonb_build_object('decision', ${why}::text)` })
            .where(inArray(orphans.id, ids));
        }
      }
      for (const batch of chunks(changed)) {
        await tx.insert(tenantResources).values(
          batch.map((d) =>
            this.auditEntry(d.orphan, 'orphan_delete_skipped', {
              why: d.why,
              firstSeen: d.orphan.firstSeen.toISOString(),
            }),
          ),
        );
      }
    });
    for (const d of changed) d.orphan.decision = d.why;
  }

  private auditEntry(
    o: Pick<LedgerEntry, 'kind' | 'externalId' | 'reason' | 'ownerKind' | 'ownerId' | 'orgId'>,
    action: AuditEntry['action'],
    details: Record<string, unknown>,
  ): AuditEntry & { details: Record<string, unknown> } {
    return {
      ownerKind: o.ownerKind ?? 'unknown',
      // Owner ids come from tags and may be anything: only a UUID fits the column.
      ownerId: uuidOrNull(o.ownerId),
      orgId: uuidOrNull(o.orgId),
      kind: o.kind,
      externalId: o.externalId,
      controller: this.controller,
      action,
      details: {
        reason: o.reason,
        ...(o.ownerId && !uuidOrNull(o.ownerId) ? { ownerTag: o.ownerId } : {}),
        ...details,
      },
    };
  }
}

/** JSON with sorted keys: jsonb does not keep key order, so plain stringify cannot compare. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object' && !(v instanceof Date)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
