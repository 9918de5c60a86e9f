import { and, asc, eq, getTableColumns, inArray, isNull, sql } from 'drizzle-orm';
import {
  type Org,
  orgs,
  reconcileStatus,
  type StatusRow,
  type Workspace,
  workspaces,
} from '../../schema/index.js';
import type { Database, Db } from './client.js';
import { type FenceProvider, fencedWrite, lockFence } from './fence.js';

/** An owner of cloud resources: the tenant (org) or one of its workspaces. */
export type OwnerKind = 'org' | 'workspace';
export interface OwnerRef {
  kind: OwnerKind;
  id: string;
}

export class SlugTakenError extends Error {
  constructor(readonly slug: string) {
    super(`slug ${slug} is taken by a live org`);
    this.name = 'SlugTakenError';
  }
}

export class OrgDeletingError extends Error {
  constructor(readonly orgId: string) {
    super(`org ${orgId} is being deleted`);
    this.name = 'OrgDeletingError';
  }
}

/**
 * Position in the org list: creation time as integer microseconds since the epoch, then id.
 * A JS Date would truncate Postgres' microseconds, and rows created within one millisecond
 * would then repeat or vanish across pages.
 */
export interface OrgPageCursor {
  createdAtMicros: string;
  id: string;
}

const isUniqueViolation = (e: unknown): boolean => {
  for (let err: unknown = e; err; err = (err as { cause?: unknown }).cause) {
    if ((err as { code?: string }).code === '23505') return true;
  }
  return false;
};

/** Reads and writes desired state: orgs and workspaces. Every write bumps `generation` (trigger) and NOTIFYs. */
export class DesiredStateRepository {
  constructor(
    private readonly db: Db,
    private readonly fence?: FenceProvider,
  ) {}

  /** The same repository, the operator's writes (purges) fenced by `fence` (fence.ts). */
  fenced(fence: FenceProvider): DesiredStateRepository {
    return new DesiredStateRepository(this.db, fence);
  }

  async createOrg(input: {
    slug: string;
    name: string;
    isCanary: boolean;
    target?: Org['target'];
  }): Promise<Org> {
    try {
      const [row] = await this.db.insert(orgs).values(input).returning();
      return row!;
    } catch (e) {
      if (isUniqueViolation(e)) throw new SlugTakenError(input.slug);
      throw e;
    }
  }

  /** The live (not purged) org holding a slug. */
  async getOrgBySlug(slug: string): Promise<Org | undefined> {
    const [row] = await this.db
      .select()
      .from(orgs)
      .where(and(eq(orgs.slug, slug), isNull(orgs.purgedAt)));
    return row;
  }

  async getOrg(id: string): Promise<Org | undefined> {
    const [row] = await this.db.select().from(orgs).where(eq(orgs.id, id));
    return row;
  }

  /** Live orgs in creation order, with an exact cursor for each row (see {@link OrgPageCursor}). */
  async listOrgsPage(limit: number, after?: OrgPageCursor): Promise<{ org: Org; cursor: OrgPageCursor }[]> {
    const micros = sql<string>`(extract(epoch from ${orgs.createdAt}) * 1000000)::bigint::text`;
    const cursor = after
      ? sql`(${orgs.createdAt}, ${orgs.id}) > (timestamptz 'epoch' + ${after.createdAtMicros}::bigint * interval '1 microsecond', ${after.id}::uuid)`
      : undefined;
    const rows = await this.db
      .select({ ...getTableColumns(orgs), createdAtMicros: micros })
      .from(orgs)
      .where(and(isNull(orgs.purgedAt), cursor))
      .orderBy(asc(orgs.createdAt), asc(orgs.id))
      .limit(limit);
    return rows.map(({ createdAtMicros, ...org }) => ({ org, cursor: { createdAtMicros, id: org.id } }));
  }

  /** Live orgs per target. */
  async orgsByTarget(): Promise<Map<string, number>> {
    const rows = await this.db
      .select({ target: orgs.target, n: sql<number>`count(*)::int` })
      .from(orgs)
      .where(isNull(orgs.purgedAt))
      .groupBy(orgs.target);
    return new Map(rows.map((r) => [r.target, r.n]));
  }

  /** The slug of every live org, by id. */
  async liveOrgSlugs(): Promise<Map<string, string>> {
    const rows = await this.db
      .select({ id: orgs.id, slug: orgs.slug })
      .from(orgs)
      .where(isNull(orgs.purgedAt));
    return new Map(rows.map((r) => [r.id, r.slug]));
  }

  async getWorkspace(id: string): Promise<Workspace | undefined> {
    const [row] = await this.db.select().from(workspaces).where(eq(workspaces.id, id));
    return row;
  }

  async listWorkspaces(orgIds: string[]): Promise<Workspace[]> {
    if (orgIds.length === 0) return [];
    return this.db
      .select()
      .from(workspaces)
      .where(and(inArray(workspaces.orgId, orgIds), isNull(workspaces.purgedAt)))
      .orderBy(asc(workspaces.createdAt), asc(workspaces.id));
  }

