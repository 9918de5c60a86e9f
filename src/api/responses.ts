import { z } from 'zod';

/**
 * What the API answers, as zod schemas: the OpenAPI description is generated from them and
 * the presenters' return types (present.ts) are inferred from them, so the two cannot drift.
 * They document; responses are not validated at runtime. A schema with an `id` becomes a named
 * component (`#/components/schemas/<id>`) that operations refer to.
 */

const timestamp = z.iso.datetime();
const powerState = z.enum(['running', 'stopped']);

export const ConditionView = z
  .object({
    controller: z.string(),
    ready: z.boolean(),
    reason: z.string().meta({ description: 'CamelCase reason, e.g. WaitingForSecret' }),
    message: z.string(),
    observedGeneration: z.int(),
    lastReconciledAt: timestamp.nullable(),
  })
  .meta({ id: 'Condition', description: "One controller's view of an owner" });

export const StatusView = z
  .object({
    ready: z.boolean(),
    reason: z
      .string()
      .meta({ description: 'Ready, Pending, Deleting, or the reason of the first condition not ready' }),
    conditions: z.array(ConditionView).meta({ description: 'One per controller, in dependency order' }),
    resources: z.record(z.string(), z.record(z.string(), z.string())).meta({
      description: 'External ids each controller recorded (tunnel id, instance id, …), by controller',
    }),
  })
  .meta({ id: 'Status', description: 'Overall readiness and the per-controller conditions' });

export const WorkspaceView = z
  .object({
    id: z.uuid(),
    orgId: z.uuid(),
    name: z.string(),
    runtime: z.string(),
    tier: z
      .int()
      .meta({ description: 'As requested (1–10); provisioning clamps it to the tiers that exist' }),
    powerState,
    generation: z.int(),
    deletionRequestedAt: timestamp.nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
    status: StatusView,
  })
  .meta({ id: 'Workspace', description: 'A workspace' });

export const OrgView = z
  .object({
    id: z.uuid(),
    slug: z.string(),
    name: z.string(),
    isCanary: z.boolean(),
    target: z
      .enum(['primary', 'canary'])
      .meta({ description: 'Where its AWS resources live; decided when the org is created' }),
    powerState,
    generation: z.int(),
    deletionRequestedAt: timestamp.nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
    status: StatusView,
    workspaces: z.array(WorkspaceView),
  })
  .meta({ id: 'Org', description: 'An org (tenant) with its live workspaces' });

export const OrgPage = z
  .object({
    items: z.array(OrgView),
    nextCursor: z
      .string()
      .nullable()
      .meta({ description: 'Pass as ?cursor= for the next page; null on the last' }),
  })
  .meta({ id: 'OrgPage', description: 'A page of orgs, oldest first' });

const kindCounts = z.record(z.string(), z.int());

export const Stats = z
  .object({
    orgs: z.int(),
    workspaces: z.int(),
    ready: z.object({ orgs: z.int(), workspaces: z.int() }),
    deleting: z.object({ orgs: z.int(), workspaces: z.int() }),
    orphans: kindCounts.meta({
      description: 'Open orphans by resource kind (every kind present, 0 when none)',
    }),
  })
  .meta({ id: 'Stats', description: 'Fleet counts' });

export const OrphanView = z
  .object({
    id: z.int(),
    kind: z.string(),
    externalId: z.string(),
    env: z.string(),
    ownerKind: z.string().nullable(),
    ownerId: z.string().nullable(),
    reason: z.string(),
    details: z.record(z.string(), z.unknown()),
    firstSeen: timestamp,
    lastSeen: timestamp,
    resolvedAt: timestamp.nullable(),
    deletedAt: timestamp.nullable(),
  })
  .meta({ id: 'Orphan', description: 'An orphan ledger entry' });

export const OrphanPage = z
  .object({ items: z.array(OrphanView), nextCursor: z.string().nullable() })
  .meta({ id: 'OrphanPage', description: 'A page of the orphan ledger' });

