import { z } from 'zod';
import { amiRefusal, imageRefusal, PIN_RUNTIMES, regionRefusal } from '../provisioning/pins.js';
import { KNOWN_RUNTIMES } from '../provisioning/runtimes.js';
import { ApiError, type FieldError } from './errors.js';
import { SLUG_PATTERN, slugRefusal } from './slugs.js';

export { SLUG_PATTERN } from './slugs.js';

const SLUG_RULE = 'must be 3–32 characters of a-z, 0-9 and "-", starting and ending with a letter or digit';

/**
 * The slug of a new org: a DNS label that is not reserved, not punycode and has no `--` in
 * positions 3–4. The JSON Schema says the same with `not`, so clients can check it too.
 */
export function newSlug(reserved: ReadonlySet<string>) {
  return z
    .string()
    .regex(SLUG_PATTERN, SLUG_RULE)
    .superRefine((slug, ctx) => {
      const refusal = SLUG_PATTERN.test(slug) ? slugRefusal(slug, reserved) : undefined;
      if (refusal) ctx.addIssue({ code: 'custom', message: refusal });
    })
    .meta({
      description:
        'DNS label of the tenant: `<slug>.<APP_DOMAIN>`. Reserved hostnames, punycode and "--" in positions 3–4 are refused.',
      not: { anyOf: [{ enum: [...reserved].sort() }, { pattern: '^..--' }] },
    });
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;
/** Bidi embeddings, overrides and isolates, and the implicit marks: text that displays in another order. */
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
const LONE_SURROGATE = /\p{Cs}/u;

// Names are shown to people and copied into Name tags: printable, in the order they are stored.
const displayName = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(100, 'must be at most 100 characters')
  .refine((s) => !CONTROL.test(s), 'must not contain control characters')
  .refine(
    (s) => !BIDI.test(s),
    'must not contain bidirectional formatting characters (U+202A–U+202E, U+2066–U+2069, U+200E/F, U+061C)',
  )
  .refine((s) => !LONE_SURROGATE.test(s), 'must be valid Unicode text')
  .meta({
    description: 'Shown to people: 1–100 characters, no control or bidirectional formatting characters',
  });

// Any integer 1–10 is a valid request; clamping to the tiers that exist is a provisioning rule.
const tier = z
  .int('must be an integer')
  .min(1, 'must be between 1 and 10')
  .max(10, 'must be between 1 and 10');
const powerState = z.enum(['running', 'stopped'], 'must be "running" or "stopped"');

const OBJECT = 'must be a JSON object';

export const createOrgBody = (reserved: ReadonlySet<string>) =>
  z.strictObject(
    {
      slug: newSlug(reserved),
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

const refuseWith = (why: (value: string) => string | undefined) => (value: string, ctx: z.RefinementCtx) => {
  const problem = why(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
};

const pinRuntime = z
  .enum(PIN_RUNTIMES, `must be one of ${PIN_RUNTIMES.join(', ')}`)
  .meta({ description: 'A workspace runtime, or `tenant` for the tenant instance' });

export const RuntimePinParams = z.strictObject({ runtime: pinRuntime });
export const AmiPinParams = z.strictObject({
  runtime: pinRuntime,
  region: z
    .string()
    .superRefine(refuseWith(regionRefusal))
    .meta({ description: 'The AWS region the AMI lives in, e.g. us-east-1' }),
});

export const SetRuntimeImageBody = z.strictObject(
  {
    image: z
      .string('must be a string')
      .max(512, 'must be at most 512 characters')
      .superRefine(refuseWith(imageRefusal))
      .meta({
        description:
          'registry/name[:tag][@sha256:<64 hex>]: the registry written out, and a tag, a digest or both',
        examples: ['ghcr.io/molecule-ai/hermes:1.4.2'],
      }),
  },
  OBJECT,
);

export const SetAmiBody = z.strictObject(
  {
    amiId: z
      .string('must be a string')
      .superRefine(refuseWith(amiRefusal))
      .meta({ description: '"ami-" and 8 or 17 lowercase hex digits', examples: ['ami-0ea3c35c5c3284d82'] }),
  },
  OBJECT,
);

export const PinAuditQuery = z.strictObject({ limit, cursor });

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
