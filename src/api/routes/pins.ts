import type { FastifyRequest } from 'fastify';
import type { PinKey } from '../../db/pins.js';
import type { App, RouteContext } from '../context.js';
import { decodeCursor, encodeCursor, PinChangeCursor } from '../cursor.js';
import { notFound } from '../errors.js';
import { presentAmiPinSet, presentImagePinSet, presentPinChange, presentPinList } from '../present-pins.js';
import {
  AmiPinChange,
  errors,
  PinChangePage,
  PinList,
  PinRemoval,
  RuntimeImagePinChange,
} from '../responses.js';
import {
  AmiPinParams,
  PinAuditQuery,
  RuntimePinParams,
  SetAmiBody,
  SetRuntimeImageBody,
} from '../schemas.js';

const tags = ['pins'];

/**
 * Who changed a pin, for the audit trail. Tokens carry no identity of their own yet (there is one
 * admin token): every API change is recorded as `api`.
 */
const actorOf = (_request: FastifyRequest): string => 'api';

/**
 * Runtime image and AMI pins (DESIGN §8, §11). Values are validated before anything is written;
 * a change and its audit row commit together, and the pin tables' triggers wake the
 * controllers, which queue the owners the pin applies to.
 */
export function registerPinRoutes(app: App, { pins }: RouteContext): void {
  app.get(
    '/cp/admin/pins',
    {
      schema: {
        tags,
        operationId: 'listPins',
        summary: 'Every runtime image pin and AMI pin',
        response: { 200: PinList },
      },
    },
    async () => presentPinList(await pins.list()),
  );

  app.put(
    '/cp/admin/pins/runtime-images/:runtime',
    {
      schema: {
        tags,
        operationId: 'setRuntimeImagePin',
        summary: "Pin a runtime's container image (`tenant` pins the tenant's)",
        params: RuntimePinParams,
        body: SetRuntimeImageBody,
        response: {
          200: RuntimeImagePinChange,
          201: RuntimeImagePinChange,
          ...errors([400, 'ValidationFailed: unknown runtime, or not an image reference (field errors)']),
        },
      },
    },
    async (request, reply) => {
      const { runtime } = request.params;
      const change = await pins.set({ pin: 'runtime_image', runtime }, request.body.image, actorOf(request));
      return reply.code(change.before === undefined ? 201 : 200).send(presentImagePinSet(runtime, change));
    },
  );

  app.delete(
    '/cp/admin/pins/runtime-images/:runtime',
    {
      schema: {
        tags,
        operationId: 'unsetRuntimeImagePin',
        summary: "Remove a runtime's image pin: it falls back to the configured image",
        params: RuntimePinParams,
        response: {
          200: PinRemoval,
          ...errors([400, 'ValidationFailed: unknown runtime'], [404, 'The runtime has no image pin']),
        },
      },
    },
    async (request) => {
      const { runtime } = request.params;
      const change = await pins.unset({ pin: 'runtime_image', runtime }, actorOf(request));
      if (!change.changed) throw notFound(`image pin of ${JSON.stringify(runtime)}`);
      return { runtime, previous: change.before! };
    },
  );

  app.put(
    '/cp/admin/pins/amis/:runtime/:region',
    {
      schema: {
        tags,
        operationId: 'setAmiPin',
        summary: 'Pin the AMI new instances of a runtime launch from in a region',
        params: AmiPinParams,
        body: SetAmiBody,
        response: {
          200: AmiPinChange,
          201: AmiPinChange,
          ...errors([400, 'ValidationFailed: unknown runtime, bad region or AMI id (field errors)']),
        },
      },
    },
    async (request, reply) => {
      const { runtime, region } = request.params;
      const key: PinKey = { pin: 'ami', runtime, region };
      const change = await pins.set(key, request.body.amiId, actorOf(request));
      return reply
        .code(change.before === undefined ? 201 : 200)
        .send(presentAmiPinSet(runtime, region, change));
    },
  );

  app.delete(
    '/cp/admin/pins/amis/:runtime/:region',
    {
      schema: {
        tags,
        operationId: 'unsetAmiPin',
        summary: "Remove a runtime's AMI pin in a region: new launches use EC2_AMI",
        params: AmiPinParams,
        response: {
          200: PinRemoval,
          ...errors(
            [400, 'ValidationFailed: unknown runtime or bad region'],
            [404, 'The runtime has no AMI pin in that region'],
          ),
        },
      },
    },
    async (request) => {
      const { runtime, region } = request.params;
      const change = await pins.unset({ pin: 'ami', runtime, region }, actorOf(request));
      if (!change.changed) throw notFound(`AMI pin of ${JSON.stringify(runtime)} in ${region}`);
      return { runtime, region, previous: change.before! };
    },
  );

  app.get(
    '/cp/admin/pins/audit',
    {
      schema: {
        tags,
        operationId: 'listPinChanges',
        summary: 'The pin audit trail, newest first',
        querystring: PinAuditQuery,
        response: { 200: PinChangePage, ...errors([400, 'ValidationFailed (field errors in details)']) },
      },
    },
    async (request) => {
      const query = request.query;
      const beforeId = query.cursor === undefined ? undefined : decodeCursor(PinChangeCursor, query.cursor);
      const rows = await pins.audit(query.limit + 1, beforeId === undefined ? {} : { beforeId });
      const page = rows.slice(0, query.limit);
      const last = page.at(-1);
      return {
        items: page.map(presentPinChange),
        nextCursor: rows.length > query.limit && last ? encodeCursor([last.id]) : null,
      };
    },
  );
}