export const RuntimeImagePinView = z
  .object({
    runtime: z.string().meta({ description: 'A workspace runtime, or `tenant` for the tenant instance' }),
    image: z.string().meta({ description: 'registry/name[:tag][@sha256:…]' }),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .meta({ id: 'RuntimeImagePin', description: 'The container image every instance of a runtime runs' });

export const AmiPinView = z
  .object({
    runtime: z.string().meta({ description: 'A workspace runtime, or `tenant` for the tenant instance' }),
    region: z.string(),
    amiId: z.string(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .meta({ id: 'AmiPin', description: 'The AMI new instances of a runtime launch from in a region' });

export const PinList = z
  .object({ runtimeImages: z.array(RuntimeImagePinView), amis: z.array(AmiPinView) })
  .meta({ id: 'PinList', description: 'Every pin; a runtime without one uses the configured default' });

const pinChangeFields = {
  changed: z
    .boolean()
    .meta({ description: 'false when the pin already held this value: nothing was written' }),
  previous: z
    .string()
    .nullable()
    .meta({ description: 'The value before this request; null when there was no pin' }),
};

export const RuntimeImagePinChange = RuntimeImagePinView.extend(pinChangeFields).meta({
  id: 'RuntimeImagePinChange',
  description: 'A runtime image pin after it was set',
});

export const AmiPinChange = AmiPinView.extend(pinChangeFields).meta({
  id: 'AmiPinChange',
  description: 'An AMI pin after it was set',
});

export const PinRemoval = z
  .object({
    runtime: z.string(),
    region: z.string().optional().meta({ description: 'AMI pins only' }),
    previous: z.string().meta({ description: 'The value the pin held' }),
  })
  .meta({ id: 'PinRemoval', description: 'A pin that was removed: the runtime falls back to the default' });

export const PinChangeView = z
  .object({
    id: z.int(),
    pin: z.enum(['runtime_image', 'ami']),
    runtime: z.string(),
    region: z.string().nullable().meta({ description: 'AMI pins only' }),
    action: z.enum(['set', 'unset']),
    oldValue: z.string().nullable(),
    newValue: z.string().nullable(),
    actor: z
      .string()
      .meta({ description: "The API token's identity (`api` for the admin token), or `cli:<user>`" }),
    at: timestamp,
  })
  .meta({ id: 'PinChange', description: 'An audit row: one change of one pin' });

export const PinChangePage = z
  .object({ items: z.array(PinChangeView), nextCursor: z.string().nullable() })
  .meta({ id: 'PinChangePage', description: 'A page of the pin audit trail, newest first' });

export const Health = z.object({ status: z.literal('ok') }).meta({ description: 'The process is alive' });

export const Readiness = z
  .object({
    status: z.enum(['ok', 'unavailable']),
    checks: z.object({ database: z.enum(['ok', 'unreachable']) }),
  })
  .meta({ description: 'Whether the database answers' });

export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'Stable, CamelCase: ValidationFailed, SlugTaken, …' }),
      message: z.string(),
      details: z
        .array(
          z.object({
            path: z
              .string()
              .meta({ description: 'body.slug, query.limit, params.id; body for the body as a whole' }),
            message: z.string(),
          }),
        )
        .optional()
        .meta({ description: 'Every problem of the request (ValidationFailed)' }),
    }),
  })
  .meta({ id: 'Error', description: 'Error: a stable code, a message for people, field errors' });

/** Named components: every schema above with an `id`, by id. */
/** Redeploys and rollouts (DESIGN §11). */
export const RedeployAccepted = z
  .object({
    requested: z.int().meta({ description: 'Owners whose redeploy generation was bumped' }),
  })
  .meta({
    id: 'RedeployAccepted',
    description: 'Redeploy requested: the same image is pulled again, canary orgs first (DESIGN §11)',
  });

export const RolloutView = z
  .object({
    image: z.string(),
    imageKind: z.enum(['tenant', 'workspace']),
    stage: z.enum(['canary', 'soaking', 'rolling', 'paused', 'done']),
    paused: z.boolean(),
    failures: z
      .int()
      .meta({ description: 'Owners whose redeploy of the image failed since it was last resumed' }),
    counts: z.object({
      done: z.int(),
      pending: z.int(),
      in_flight: z.int(),
      failed: z.int(),
      stopped: z.int(),
    }),
    soakEndsAt: z.iso.datetime().nullable(),
    resumedAt: z.iso.datetime().nullable(),
    failed: z
      .array(
        z.object({
          ownerKind: z.enum(['org', 'workspace']),
          ownerId: z.string(),
          orgId: z.string(),
          reason: z.string(),
          message: z.string().meta({ description: 'The command status and the tail of its stderr' }),
        }),
      )
      .meta({ description: 'Owners whose last redeploy of the image failed (at most 50)' }),
  })
  .meta({ id: 'Rollout', description: 'The rollout of one image' });

export const RolloutsView = z
  .object({
    policy: z.object({ canarySoakSeconds: z.number(), maxInFlight: z.int(), maxFailures: z.int() }),
    inFlight: z.int(),
    rollouts: z.array(RolloutView),
  })
  .meta({ id: 'Rollouts', description: 'Image rollouts: where each stands, what is paused' });

export const COMPONENTS: Record<string, z.ZodType> = Object.fromEntries(
  [
    ConditionView,
    StatusView,
    WorkspaceView,
    OrgView,
    OrgPage,
    Stats,
    OrphanView,
    OrphanPage,
    RuntimeImagePinView,
    AmiPinView,
    PinList,
    RuntimeImagePinChange,
    AmiPinChange,
    PinRemoval,
    PinChangeView,
    PinChangePage,
    RedeployAccepted,
    RolloutView,
    RolloutsView,
    ErrorBody,
  ].map((s) => [z.globalRegistry.get(s)!.id!, s]),
);

const errorDescriptions = new WeakMap<z.ZodType, string>();

/** The description of an error response made by {@link errors}, or undefined. */
export const errorDescription = (schema: z.ZodType) => errorDescriptions.get(schema);

/**
 * Response entries for the errors a route can answer, each described for the reader; all of
 * them have the {@link ErrorBody} shape.
 */
export function errors(...entries: [status: number, description: string][]) {
  return Object.fromEntries(
    entries.map(([status, description]) => {
      const schema = ErrorBody.meta({ description });
      errorDescriptions.set(schema, description);
      return [status, schema];
    }),
  ) as Record<number, typeof ErrorBody>;
}
