import { describe, expect, it } from 'vitest';
import {
  amiRefusal,
  imageRefusal,
  parseImageReference,
  regionRefusal,
  runtimeRefusal,
} from '../../../src/provisioning/pins.js';

const SHA = `sha256:${'0123456789abcdef'.repeat(4)}`;

describe('image references (Docker distribution grammar, registry and version required)', () => {
  it.each([
    {
      reason: 'registry, path, tag',
      given: 'ghcr.io/molecule-ai/platform-tenant:1.4.2',
      want: {
        registry: 'ghcr.io',
        repository: 'molecule-ai/platform-tenant',
        tag: '1.4.2',
        digest: undefined,
      },
    },
    {
      reason: 'digest only',
      given: `ghcr.io/molecule-ai/hermes@${SHA}`,
      want: { registry: 'ghcr.io', repository: 'molecule-ai/hermes', tag: undefined, digest: SHA },
    },
    {
      reason: 'tag and digest',
      given: `ghcr.io/molecule-ai/hermes:v2@${SHA}`,
      want: { registry: 'ghcr.io', repository: 'molecule-ai/hermes', tag: 'v2', digest: SHA },
    },
    {
      reason: 'registry with a port, tag after it',
      given: 'registry.example.com:5000/team/app:2026-12-04',
      want: {
        registry: 'registry.example.com:5000',
        repository: 'team/app',
        tag: '2026-12-04',
        digest: undefined,
      },
    },
    {
      reason: 'localhost counts as a registry',
      given: 'localhost/app:dev',
      want: { registry: 'localhost', repository: 'app', tag: 'dev', digest: undefined },
    },
    {
      reason: 'localhost with a port',
      given: 'localhost:5000/app:dev',
      want: { registry: 'localhost:5000', repository: 'app', tag: 'dev', digest: undefined },
    },
    {
      reason: 'IPv4 registry',
      given: '10.0.0.7:5000/a/b:1',
      want: { registry: '10.0.0.7:5000', repository: 'a/b', tag: '1', digest: undefined },
    },
    {
      reason: 'IPv6 registry in brackets',
      given: '[2001:db8::1]:5000/app:1',
      want: { registry: '[2001:db8::1]:5000', repository: 'app', tag: '1', digest: undefined },
    },
    {
      reason: 'every separator: ".", "_", "__", "-", "---"',
      given: 'ecr.aws/a.b_c__d-e---f/g:latest',
      want: { registry: 'ecr.aws', repository: 'a.b_c__d-e---f/g', tag: 'latest', digest: undefined },
    },
    {
      reason: 'uppercase in the registry host, underscore-led 128-character tag',
      given: `Registry.Example.COM/app:_${'a'.repeat(127)}`,
      want: {
        registry: 'Registry.Example.COM',
        repository: 'app',
        tag: `_${'a'.repeat(127)}`,
        digest: undefined,
      },
    },
    {
      reason: 'AWS ECR',
      given: '123456789012.dkr.ecr.us-east-1.amazonaws.com/molecule/tenant:7f3c2a1',
      want: {
        registry: '123456789012.dkr.ecr.us-east-1.amazonaws.com',
        repository: 'molecule/tenant',
        tag: '7f3c2a1',
        digest: undefined,
      },
    },
  ])('accepts $reason: $given', ({ given, want }) => {
    expect(parseImageReference(given)).toEqual({ ok: true, ref: want });
    expect(imageRefusal(given)).toBeUndefined();
  });

  it.each([
    { reason: 'empty', given: '', want: /empty/ },
    { reason: 'no registry (implicit docker.io)', given: 'nginx:1.27', want: /registry/ },
    { reason: 'first component is not a registry', given: 'library/nginx:1.27', want: /registry/ },
    { reason: 'no version (means :latest)', given: 'ghcr.io/molecule-ai/hermes', want: /version/ },
    { reason: 'uppercase in the path', given: 'ghcr.io/Molecule/hermes:1', want: /lowercase/ },
    { reason: 'empty path component', given: 'ghcr.io/a//b:1', want: /empty components/ },
    { reason: 'trailing slash', given: 'ghcr.io/a/:1', want: /empty components/ },
    { reason: 'only a registry', given: 'ghcr.io/:1', want: /empty components/ },
    { reason: 'separator at the start of a component', given: 'ghcr.io/-a:1', want: /lowercase/ },
    { reason: 'separator at the end of a component', given: 'ghcr.io/a_:1', want: /lowercase/ },
    { reason: 'three underscores', given: 'ghcr.io/a___b:1', want: /lowercase/ },
    { reason: 'empty tag', given: 'ghcr.io/a/b:', want: /tag/ },
    { reason: 'tag starting with "."', given: 'ghcr.io/a/b:.x', want: /tag/ },
    { reason: 'tag starting with "-"', given: 'ghcr.io/a/b:-x', want: /tag/ },
    { reason: 'tag of 129 characters', given: `ghcr.io/a/b:${'a'.repeat(129)}`, want: /tag/ },
    { reason: 'tag with a "+"', given: 'ghcr.io/a/b:1.0+build', want: /tag/ },
    { reason: 'digest of another algorithm', given: `ghcr.io/a/b@sha512:${'a'.repeat(128)}`, want: /digest/ },
    { reason: 'digest too short', given: `ghcr.io/a/b@sha256:${'a'.repeat(63)}`, want: /digest/ },
    { reason: 'digest in uppercase hex', given: `ghcr.io/a/b@sha256:${'A'.repeat(64)}`, want: /digest/ },
    { reason: 'two digests', given: `ghcr.io/a/b@${SHA}@${SHA}`, want: /digest/ },
    { reason: 'empty digest', given: 'ghcr.io/a/b:1@', want: /digest/ },
    { reason: 'registry component ending in "-"', given: 'ghcr-.io/a:1', want: /registry/ },
    { reason: 'registry with an empty label', given: 'ghcr..io/a:1', want: /registry/ },
    { reason: 'registry port not numeric', given: 'ghcr.io:http/a:1', want: /registry|lowercase|tag/ },
    { reason: 'leading space', given: ' ghcr.io/a/b:1', want: /whitespace/ },
    { reason: 'newline', given: 'ghcr.io/a/b:1\nrm -rf /', want: /whitespace/ },
    { reason: 'shell metacharacters', given: 'ghcr.io/a/b:1;reboot', want: /tag/ },
    { reason: 'command substitution', given: 'ghcr.io/$(id)/b:1', want: /lowercase/ },
    { reason: 'scheme', given: 'https://ghcr.io/a/b:1', want: /registry|lowercase/ },
    {
      reason: 'name longer than 255 characters',
      given: `ghcr.io/${'a'.repeat(250)}:1`,
      want: /255/,
    },
  ])('refuses $reason', ({ given, want }) => {
    const result = parseImageReference(given);
    expect(result.ok).toBe(false);
    expect(imageRefusal(given)).toMatch(want);
  });
});

