import type { z } from 'zod';
import { registry } from '../../controllers/index.js';
import type { Org, OrphanRow, StatusRow, Workspace } from '../../schema/index.js';
import type { DesiredStateRepository } from '../db/desired.js';
import type * as views from './responses.js';

export type ConditionView = z.output<typeof views.ConditionView>;
export type StatusView = z.output<typeof views.StatusView>;
export type WorkspaceView = z.output<typeof views.WorkspaceView>;
export type OrgView = z.output<typeof views.OrgView>;
export type OrphanView = z.output<typeof views.OrphanView>;

// Conditions are listed in dependency order so "the first one not ready" is the one blocking.
const controllerRank = (name: string) => registry.rank(name);

/**
 * Overall status of an owner from its per-controller rows: `Deleting` while deletion runs,
 * `Pending` before any controller has reported, else the first not-ready condition's reason,
 * else `Ready`.
 */
export function summarizeStatus(rows: readonly StatusRow[], deleting: boolean): StatusView {
  const sorted = [...rows].sort(
    (a, b) =>
      controllerRank(a.controller) - controllerRank(b.controller) || a.controller.localeCompare(b.controller),
  );
  const conditions = sorted.map((r) => ({
    controller: r.controller,
    ready: r.ready,
    reason: r.reason,
    message: r.message,
    observedGeneration: r.observedGeneration,
    lastReconciledAt: iso(r.lastReconciledAt),
  }));
  const resources = Object.fromEntries(sorted.map((r) => [r.controller, { ...r.externalIds }]));
  const blocking = conditions.find((c) => !c.ready);
  const [ready, reason] = deleting
    ? [false, 'Deleting']
    : conditions.length === 0
      ? [false, 'Pending']
      : blocking
        ? [false, blocking.reason]
        : [true, 'Ready'];
  return { ready, reason, conditions, resources };
}

export function presentWorkspace(ws: Workspace, rows: readonly StatusRow[]): WorkspaceView {
  return {
    id: ws.id,
    orgId: ws.orgId,
    name: ws.name,
    runtime: ws.runtime,
    tier: ws.tier,
    powerState: ws.powerState,
    generation: ws.generation,
    deletionRequestedAt: iso(ws.deletionRequestedAt),
    createdAt: ws.createdAt.toISOString(),
    updatedAt: ws.updatedAt.toISOString(),
    status: summarizeStatus(rows, ws.deletionRequestedAt !== null),
  };
}

export function presentOrg(
  org: Org,
  workspaces: readonly WorkspaceView[],
  rows: readonly StatusRow[],
): OrgView {
  return {
    id: org.id,
    slug: org.slug,
    name: org.name,
    isCanary: org.isCanary,
    target: org.target,
    powerState: org.powerState,
    generation: org.generation,
    deletionRequestedAt: iso(org.deletionRequestedAt),
    createdAt: org.createdAt.toISOString(),
    updatedAt: org.updatedAt.toISOString(),
    status: summarizeStatus(rows, org.deletionRequestedAt !== null),
    workspaces: [...workspaces],
  };
}

/** Orgs with their live workspaces and every status row, in two queries however many orgs. */
export async function loadOrgViews(
  desired: DesiredStateRepository,
  orgs: readonly Org[],
): Promise<OrgView[]> {
  const workspaces = await desired.listWorkspaces(orgs.map((o) => o.id));
  const statuses = groupBy(
    await desired.statusesFor([...orgs.map((o) => o.id), ...workspaces.map((w) => w.id)]),
    (r) => r.ownerId,
  );
  const byOrg = groupBy(
    workspaces.map((w) => presentWorkspace(w, statuses.get(w.id) ?? [])),
    (w) => w.orgId,
  );
  return orgs.map((org) => presentOrg(org, byOrg.get(org.id) ?? [], statuses.get(org.id) ?? []));
}

export async function loadWorkspaceView(
  desired: DesiredStateRepository,
  ws: Workspace,
): Promise<WorkspaceView> {
  return presentWorkspace(ws, await desired.statusesFor([ws.id]));
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const list = groups.get(key(item));
    if (list) list.push(item);
    else groups.set(key(item), [item]);
  }
  return groups;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** An orphan ledger row as the API and `molecule-operator orphans --json` show it. */
export function presentOrphan(row: OrphanRow): OrphanView {
  return {
    id: row.id,
    kind: row.kind,
    externalId: row.externalId,
    env: row.env,
    ownerKind: row.ownerKind,
    ownerId: row.ownerId,
    reason: row.reason,
    details: row.details,
    firstSeen: row.firstSeen.toISOString(),
    lastSeen: row.lastSeen.toISOString(),
    resolvedAt: row.resolvedAt?.toISOString() ?? null,
    deletedAt: row.deletedAt?.toISOString() ?? null,
  };
}
