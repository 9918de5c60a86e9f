import { sql } from 'drizzle-orm';
import type { Db } from './client.js';
import type { OwnerRef } from './desired.js';
import { type FenceProvider, fencedWrite } from './fence.js';

/**
 * Finalizers on owner rows say which controllers may still hold cloud resources for the
 * owner. A controller adds its finalizer before its first create and removes it once its
 * resource is confirmed gone; the owner is purged when none are left.
 */
export class FinalizerRepository {
  constructor(
    private readonly db: Db,
    private readonly fence?: FenceProvider,
  ) {}

  /** The same repository, its writes fenced by `fence` (fence.ts). */
  fenced(fence: FenceProvider): FinalizerRepository {
    return new FinalizerRepository(this.db, fence);
  }

  /** Runs an UPDATE … WHERE <cond> RETURNING id, behind the fence when there is one. */
  private async update(write: (holds: ReturnType<typeof sql>) => ReturnType<typeof sql>): Promise<unknown[]> {
    if (this.fence) return fencedWrite(this.db, this.fence(), write);
    return rowsOf(await this.db.execute(write(sql`true`)));
  }

  /**
   * Adds a finalizer. False when the owner is already purged: then nothing may be created for
   * it. (A purge only happens with no finalizer left, so an owner holding one is never purged.)
   */
  async add(owner: OwnerRef, name: string): Promise<boolean> {
    const table = owner.kind === 'org' ? sql`orgs` : sql`workspaces`;
    const added = await this.update(
      (holds) =>
        sql`UPDATE ${table} SET finalizers = array_append(finalizers, ${name}) WHERE id = ${owner.id} AND purged_at IS NULL AND NOT (${name} = ANY(finalizers)) AND ${holds} RETURNING id`,
    );
    if (added.length > 0) return true;
    const live = await this.db.execute(
      sql`SELECT id FROM ${table} WHERE id = ${owner.id} AND purged_at IS NULL`,
    );
    return rowsOf(live).length > 0;
  }

  async remove(owner: OwnerRef, name: string): Promise<void> {
    const table = owner.kind === 'org' ? sql`orgs` : sql`workspaces`;
    await this.update(
      (holds) =>
        sql`UPDATE ${table} SET finalizers = array_remove(finalizers, ${name}) WHERE id = ${owner.id} AND ${holds} RETURNING id`,
    );
  }
}

const rowsOf = (result: unknown): unknown[] => (result as { rows?: unknown[] }).rows ?? [];
