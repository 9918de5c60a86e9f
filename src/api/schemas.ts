import { z } from 'zod';
import { KNOWN_RUNTIMES } from '../provisioning/runtimes.js';
import { ApiError, type FieldError } from './errors.js';

/** Same rule as the orgs_slug_format check constraint: a DNS label of 3–32 characters. */
export const SLUG_PATTERN = /^[a-z0-9]([a-z0-9-]{1,30})[a-z0-9]$/;

const slug = z
  .string()
  .regex(
    SLUG_PATTERN,
    'must be 3–32 characters of a-z, 0-9 and "-", starting and ending with a letter or digit',
  )
  .meta({ description: 'DNS label of the tenant: `<slug>.<APP_DOMAIN>`' });

// Names are shown to people and copied into Name tags: printable, no control characters.
const displayName = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(100, 'must be at most 100 characters')
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters')
  .meta({ description: 'Shown to people: 1–100 characters, no control characters' });

// Any integer 1–10 is a valid request; clamping to the tiers that exist is a provisioning rule.
const tier = z
  .int('must be an integer')
  .min(1, 'must be between 1 and 10')
  .max(10, 'must be between 1 and 10');
const powerState = z.enum(['running', 'stopped'], 'must be "running" or "stopped"');

const OBJECT = 'must be a JSON object';

export const CreateOrgBody = z.strictObject(
  {
    slug,
    name: displayName.optional(),
    isCanary: z.boolean('must be true or false').optional(),
  },
  OBJECT,
);

export const PatchOrgBody = z
  .strictObject(
    { name: displayName.optional(), isCanary: z.boolean('must be true or false').optional() },
    OBJECT,
  )
  .refine((b) => b.name !== undefined || b.isCanary !== undefined, 'give at least one of name, isCanary');

export const CreateWorkspaceBody = z.strictObject(
  {
    runtime: z.enum(KNOWN_RUNTIMES, `must be one of ${KNOWN_RUNTIMES.join(', ')}`),
    tier,
    name: displayName.optional(),
  },
  OBJECT,
);

export const PatchWorkspaceBody = z
  .strictObject({ tier: tier.optional(), powerState: powerState.optional() }, OBJECT)
  .refine((b) => b.tier !== undefined || b.powerState !== undefined, 'give at least one of tier, powerState');

const limit = z
  .string()
  .regex(/^\d+$/, 'must be an integer between 1 and 200')
  .transform(Number)
  .pipe(z.int().min(1, 'must be between 1 and 200').max(200, 'must be between 1 and 200'))
  .default(50)
  .meta({ description: 'Page size, 1–200 (default 50)' });
const cursor = z.string().optional().meta({ description: 'nextCursor of the previous page' });

export const PageQuery = z.strictObject({ limit, cursor });

export const OrphanQuery = z.strictObject({
  limit,
  cursor,
  all: z
    .enum(['true', 'false'], 'must be true or false')
    .optional()
    .transform((v) => v === 'true')
    .meta({ description: 'true: resolved and deleted entries too' }),
});

export const SlugParams = z.strictObject({ slug: z.string().meta({ description: "The org's slug" }) });
export const IdParams = z.strictObject({
  id: z.guid('must be a UUID').meta({ description: 'The workspace id' }),
});

/** Validates one part of a request; a failure is a 400 listing every problem with its path. */
export function parseInput<T extends z.ZodType>(
  schema: T,
  value: unknown,
  where: 'body' | 'query' | 'params' | 'headers',
): z.output<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const details: FieldError[] = [];
  for (const issue of parsed.error.issues) {
    const path = [where, ...issue.path.map(String)].join('.');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) details.push({ path: `${path}.${key}`, message: 'unknown field' });
    } else {
      details.push({ path, message: issue.message });
    }
  }
  throw new ApiError(
    400,
    'ValidationFailed',
    `invalid request ${where === 'params' ? 'path' : where}`,
    details,
  );
}
