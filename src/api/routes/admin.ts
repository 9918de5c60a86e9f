import { RESOURCE_KINDS } from '../../../controllers/index.js';
import type { ResourceKind } from '../../cloud/ports.js';
import type { App, RouteContext } from '../context.js';
import { decodeCursor, encodeCursor, OrphanCursor } from '../cursor.js';
import { ApiError, notFound } from '../errors.js';
import { loadOrgViews, presentOrphan } from '../present.js';
import { errors, OrgView, OrphanPage, Stats } from '../responses.js';
import { OrphanQuery, SLUG_PATTERN, SlugParams } from '../schemas.js';

const tags = ['admin'];

export function registerAdminRoutes(app: App, { desired, ledger }: RouteContext): void {
  for (const [action, powerState] of [
    ['stop', 'stopped'],
    ['start', 'running'],
  ] as const) {
    app.post(
      `/cp/admin/tenants/:slug/${action}`,
      {
        schema: {
          tags,
          operationId: `${action}Tenant`,
          summary: `${action === 'stop' ? 'Stop' : 'Start'} a tenant (desired power state; a stopped tenant stops its workspaces)`,
          params: SlugParams,
          response: {
            202: OrgView,
            ...errors([404, 'No live org has this slug'], [409, 'OrgDeleting: the org is being deleted']),
          },
        },
      },
      async (request, reply) => {
        const { slug } = request.params;
        // Not a slug: no such org. It never reaches PostgreSQL, which fails on a NUL byte (a 500).
        const org = SLUG_PATTERN.test(slug) ? await desired.getOrgBySlug(slug) : undefined;
        if (!org) throw notFound(`org ${JSON.stringify(slug)}`);
        if (org.deletionRequestedAt) throw new ApiError(409, 'OrgDeleting', 'the org is being deleted');
        // Desired state only: the instance controller stops or starts the tenant instance.
        await desired.setOrgPowerState(org.id, powerState);
        const [view] = await loadOrgViews(desired, [(await desired.getOrg(org.id))!]);
        return reply.code(202).send(view!);
      },
    );
  }

  app.get(
    '/cp/admin/stats',
    {
      schema: {
        tags,
        operationId: 'getStats',
        summary: 'Fleet counts: orgs, workspaces, ready, deleting, open orphans by kind',
        response: { 200: Stats },
      },
    },
    async () => {
      const [counts, ready, open] = await Promise.all([
        desired.counts(),
        desired.readyCounts(),
        ledger.openCountsByKind(),
      ]);
      return {
        orgs: counts.orgs.total,
        workspaces: counts.workspaces.total,
        ready,
        deleting: { orgs: counts.orgs.deleting, workspaces: counts.workspaces.deleting },
        orphans: orphanCountsByKind(open),
      };
    },
  );

  app.get(
    '/cp/admin/orphans',
    {
      schema: {
        tags,
        operationId: 'listOrphans',
        summary: 'The orphan ledger: open entries, or all with ?all=true',
        querystring: OrphanQuery,
        response: { 200: OrphanPage, ...errors([400, 'ValidationFailed (field errors in details)']) },
      },
    },
    async (request) => {
      const query = request.query;
      const afterId = query.cursor === undefined ? undefined : decodeCursor(OrphanCursor, query.cursor);
      const rows = await ledger.list(query.limit + 1, {
        all: query.all,
        ...(afterId === undefined ? {} : { afterId }),
      });
      const page = rows.slice(0, query.limit);
      const last = page.at(-1);
      return {
        items: page.map(presentOrphan),
        nextCursor: rows.length > query.limit && last ? encodeCursor([last.id]) : null,
      };
    },
  );
}

/** Every metric kind present (zero when none); kinds the ledger knows but metrics do not fold into `other`. */
function orphanCountsByKind(open: Record<string, number>): Record<ResourceKind, number> {
  const counts = Object.fromEntries(RESOURCE_KINDS.map((k) => [k, 0])) as Record<ResourceKind, number>;
  for (const [kind, n] of Object.entries(open)) {
    const key = (RESOURCE_KINDS as readonly string[]).includes(kind) ? (kind as ResourceKind) : 'other';
    counts[key] += n;
  }
  return counts;
}
