import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

const timestamps = {
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
};

/**
 * Desired state of a tenant. `generation` is bumped by a trigger on every spec change
 * (name, is_canary, power_state, deletion); `purged_at` marks a row whose cloud resources are
 * all gone: it stays for history but no longer holds its slug.
 */
export const orgs = pgTable(
  'orgs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    slug: text('slug').notNull(),
    name: text('name').notNull(),
    isCanary: boolean('is_canary').notNull().default(false),
    powerState: text('power_state', { enum: ['running', 'stopped'] })
      .notNull()
      .default('running'),
    generation: integer('generation').notNull().default(1),
    deletionRequestedAt: timestamp('deletion_requested_at', { withTimezone: true }),
    finalizers: text('finalizers').array().notNull().default(sql`'{}'::text[]`),
    purgedAt: timestamp('purged_at', { withTimezone: true }),
    ...timestamps,
    /** Where its AWS resources live (DESIGN §10): set at creation, never changed by itself. */
    target: text('target', { enum: ['primary', 'canary'] })
      .notNull()
      .default('primary'),
    /** Bumped by an explicit redeploy request (DESIGN §11): the same tag is pulled again. */
    redeployGeneration: integer('redeploy_generation').notNull().default(0),
  },
  (t) => [
    uniqueIndex('orgs_live_slug_key').on(t.slug).where(sql`${t.purgedAt} IS NULL`),
    index('orgs_created_idx').on(t.createdAt, t.id),
    check('orgs_slug_format', sql`${t.slug} ~ '^[a-z0-9]([a-z0-9-]{1,30})[a-z0-9]$'`),
    check('orgs_power_state', sql`${t.powerState} IN ('running', 'stopped')`),
    check('orgs_target', sql`${t.target} IN ('primary', 'canary')`),
  ],
);

/** Desired state of one agent workspace inside an org. `tier` is stored as requested; clamping is a provisioning rule. */
export const workspaces = pgTable(
  'workspaces',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    orgId: uuid('org_id')
      .notNull()
      .references(() => orgs.id),
    name: text('name').notNull(),
    runtime: text('runtime').notNull(),
    tier: integer('tier').notNull(),
    powerState: text('power_state', { enum: ['running', 'stopped'] })
      .notNull()
      .default('running'),
    generation: integer('generation').notNull().default(1),
    deletionRequestedAt: timestamp('deletion_requested_at', { withTimezone: true }),
    finalizers: text('finalizers').array().notNull().default(sql`'{}'::text[]`),
    purgedAt: timestamp('purged_at', { withTimezone: true }),
    ...timestamps,
    /** Bumped by an explicit redeploy request (DESIGN §11): the same tag is pulled again. */
    redeployGeneration: integer('redeploy_generation').notNull().default(0),
  },
  (t) => [
    index('workspaces_org_idx').on(t.orgId),
    index('workspaces_created_idx').on(t.createdAt, t.id),
    check('workspaces_power_state', sql`${t.powerState} IN ('running', 'stopped')`),
  ],
);

/**
 * One row per (controller, owner): the controller's view of the owner's resource. Each
 * controller writes only its own rows. `pending` is the create-pending marker, written
 * before a create call so a lost response is adopted rather than repeated.
 */
export const reconcileStatus = pgTable(
  'reconcile_status',
  {
    controller: text('controller').notNull(),
    ownerId: uuid('owner_id').notNull(),
    ownerKind: text('owner_kind', { enum: ['org', 'workspace'] }).notNull(),
    orgId: uuid('org_id').notNull(),
    ready: boolean('ready').notNull().default(false),
    reason: text('reason').notNull().default('Pending'),
    message: text('message').notNull().default(''),
    observedGeneration: integer('observed_generation').notNull().default(0),
    externalIds: jsonb('external_ids').$type<Record<string, string>>().notNull().default({}),
    state: jsonb('state').$type<Record<string, unknown>>().notNull().default({}),
    pending: jsonb('pending').$type<{ token: string; startedAt: string } | null>(),
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }),
    lastReconciledAt: timestamp('last_reconciled_at', { withTimezone: true }),
    ...timestamps,
  },
  (t) => [
    primaryKey({ columns: [t.controller, t.ownerId] }),
    index('reconcile_status_owner_idx').on(t.ownerId),
  ],
);