describe('AMI ids, regions and runtimes', () => {
  it.each([
    { given: 'ami-0123abcd', ok: true },
    { given: 'ami-0ea3c35c5c3284d82', ok: true },
    { given: 'ami-0123abc', ok: false },
    { given: 'ami-0123abcde', ok: false },
    { given: 'ami-0ea3c35c5c3284d8', ok: false },
    { given: 'ami-0EA3C35C5C3284D82', ok: false },
    { given: 'ami-0ea3c35c5c3284d82x', ok: false },
    { given: 'AMI-0123abcd', ok: false },
    { given: 'ami-0123abcg', ok: false },
    { given: ' ami-0123abcd', ok: false },
    { given: '', ok: false },
  ])('AMI $given → $ok', ({ given, ok }) => {
    expect(amiRefusal(given) === undefined).toBe(ok);
  });

  it.each([
    { given: 'us-east-1', ok: true },
    { given: 'us-gov-west-1', ok: true },
    { given: 'ap-southeast-4', ok: true },
    { given: 'US-EAST-1', ok: false },
    { given: 'us-east', ok: false },
    { given: 'useast1', ok: false },
  ])('region $given → $ok', ({ given, ok }) => {
    expect(regionRefusal(given) === undefined).toBe(ok);
  });

  it.each([
    { given: 'tenant', ok: true },
    { given: 'hermes', ok: true },
    { given: 'gemini-cli', ok: true },
    { given: 'Hermes', ok: false },
    { given: 'python', ok: false },
    { given: '', ok: false },
  ])('runtime $given → $ok', ({ given, ok }) => {
    expect(runtimeRefusal(given) === undefined).toBe(ok);
  });
});
