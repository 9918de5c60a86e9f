import type { Workspace } from '../../../schema/index.js';
import type { App, RouteContext } from '../context.js';
import { ApiError, notFound } from '../errors.js';
import { loadWorkspaceView } from '../present.js';
import { errors, WorkspaceView } from '../responses.js';
import { IdParams, PatchWorkspaceBody } from '../schemas.js';

const tags = ['workspaces'];
const wsNotFound: [number, string] = [404, 'No live workspace has this id'];
const wsDeleting: [number, string] = [409, 'WorkspaceDeleting: its spec is frozen until it is purged'];
const invalid: [number, string] = [
  400,
  'ValidationFailed (field errors in details), InvalidJson or BadRequest',
];

export function registerWorkspaceRoutes(app: App, { desired }: RouteContext): void {
  const liveWorkspace = async ({ id }: { id: string }) => {
    const ws = await desired.getWorkspace(id);
    if (!ws || ws.purgedAt) throw notFound(`workspace ${id}`);
    return ws;
  };

  // A spec change on a workspace being deleted is refused: its spec is frozen until purge.
  const changeSpec = async (ws: Workspace, patch: { tier?: number; powerState?: 'running' | 'stopped' }) => {
    const updated = await desired.updateWorkspaceSpec(ws.id, patch);
    if (!updated) throw new ApiError(409, 'WorkspaceDeleting', 'the workspace is being deleted');
    return loadWorkspaceView(desired, updated);
  };

  app.get(
    '/cp/workspaces/:id',
    {
      schema: {
        tags,
        operationId: 'getWorkspace',
        summary: 'Read a workspace with its conditions and resource ids',
        params: IdParams,
        response: { 200: WorkspaceView, ...errors(invalid, wsNotFound) },
      },
    },
    async (request) => loadWorkspaceView(desired, await liveWorkspace(request.params)),
  );

  app.delete(
    '/cp/workspaces/:id',
    {
      schema: {
        tags,
        operationId: 'deleteWorkspace',
        summary: 'Delete a workspace (idempotent); 404 once purged',
        params: IdParams,
        response: { 202: WorkspaceView, ...errors(invalid, wsNotFound) },
      },
    },
    async (request, reply) => {
      const ws = await liveWorkspace(request.params);
      await desired.requestWorkspaceDeletion(ws.id);
      return reply.code(202).send(await loadWorkspaceView(desired, (await desired.getWorkspace(ws.id))!));
    },
  );

  app.patch(
    '/cp/workspaces/:id',
    {
      schema: {
        tags,
        operationId: 'updateWorkspace',
        summary: 'Change tier and/or desired power state (one generation)',
        params: IdParams,
        body: PatchWorkspaceBody,
        response: {
          202: WorkspaceView,
          ...errors(
            invalid,
            wsNotFound,
            wsDeleting,
            [413, 'PayloadTooLarge: the body is over 16 KiB'],
            [415, 'UnsupportedMediaType: bodies are application/json'],
          ),
        },
      },
    },
    async (request, reply) => {
      const ws = await liveWorkspace(request.params);
      return reply.code(202).send(await changeSpec(ws, request.body));
    },
  );

  for (const [action, powerState] of [
    ['stop', 'stopped'],
    ['start', 'running'],
  ] as const) {
    app.post(
      `/cp/workspaces/:id/${action}`,
      {
        schema: {
          tags,
          operationId: `${action}Workspace`,
          summary: `${action === 'stop' ? 'Stop' : 'Start'} a workspace (desired power state; idempotent)`,
          params: IdParams,
          response: { 202: WorkspaceView, ...errors(invalid, wsNotFound, wsDeleting) },
        },
      },
      async (request, reply) => {
        const ws = await liveWorkspace(request.params);
        return reply.code(202).send(await changeSpec(ws, { powerState }));
      },
    );
  }
}
