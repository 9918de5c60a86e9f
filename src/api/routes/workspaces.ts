import type { Workspace } from '../../../schema/index.js';
import type { App, RouteContext } from '../context.js';
import { ApiError, notFound } from '../errors.js';
import { loadWorkspaceView } from '../present.js';
import { IdParams, PatchWorkspaceBody, parseInput } from '../schemas.js';

export function registerWorkspaceRoutes(app: App, { desired }: RouteContext): void {
  const liveWorkspace = async (params: unknown) => {
    const { id } = parseInput(IdParams, params, 'params');
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

  app.get('/cp/workspaces/:id', async (request) =>
    loadWorkspaceView(desired, await liveWorkspace(request.params)),
  );

  app.delete('/cp/workspaces/:id', async (request, reply) => {
    const ws = await liveWorkspace(request.params);
    await desired.requestWorkspaceDeletion(ws.id);
    return reply.code(202).send(await loadWorkspaceView(desired, (await desired.getWorkspace(ws.id))!));
  });

  app.patch('/cp/workspaces/:id', async (request, reply) => {
    const body = parseInput(PatchWorkspaceBody, request.body, 'body');
    const ws = await liveWorkspace(request.params);
    return reply.code(202).send(await changeSpec(ws, body));
  });

  for (const [action, powerState] of [
    ['stop', 'stopped'],
    ['start', 'running'],
  ] as const) {
    app.post(`/cp/workspaces/:id/${action}`, async (request, reply) => {
      const ws = await liveWorkspace(request.params);
      return reply.code(202).send(await changeSpec(ws, { powerState }));
    });
  }
}