/** Append-only audit of every resource created, adopted, updated, corrected, deleted or found orphaned. */
export const tenantResources = pgTable(
  'tenant_resources',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    ownerKind: text('owner_kind').notNull(),
    ownerId: uuid('owner_id'),
    orgId: uuid('org_id'),
    kind: text('kind').notNull(),
    externalId: text('external_id').notNull(),
    controller: text('controller').notNull(),
    action: text('action', {
      enum: [
        'created',
        'adopted',
        'updated',
        'drift_corrected',
        'deleted',
        'orphan_detected',
        'orphan_resolved',
        'orphan_deleted',
        'orphan_delete_skipped',
      ],
    }).notNull(),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('tenant_resources_owner_idx').on(t.ownerId, t.at),
    index('tenant_resources_external_idx').on(t.externalId),
  ],
);

/** AMI pinned for a runtime in a region (a pre-baked image); falls back to EC2_AMI. */
export const amiPins = pgTable(
  'ami_pins',
  {
    runtime: text('runtime').notNull(),
    region: text('region').notNull(),
    amiId: text('ami_id').notNull(),
    ...timestamps,
  },
  (t) => [primaryKey({ columns: [t.runtime, t.region] })],
);

/** Container image pinned for a runtime; falls back to TENANT_IMAGE / CANARY_TENANT_IMAGE. */
export const runtimeImagePins = pgTable('runtime_image_pins', {
  runtime: text('runtime').primaryKey(),
  image: text('image').notNull(),
  ...timestamps,
});

/**
 * Append-only audit of every pin change (DESIGN §11): who, which pin, the value before and after.
 * Written in the transaction that changes the pin, so neither exists without the other.
 */
export const pinChanges = pgTable(
  'pin_changes',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    pin: text('pin', { enum: ['runtime_image', 'ami'] }).notNull(),
    runtime: text('runtime').notNull(),
    /** Set for AMI pins. */
    region: text('region'),
    action: text('action', { enum: ['set', 'unset'] }).notNull(),
    oldValue: text('old_value'),
    newValue: text('new_value'),
    /** The API token's identity, `api` without one; `cli:<user>` from the CLI. */
    actor: text('actor').notNull(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('pin_changes_pin_idx').on(t.pin, t.runtime, t.region, t.id),
    check('pin_changes_pin', sql`${t.pin} IN ('runtime_image', 'ami')`),
    check('pin_changes_action', sql`${t.action} IN ('set', 'unset')`),
  ],
);

/**
 * When a paused rollout of an image was resumed (POST /cp/admin/rollouts/resume): its failed
 * redeploys from before count no more (DESIGN §11). Kept, so a pause survives a restart.
 */
export const rolloutResumes = pgTable('rollout_resumes', {
  image: text('image').primaryKey(),
  resumedAt: timestamp('resumed_at', { withTimezone: true }).notNull(),
});

/** Leader-election leases. `epoch` increases on every change of holder. */
export const leases = pgTable('leases', {
  name: text('name').primaryKey(),
  holder: text('holder').notNull(),
  epoch: bigint('epoch', { mode: 'number' }).notNull(),
  acquiredAt: timestamp('acquired_at', { withTimezone: true }).notNull(),
  renewedAt: timestamp('renewed_at', { withTimezone: true }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
});

/** Ledger of resources that are ours (tags / names) but have no live owner. */
export const orphans = pgTable(
  'orphans',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    kind: text('kind').notNull(),
    externalId: text('external_id').notNull(),
    env: text('env').notNull(),
    ownerKind: text('owner_kind'),
    ownerId: text('owner_id'),
    reason: text('reason').notNull(),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
    firstSeen: timestamp('first_seen', { withTimezone: true }).notNull(),
    lastSeen: timestamp('last_seen', { withTimezone: true }).notNull(),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
    /** The target whose account holds it; null for Cloudflare objects (one account for all). */
    target: text('target'),
  },
  (t) => [
    uniqueIndex('orphans_open_key')
      .on(t.kind, t.externalId)
      .where(sql`${t.resolvedAt} IS NULL AND ${t.deletedAt} IS NULL`),
    index('orphans_open_idx').on(t.kind, t.firstSeen),
  ],
);

export type Org = typeof orgs.$inferSelect;
export type Workspace = typeof workspaces.$inferSelect;
export type StatusRow = typeof reconcileStatus.$inferSelect;
export type AuditRow = typeof tenantResources.$inferSelect;
export type OrphanRow = typeof orphans.$inferSelect;
export type PinChangeRow = typeof pinChanges.$inferSelect;
