import { sql } from 'drizzle-orm';
import { orgs, rolloutResumes, workspaces } from '../../schema/index.js';
import type { RedeployRecord } from '../provisioning/rollout.js';
import type { Db } from './client.js';
import type { OwnerKind } from './desired.js';

/** One owner as a rollout sees it: its row's facts and what its redeploy controller recorded. */
export interface RolloutRow {
  ownerKind: OwnerKind;
  ownerId: string;
  orgId: string;
  canary: boolean;
  /** The workspace's runtime; null for a tenant. */
  runtime: string | null;
  redeployGeneration: number;
  record: RedeployRecord;
  /** The redeploy controller's condition. */
  ready: boolean;
  reason: string;
  message: string;
}

type RawRow = {
  owner_kind: OwnerKind;
  owner_id: string;
  org_id: string;
  canary: boolean;
  runtime: string | null;
  redeploy_generation: number;
  state: RedeployRecord | null;
  ready: boolean;
  reason: string;
  message: string;
};

const rowsOf = <T>(result: unknown): T[] => (result as { rows: T[] }).rows;

/**
 * Rollout state (DESIGN §11): the fleet as the redeploy controller recorded it, explicit
 * redeploy requests (the redeploy generation on org and workspace rows) and resumes of paused
 * rollouts.
 */
export class RolloutRepository {
  constructor(private readonly db: Db) {}

  /** Every live owner the redeploy controller (`controller`) has a status row for. */
  async fleet(controller: string): Promise<RolloutRow[]> {
    const rows = rowsOf<RawRow>(
      await this.db.execute(sql`
        SELECT 'org' AS owner_kind, o.id AS owner_id, o.id AS org_id, o.is_canary AS canary, NULL AS runtime,
               o.redeploy_generation, s.state, s.ready, s.reason, s.message
          FROM orgs o JOIN reconcile_status s ON s.owner_id = o.id AND s.controller = ${controller}
         WHERE o.purged_at IS NULL AND o.deletion_requested_at IS NULL
        UNION ALL
        SELECT 'workspace', w.id, w.org_id, o.is_canary, w.runtime,
               w.redeploy_generation, s.state, s.ready, s.reason, s.message
          FROM workspaces w
          JOIN orgs o ON o.id = w.org_id
          JOIN reconcile_status s ON s.owner_id = w.id AND s.controller = ${controller}
         WHERE w.purged_at IS NULL AND w.deletion_requested_at IS NULL AND o.deletion_requested_at IS NULL`),
    );
    return rows.map((r) => ({
      ownerKind: r.owner_kind,
      ownerId: r.owner_id,
      orgId: r.org_id,
      canary: r.canary,
      runtime: r.runtime,
      redeployGeneration: Number(r.redeploy_generation),
      record: r.state ?? {},
      ready: r.ready,
      reason: r.reason,
      message: r.message,
    }));
  }

  /** When each image's rollout was last resumed. */
  async resumes(): Promise<Map<string, number>> {
    const rows = await this.db.select().from(rolloutResumes);
    return new Map(rows.map((r) => [r.image, r.resumedAt.getTime()]));
  }

  /**
   * Resumes the rollout of an image: every failure recorded so far no longer counts. The
   * resume is stamped after the last of them (`failedUntil`), so a clock of the operator's
   * that runs ahead of the database's cannot keep old failures counting.
   */
  async resume(image: string, failedUntil?: number): Promise<Date> {
    const at =
      failedUntil === undefined
        ? sql`now()`
        : sql`greatest(now(), ${new Date(failedUntil + 1).toISOString()}::timestamptz)`;
    const [row] = await this.db
      .insert(rolloutResumes)
      .values({ image, resumedAt: at })
      .onConflictDoUpdate({ target: rolloutResumes.image, set: { resumedAt: at } })
      .returning();
    return row!.resumedAt;
  }

  /** An explicit redeploy of an org's tenant; false when the org is not live. */
  async requestOrgRedeploy(orgId: string): Promise<boolean> {
    const rows = await this.db
      .update(orgs)
      .set({ redeployGeneration: sql`${orgs.redeployGeneration} + 1` })
      .where(sql`${orgs.id} = ${orgId} AND ${orgs.purgedAt} IS NULL AND ${orgs.deletionRequestedAt} IS NULL`)
      .returning({ id: orgs.id });
    return rows.length > 0;
  }

  /** An explicit redeploy of the live workspaces of one org (all orgs when absent); how many. */
  async requestWorkspacesRedeploy(orgId?: string, runtime?: string): Promise<number> {
    const rows = await this.db
      .update(workspaces)
      .set({ redeployGeneration: sql`${workspaces.redeployGeneration} + 1` })
      .where(
        sql`${workspaces.purgedAt} IS NULL AND ${workspaces.deletionRequestedAt} IS NULL
            ${orgId === undefined ? sql`` : sql`AND ${workspaces.orgId} = ${orgId}`}
            ${runtime === undefined ? sql`` : sql`AND ${workspaces.runtime} = ${runtime}`}`,
      )
      .returning({ id: workspaces.id });
    return rows.length;
  }
}
