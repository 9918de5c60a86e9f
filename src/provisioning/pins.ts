import { KNOWN_RUNTIMES, TENANT_RUNTIME } from './runtimes.js';

/*
 * What a pin may hold (DESIGN §11). A pinned image ends up in the boot script's `docker run` and
 * in the redeploy command, an AMI id in RunInstances: both are checked here, once, for the API
 * and the CLI alike, so nothing that reaches a shell or the cloud was not validated.
 */

/** Runtimes a pin can be set for: the tenant (`tenant`) and every workspace runtime. */
export const PIN_RUNTIMES = [TENANT_RUNTIME, ...KNOWN_RUNTIMES] as const;
export type PinRuntime = (typeof PIN_RUNTIMES)[number];

export const isPinRuntime = (runtime: string): runtime is PinRuntime =>
  (PIN_RUNTIMES as readonly string[]).includes(runtime);

/** `ami-` and 8 or 17 lowercase hex digits (the two formats EC2 has issued). */
export const AMI_ID = /^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

/** An AWS region name: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`. */
export const AWS_REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;

/*
 * Image references, after the Docker distribution reference grammar
 * (github.com/distribution/reference, regexp.go):
 *
 *   reference        := name [ ":" tag ] [ "@" digest ]
 *   name             := [domain "/"] remote-name
 *   domain           := host [":" port-number]
 *   host             := domain-name | IPv4address | "[" IPv6address "]"
 *   domain-name      := domain-component ["." domain-component]*
 *   domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
 *   port-number      := /[0-9]+/
 *   remote-name      := path-component ["/" path-component]*
 *   path-component   := alpha-numeric [separator alpha-numeric]*
 *   alpha-numeric    := /[a-z0-9]+/
 *   separator        := /[_.]|__|[-]+/
 *   tag              := /[\w][\w.-]{0,127}/
 *
 * and the name is at most 255 characters. Two rules are stricter than the grammar, because a pin
 * is what every instance of a runtime pulls: the registry must be written out (no implicit
 * docker.io: `nginx` is refused, `docker.io/library/nginx:1.27` is fine), and the reference must
 * name a version — a tag, a digest or both (a bare name means `:latest`, which moves under a pin).
 * The only digest accepted is `sha256:` with 64 lowercase hex digits, the one registries serve.
 */
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const HOST = `(?:${DOMAIN_NAME}|${IPV6})`;
const DOMAIN = new RegExp(`^${HOST}(?::[0-9]+)?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[_.]|__|[-]+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const NAME_MAX = 255;

export interface ImageReference {
  /** `ghcr.io`, `localhost:5000`, `[::1]:5000`. */
  registry: string;
  /** The repository path inside the registry: `molecule-ai/platform-tenant`. */
  repository: string;
  tag: string | undefined;
  digest: string | undefined;
}

/** A parsed reference, or the first reason it is not one. */
export type ImageReferenceResult = { ok: true; ref: ImageReference } | { ok: false; problem: string };

/** Parses an image reference under the rules above. */
export function parseImageReference(value: string): ImageReferenceResult {
  const fail = (problem: string): ImageReferenceResult => ({ ok: false, problem });
  if (value.length === 0) return fail('must not be empty');
  if (value !== value.trim() || /\s/.test(value)) return fail('must not contain whitespace');
  let rest = value;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return fail('digest must be sha256: followed by 64 lowercase hex digits');
  }
  // The tag follows the last ':' after the last '/': a ':' before it is the registry's port.
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag))
      return fail(
        'tag must be 1–128 characters of letters, digits, "_", "." and "-", not starting with "." or "-"',
      );
  }
  const name = rest;
  if (name.length > NAME_MAX) return fail(`name must be at most ${NAME_MAX} characters`);
  const slash = name.indexOf('/');
  const first = slash >= 0 ? name.slice(0, slash) : name;
  // Docker's own rule for telling a registry from a path component.
  const isRegistry = first.includes('.') || first.includes(':') || first === 'localhost';
  if (slash < 0 || !isRegistry)
    return fail('must name its registry, e.g. ghcr.io/org/image:tag (registry/name[:tag][@sha256:…])');
  if (!DOMAIN.test(first))
    return fail(`registry ${JSON.stringify(first)} is not a host name with an optional port`);
  const repository = name.slice(slash + 1);
  const components = repository.split('/');
  const bad = components.find((c) => !PATH_COMPONENT.test(c));
  if (bad !== undefined)
    return fail(
      bad === ''
        ? 'repository path must not have empty components'
        : `repository path component ${JSON.stringify(bad)} must be lowercase letters and digits, separated by ".", "_", "__" or "-"`,
    );
  if (tag === undefined && digest === undefined)
    return fail('must name a version: a :tag, an @sha256: digest, or both (a bare name means :latest)');
  return { ok: true, ref: { registry: first, repository, tag, digest } };
}

/** Why a value cannot be an image pin, or undefined when it can. */
export const imageRefusal = (value: string): string | undefined => {
  const r = parseImageReference(value);
  return r.ok ? undefined : r.problem;
};

/** Why a value cannot be an AMI pin, or undefined when it can. */
export const amiRefusal = (value: string): string | undefined =>
  AMI_ID.test(value) ? undefined : 'must be "ami-" followed by 8 or 17 lowercase hex digits';

/** Why a runtime cannot carry a pin, or undefined when it can. */
export const runtimeRefusal = (value: string): string | undefined =>
  isPinRuntime(value) ? undefined : `must be one of ${PIN_RUNTIMES.join(', ')}`;

/** Why a region cannot carry an AMI pin, or undefined when it can. */
export const regionRefusal = (value: string): string | undefined =>
  AWS_REGION.test(value) ? undefined : 'must be an AWS region such as us-east-1';
