import { placementFor } from '../../cloud/targets.js';
import { SlugTakenError } from '../../db/desired.js';
import type { App, RouteContext } from '../context.js';
import { decodeCursor, encodeCursor, OrgCursor } from '../cursor.js';
import { ApiError, notFound } from '../errors.js';
import { loadOrgViews, presentOrg, presentWorkspace } from '../present.js';
import { errors, OrgPage, OrgView, WorkspaceView } from '../responses.js';
import {
  CreateWorkspaceBody,
  createOrgBody,
  PageQuery,
  PatchOrgBody,
  SLUG_PATTERN,
  SlugParams,
} from '../schemas.js';
import { reservedSlugs } from '../slugs.js';

const tags = ['orgs'];
const orgNotFound: [number, string] = [404, 'No live org has this slug'];
const orgDeleting: [number, string] = [409, 'OrgDeleting: the org is being deleted'];
const invalid: [number, string] = [
  400,
  'ValidationFailed (field errors in details), InvalidJson or BadRequest',
];
const body: [number, string][] = [
  [413, 'PayloadTooLarge: the body is over 16 KiB'],
  [415, 'UnsupportedMediaType: bodies are application/json'],
];

export function registerOrgRoutes(app: App, { config, desired }: RouteContext): void {
  const liveOrg = async ({ slug }: { slug: string }) => {
    // Not a slug: no such org. It never reaches PostgreSQL, which fails on a NUL byte (a 500).
    const org = SLUG_PATTERN.test(slug) ? await desired.getOrgBySlug(slug) : undefined;
    if (!org) throw notFound(`org ${JSON.stringify(slug)}`);
    return org;
  };
  const CreateOrgBody = createOrgBody(reservedSlugs(config));

  app.post(
    '/cp/orgs',
    {
      schema: {
        tags,
        operationId: 'createOrg',
        summary: 'Create an org',
        description:
          'Placed in its target when created: `canary` for a canary org when the canary target is configured, else `primary`.',
        body: CreateOrgBody,
        response: {
          201: OrgView,
          ...errors(
            invalid,
            [
              409,
              'SlugTaken: a live org holds the slug; SlugBeingReleased: the org holding it is being deleted, the slug is free once it is purged',
            ],
            ...body,
          ),
        },
      },
    },
    async (request, reply) => {
      const { slug, name, isCanary = false } = request.body;
      const spec = { slug, name: name ?? slug, isCanary, target: placementFor(config, isCanary) };
      // A live duplicate slug is decided by the unique index, not a pre-check (no race).
      let org: Awaited<ReturnType<typeof desired.createOrg>>;
      try {
        org = await desired.createOrg(spec);
      } catch (e) {
        if (!(e instanceof SlugTakenError)) throw e;
        const holder = await desired.getOrgBySlug(slug);
        // Purged between the insert and this read: the slug is free now.
        if (!holder) org = await desired.createOrg(spec);
        else if (holder.deletionRequestedAt) {
          throw new ApiError(
            409,
            'SlugBeingReleased',
            `slug ${slug} is being released: the org holding it is being deleted, and the slug can be taken once its deletion completes`,
          );
        } else throw e;
      }
      return reply
        .code(201)
        .header('location', `/cp/orgs/${org.slug}`)
        .send(presentOrg(org, [], []));
    },
  );

  app.get(
    '/cp/orgs',
    {
      schema: {
        tags,
        operationId: 'listOrgs',
        summary: 'List live orgs, oldest first',
        querystring: PageQuery,
        response: { 200: OrgPage, ...errors(invalid) },
      },
    },
    async (request) => {
      const query = request.query;
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
    },
  );

  app.get(
    '/cp/orgs/:slug',
    {
      schema: {
        tags,
        operationId: 'getOrg',
        summary: 'Read an org with its workspaces, conditions and resource ids',
        params: SlugParams,
        response: { 200: OrgView, ...errors(orgNotFound) },
      },
    },
    async (request) => {
      const [view] = await loadOrgViews(desired, [await liveOrg(request.params)]);
      return view!;
    },
  );

  app.patch(
    '/cp/orgs/:slug',
    {
      schema: {
        tags,
        operationId: 'updateOrg',
        summary: 'Change an org: name, canary flag',
        params: SlugParams,
        body: PatchOrgBody,
        response: {
          200: OrgView,
          ...errors(
            invalid,
            orgNotFound,
            [
              409,
              'OrgDeleting; TargetChangeRequiresRecreate: isCanary would move an org whose resources exist to another target',
            ],
            ...body,
          ),
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
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
      return reply.code(200).send(view!);
    },
  );

  app.delete(
    '/cp/orgs/:slug',
    {
      schema: {
        tags,
        operationId: 'deleteOrg',
        summary: 'Delete an org: the cascade starts (idempotent); 404 once purged',
        params: SlugParams,
        response: { 202: OrgView, ...errors(orgNotFound) },
      },
    },
    async (request, reply) => {
      const org = await liveOrg(request.params);
      // Idempotent: a second DELETE while the cascade runs answers 202 again.
      await desired.requestOrgDeletion(org.id);
      const [view] = await loadOrgViews(desired, [(await desired.getOrg(org.id))!]);
      return reply.code(202).send(view!);
    },
  );

  app.post(
    '/cp/orgs/:slug/workspaces',
    {
      schema: {
        tags: ['workspaces'],
        operationId: 'createWorkspace',
        summary: 'Create a workspace in an org',
        params: SlugParams,
        body: CreateWorkspaceBody,
        response: { 201: WorkspaceView, ...errors(invalid, orgNotFound, orgDeleting, ...body) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const org = await liveOrg(request.params);
      if (org.deletionRequestedAt) throw new ApiError(409, 'OrgDeleting', 'the org is being deleted');
      const ws = await desired.createWorkspaceInLiveOrg({
        orgId: org.id,
        name: body.name ?? body.runtime,
        runtime: body.runtime,
        tier: body.tier,
      });
      return reply.code(201).header('location', `/cp/workspaces/${ws.id}`).send(presentWorkspace(ws, []));
    },
  );
}
