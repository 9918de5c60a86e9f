import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import type { OwnerRef } from '../db/desired.js';

/**
 * Finalizers on owner rows say which controllers may still hold cloud resources for the
 * owner. A controller adds its finalizer before its first create and removes it once its
 * resource is confirmed gone; the owner is purged when none are left.
 */
export class Finalizers {
  constructor(private readonly db: Db) {}

  async add(owner: OwnerRef, name: string): Promise<void> {
    const table = owner.kind === 'org' ? sql`orgs` : sql`workspaces`;
    await this.db.execute(
      sql`UPDATE ${table} SET finalizers = array_append(finalizers, ${name}) WHERE id = ${owner.id} AND NOT (${name} = ANY(finalizers))`,
    );
  }

  async remove(owner: OwnerRef, name: string): Promise<void> {
    const table = owner.kind === 'org' ? sql`orgs` : sql`workspaces`;
    await this.db.execute(
      sql`UPDATE ${table} SET finalizers = array_remove(finalizers, ${name}) WHERE id = ${owner.id}`,
    );
  }
}
