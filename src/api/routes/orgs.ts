import { placementFor } from '../../cloud/targets.js';
import { reservedSlugs } from '../../provisioning/slugs.js';
import type { App, RouteContext } from '../context.js';
import { decodeCursor, encodeCursor, OrgCursor } from '../cursor.js';
import { ApiError, notFound } from '../errors.js';
import { loadOrgViews, presentOrg, presentWorkspace } from '../present.js';
import {
  CreateOrgBody,
  CreateWorkspaceBody,
  PageQuery,
  PatchOrgBody,
  parseInput,
  SLUG_PATTERN,
  SlugParams,
} from '../schemas.js';

export function registerOrgRoutes(app: App, { config, desired }: RouteContext): void {
  const reserved = reservedSlugs(config);
  const liveOrg = async (params: unknown) => {
    const { slug } = parseInput(SlugParams, params, 'params');
    // Not a slug: no such org. It never reaches PostgreSQL, which fails on a NUL byte (a 500).
    const org = SLUG_PATTERN.test(slug) ? await desired.getOrgBySlug(slug) : undefined;
    if (!org) throw notFound(`org ${JSON.stringify(slug)}`);
    return org;
  };

  app.post('/cp/orgs', async (request, reply) => {
    const body = parseInput(CreateOrgBody, request.body, 'body');
    if (reserved.has(body.slug))
      throw new ApiError(400, 'ValidationFailed', 'invalid request body', [
        { path: 'body.slug', message: 'is reserved: it is, or looks like, a hostname of the platform' },
      ]);
    // A live duplicate slug surfaces as SlugTakenError → 409, decided by the unique index, not a pre-check.
    const isCanary = body.isCanary ?? false;
    const org = await desired.createOrg({
      slug: body.slug,
      name: body.name ?? body.slug,
      isCanary,
      target: placementFor(config, isCanary),
    });
    return reply
      .code(201)
      .header('location', `/cp/orgs/${org.slug}`)
      .send(presentOrg(org, [], []));
  });

  app.get('/cp/orgs', async (request) => {
    const query = parseInput(PageQuery, request.query, 'query');
    const after = query.cursor === undefined ? undefined : decodeCursor(OrgCursor, query.cursor);
    // One extra row says whether another page exists without a count query.
    const rows = await desired.listOrgsPage(query.limit + 1, after);
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return {
      items: await loadOrgViews(
        desired,
        page.map((r) => r.org),
      ),
      nextCursor:
        rows.length > query.limit && last
          ? encodeCursor([last.cursor.createdAtMicros, last.cursor.id])
          : null,
    };
  });

  app.get('/cp/orgs/:slug', async (request) => {
    const [view] = await loadOrgViews(desired, [await liveOrg(request.params)]);
    return view;
  });

  app.patch('/cp/orgs/:slug', async (request, reply) => {
    const body = parseInput(PatchOrgBody, request.body, 'body');
    const org = await liveOrg(request.params);
    if (org.deletionRequestedAt) throw new ApiError(409, 'OrgDeleting', 'the org is being deleted');
    const isCanary = body.isCanary ?? org.isCanary;
    // Placement follows isCanary only while the org has nothing in the cloud: moving a tenant
    // between accounts would replace its machine and its data.
    const target = isCanary === org.isCanary ? org.target : placementFor(config, isCanary);
    const updated = await desired.updateOrgSpec(org.id, {
      ...(body.name !== undefined ? { name: body.name } : {}),
      isCanary,
      target,
    });
    if (updated === 'HasResources') {
      throw new ApiError(
        409,
        'TargetChangeRequiresRecreate',
        `the org's resources live in the ${org.target} target; moving them to ${target} would replace its machine and data: delete the org and create it again`,
      );
    }
    if (!updated) throw new ApiError(409, 'OrgDeleting', 'the org is being deleted');
    const [view] = await loadOrgViews(desired, [updated]);
    return reply.code(200).send(view);
  });

  app.delete('/cp/orgs/:slug', async (request, reply) => {
    const org = await liveOrg(request.params);
    // Idempotent: a second DELETE while the cascade runs answers 202 again.
    await desired.requestOrgDeletion(org.id);
    const [view] = await loadOrgViews(desired, [(await desired.getOrg(org.id))!]);
    return reply.code(202).send(view);
  });

  app.post('/cp/orgs/:slug/workspaces', async (request, reply) => {
    const body = parseInput(CreateWorkspaceBody, request.body, 'body');
    const org = await liveOrg(request.params);
    if (org.deletionRequestedAt) throw new ApiError(409, 'OrgDeleting', 'the org is being deleted');
    const ws = await desired.createWorkspaceInLiveOrg({
      orgId: org.id,
      name: body.name ?? body.runtime,
      runtime: body.runtime,
      tier: body.tier,
    });
    return reply.code(201).header('location', `/cp/workspaces/${ws.id}`).send(presentWorkspace(ws, []));
  });
}