  async createWorkspace(input: {
    orgId: string;
    name: string;
    runtime: string;
    tier: number;
  }): Promise<Workspace> {
    const [row] = await this.db.insert(workspaces).values(input).returning();
    return row!;
  }

  /**
   * Creates a workspace only while its org is live and not being deleted. The org row is locked
   * so a concurrent {@link requestOrgDeletion} either sees the new workspace and marks it, or
   * commits first and this throws {@link OrgDeletingError}.
   */
  async createWorkspaceInLiveOrg(input: {
    orgId: string;
    name: string;
    runtime: string;
    tier: number;
  }): Promise<Workspace> {
    return this.db.transaction(async (tx) => {
      const [org] = await tx
        .select({ deletionRequestedAt: orgs.deletionRequestedAt, purgedAt: orgs.purgedAt })
        .from(orgs)
        .where(eq(orgs.id, input.orgId))
        .for('update');
      if (!org || org.deletionRequestedAt || org.purgedAt) throw new OrgDeletingError(input.orgId);
      const [row] = await tx.insert(workspaces).values(input).returning();
      return row!;
    });
  }

  /**
   * Changes an org's name or canary flag in one statement (one generation bump). A new target
   * is taken only while no controller has anything of the org's or its workspaces' in the cloud
   * (no finalizer is held): otherwise 'HasResources', and nothing changes. Undefined when the
   * org is purged or being deleted.
   */
  async updateOrgSpec(
    id: string,
    patch: { name?: string; isCanary: boolean; target: Org['target'] },
  ): Promise<Org | 'HasResources' | undefined> {
    return this.db.transaction(async (tx) => {
      const [org] = await tx.select().from(orgs).where(eq(orgs.id, id)).for('update');
      if (!org || org.deletionRequestedAt || org.purgedAt) return undefined;
      if (patch.target !== org.target) {
        const held = await tx
          .select({ id: workspaces.id })
          .from(workspaces)
          .where(
            and(
              eq(workspaces.orgId, id),
              isNull(workspaces.purgedAt),
              sql`cardinality(${workspaces.finalizers}) > 0`,
            ),
          )
          .limit(1);
        if (org.finalizers.length > 0 || held.length > 0) return 'HasResources';
      }
      const [row] = await tx.update(orgs).set(patch).where(eq(orgs.id, id)).returning();
      return row;
    });
  }

  /**
   * Changes a workspace's spec in one statement (one generation bump). Returns undefined when
   * the workspace is purged or being deleted: its spec is then frozen.
   */
  async updateWorkspaceSpec(
    id: string,
    patch: { tier?: number; powerState?: 'running' | 'stopped' },
  ): Promise<Workspace | undefined> {
    const [row] = await this.db
      .update(workspaces)
      .set(patch)
      .where(and(eq(workspaces.id, id), isNull(workspaces.deletionRequestedAt), isNull(workspaces.purgedAt)))
      .returning();
    return row;
  }

