import { z } from 'zod';
import { redeploy } from '../../../controllers/index.js';
import { PinsCache } from '../../db/pins.js';
import { RolloutRepository } from '../../db/rollouts.js';
import { fleetOf, loadRollouts } from '../../runtime/rollouts.js';
import type { App, RouteContext } from '../context.js';
import { ApiError, notFound } from '../errors.js';
import { errors, RedeployAccepted, RolloutsView } from '../responses.js';
import { SLUG_PATTERN, SlugParams } from '../schemas.js';

const tags = ['admin'];

/** `registry/name[:tag][@sha256:…]`, loosely: what a resume can name. */
const IMAGE_REF =
  /^[a-z0-9]+([._-][a-z0-9]+)*(:\d+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)+(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$/;

const ResumeBody = z.strictObject({
  image: z
    .string()
    .max(300)
    .regex(IMAGE_REF, 'expected an image reference such as ghcr.io/org/name:tag')
    .meta({ description: 'The image whose paused rollout resumes' }),
});

const FleetBody = z
  .strictObject({
    runtime: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a runtime name')
      .optional()
      .meta({ description: 'Only workspaces of this runtime' }),
  })
  .optional();

/** Redeploy requests and rollout state (DESIGN §8, §11). */
export function registerRolloutRoutes(app: App, { config, database, desired }: RouteContext): void {
  const repo = new RolloutRepository(database.db);
  const pins = new PinsCache(database.db, 0);
  const liveOrg = async (slug: string) => {
    const org = SLUG_PATTERN.test(slug) ? await desired.getOrgBySlug(slug) : undefined;
    if (!org) throw notFound(`org ${JSON.stringify(slug)}`);
    if (org.deletionRequestedAt) throw new ApiError(409, 'OrgDeleting', 'the org is being deleted');
    return org;
  };
  const orgErrors = errors(
    [404, 'No live org has this slug'],
    [409, 'OrgDeleting: the org is being deleted'],
  );

  const view = () => loadRollouts(repo, pins, config, Date.now(), redeploy.name);

  app.post(
    '/cp/admin/tenants/:slug/redeploy',
    {
      schema: {
        tags,
        operationId: 'redeployTenant',
        summary: "Redeploy an org's tenant: pull its image again and recreate the container (never a reboot)",
        params: SlugParams,
        response: { 202: RedeployAccepted, ...orgErrors },
      },
    },
    async (request, reply) => {
      const org = await liveOrg(request.params.slug);
      const requested = (await repo.requestOrgRedeploy(org.id)) ? 1 : 0;
      return reply.code(202).send({ requested });
    },
  );

  app.post(
    '/cp/admin/tenants/:slug/workspaces/redeploy',
    {
      schema: {
        tags,
        operationId: 'redeployTenantWorkspaces',
        summary: "Redeploy every live workspace of an org (each pulls its runtime's image again)",
        params: SlugParams,
        response: { 202: RedeployAccepted, ...orgErrors },
      },
    },
    async (request, reply) => {
      const org = await liveOrg(request.params.slug);
      return reply.code(202).send({ requested: await repo.requestWorkspacesRedeploy(org.id) });
    },
  );

  app.post(
    '/cp/admin/tenants/workspaces/redeploy-fleet',
    {
      schema: {
        tags,
        operationId: 'redeployWorkspaceFleet',
        summary: 'Redeploy every live workspace (or those of one runtime), canary orgs first',
        body: FleetBody,
        response: {
          202: RedeployAccepted,
          ...errors([400, 'ValidationFailed (field errors in details), InvalidJson or BadRequest']),
        },
      },
    },
    async (request, reply) => {
      const requested = await repo.requestWorkspacesRedeploy(undefined, request.body?.runtime);
      return reply.code(202).send({ requested });
    },
  );

  app.get(
    '/cp/admin/rollouts',
    {
      schema: {
        tags,
        operationId: 'listRollouts',
        summary: 'Image rollouts: stage, owners per state, failures, pause',
        response: { 200: RolloutsView },
      },
    },
    async () => view(),
  );

  app.post(
    '/cp/admin/rollouts/resume',
    {
      schema: {
        tags,
        operationId: 'resumeRollout',
        summary: 'Resume the paused rollout of an image: its failures so far no longer count',
        body: ResumeBody,
        response: {
          200: RolloutsView,
          ...errors(
            [400, 'ValidationFailed (field errors in details), InvalidJson or BadRequest'],
            [404, 'No owner is rolling out this image'],
          ),
        },
      },
    },
    async (request) => {
      const { image } = request.body;
      const [rows, current] = await Promise.all([repo.fleet(redeploy.name), pins.get()]);
      const members = fleetOf(rows, config, current).filter((m) => m.image === image);
      if (members.length === 0) throw notFound(`rollout of ${JSON.stringify(image)}`);
      const failures = members.flatMap((m) => (m.failedAt === undefined ? [] : [m.failedAt]));
      await repo.resume(image, failures.length > 0 ? Math.max(...failures) : undefined);
      return view();
    },
  );
}