  /** Marks an org and all its live workspaces for deletion in one transaction. Idempotent. */
  async requestOrgDeletion(orgId: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx
        .update(orgs)
        .set({ deletionRequestedAt: sql`now()` })
        .where(and(eq(orgs.id, orgId), isNull(orgs.deletionRequestedAt)));
      await tx
        .update(workspaces)
        .set({ deletionRequestedAt: sql`now()` })
        .where(
          and(
            eq(workspaces.orgId, orgId),
            isNull(workspaces.deletionRequestedAt),
            isNull(workspaces.purgedAt),
          ),
        );
    });
  }

  async requestWorkspaceDeletion(id: string): Promise<void> {
    await this.db
      .update(workspaces)
      .set({ deletionRequestedAt: sql`now()` })
      .where(and(eq(workspaces.id, id), isNull(workspaces.deletionRequestedAt)));
  }

  async setOrgPowerState(orgId: string, powerState: 'running' | 'stopped'): Promise<void> {
    await this.db.update(orgs).set({ powerState }).where(eq(orgs.id, orgId));
  }

  async setWorkspacePowerState(id: string, powerState: 'running' | 'stopped'): Promise<void> {
    await this.db.update(workspaces).set({ powerState }).where(eq(workspaces.id, id));
  }

  async setWorkspaceTier(id: string, tier: number): Promise<void> {
    await this.db.update(workspaces).set({ tier }).where(eq(workspaces.id, id));
  }

  /** Marks an owner whose resources are all gone: it leaves the live set and frees its slug. */
  async purge(owner: OwnerRef): Promise<void> {
    if (owner.kind === 'org') {
      await this.db.transaction(async (tx) => {
        await tx
          .update(workspaces)
          .set({ purgedAt: sql`now()` })
          .where(and(eq(workspaces.orgId, owner.id), isNull(workspaces.purgedAt)));
        await tx
          .update(orgs)
          .set({ purgedAt: sql`now()` })
          .where(and(eq(orgs.id, owner.id), isNull(orgs.purgedAt)));
      });
    } else {
      await this.db
        .update(workspaces)
        .set({ purgedAt: sql`now()` })
        .where(and(eq(workspaces.id, owner.id), isNull(workspaces.purgedAt)));
    }
  }

  /**
   * Purges the owner only if, in the database right now, no finalizer holds it (nor, for an
   * org, any of its workspaces); returns whether it did. A reconcile deciding from rows read a
   * moment ago cannot purge an owner another controller has just started creating for, and
   * {@link Finalizers.add} refuses a purged owner: no resource outlives its owner's row.
   */
  async purgeIfReleased(owner: OwnerRef): Promise<boolean> {
    const released = (f: typeof orgs.finalizers | typeof workspaces.finalizers) => sql`cardinality(${f}) = 0`;
    if (owner.kind === 'workspace') {
      if (this.fence)
        return (
          (
            await fencedWrite(
              this.db,
              this.fence(),
              (holds) =>
                sql`UPDATE workspaces SET purged_at = now() WHERE id = ${owner.id} AND purged_at IS NULL AND cardinality(finalizers) = 0 AND ${holds} RETURNING id`,
            )
          ).length > 0
        );
      const rows = await this.db
        .update(workspaces)
        .set({ purgedAt: sql`now()` })
        .where(and(eq(workspaces.id, owner.id), isNull(workspaces.purgedAt), released(workspaces.finalizers)))
        .returning({ id: workspaces.id });
      return rows.length > 0;
    }
    const fence = this.fence?.();
    return this.db.transaction(async (tx) => {
      if (fence) await lockFence(tx, fence);
      // Locked: a finalizer added to a workspace concurrently is either seen here or finds it purged.
      const held = await tx
        .select({ finalizers: workspaces.finalizers })
        .from(workspaces)
        .where(and(eq(workspaces.orgId, owner.id), isNull(workspaces.purgedAt)))
        .for('update');
      if (held.some((w) => w.finalizers.length > 0)) return false;
      const rows = await tx
        .update(orgs)
        .set({ purgedAt: sql`now()` })
        .where(and(eq(orgs.id, owner.id), isNull(orgs.purgedAt), released(orgs.finalizers)))
        .returning({ id: orgs.id });
      if (rows.length === 0) return false;
      await tx
        .update(workspaces)
        .set({ purgedAt: sql`now()` })
        .where(and(eq(workspaces.orgId, owner.id), isNull(workspaces.purgedAt)));
      return true;
    });
  }

  async statusesFor(ownerIds: string[]): Promise<StatusRow[]> {
    if (ownerIds.length === 0) return [];
    return this.db.select().from(reconcileStatus).where(inArray(reconcileStatus.ownerId, ownerIds));
  }

  /**
   * Live owners not being deleted whose status rows are all ready (at least one row: an owner
   * no controller has looked at yet is pending, not ready).
   */
  async readyCounts(): Promise<{ orgs: number; workspaces: number }> {
    const q = (table: typeof orgs | typeof workspaces) =>
      this.db
        .select({ n: sql<number>`count(*)::int` })
        .from(table)
        .where(
          and(
            isNull(table.purgedAt),
            isNull(table.deletionRequestedAt),
            sql`EXISTS (SELECT 1 FROM ${reconcileStatus} s WHERE s.owner_id = ${table.id})`,
            sql`NOT EXISTS (SELECT 1 FROM ${reconcileStatus} s WHERE s.owner_id = ${table.id} AND NOT s.ready)`,
          ),
        );
    const [[o], [w]] = await Promise.all([q(orgs), q(workspaces)]);
    return { orgs: o!.n, workspaces: w!.n };
  }

  /** Counts for /cp/admin/stats and the desired_objects gauge. */
  async counts(): Promise<{
    orgs: { total: number; deleting: number };
    workspaces: { total: number; deleting: number };
  }> {
    const q = (table: typeof orgs | typeof workspaces) =>
      this.db
        .select({
          total: sql<number>`count(*)::int`,
          deleting: sql<number>`count(*) FILTER (WHERE ${table.deletionRequestedAt} IS NOT NULL)::int`,
        })
        .from(table)
        .where(isNull(table.purgedAt));
    const [[o], [w]] = await Promise.all([q(orgs), q(workspaces)]);
    return { orgs: o!, workspaces: w! };
  }
}

/**
 * Every owner that is not purged (deleting ones included), orgs with their target: what a full
 * resync walks. One statement, each set one JSON array of pairs (tens of thousands of rows:
 * drizzle's per-row mapping cost more than the query).
 */
export async function liveOwners(database: Pick<Database, 'query'>): Promise<{
  orgs: { id: string; target: Org['target'] }[];
  workspaces: { id: string; orgId: string }[];
}> {
  const [row] = await database.query<{
    orgs: [string, Org['target']][] | null;
    workspaces: [string, string][] | null;
  }>(
    `SELECT
       (SELECT json_agg(json_build_array(id, target)) FROM orgs WHERE purged_at IS NULL) AS orgs,
       (SELECT json_agg(json_build_array(id, org_id)) FROM workspaces WHERE purged_at IS NULL) AS workspaces`,
  );
  return {
    orgs: (row?.orgs ?? []).map(([id, target]) => ({ id, target })),
    workspaces: (row?.workspaces ?? []).map(([id, orgId]) => ({ id, orgId })),
  };
}
