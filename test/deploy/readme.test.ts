import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, SECRET_KEYS } from '../../src/config.js';
import { DEPLOY, markdownAnchors, ROOT, readText } from './manifests.js';

const README = join(DEPLOY, 'README.md');
const readme = readText(README);
const anchors = markdownAnchors(readme);

/** `| \`KEY\` | default | where | meaning |` rows of the Configure table (cells may be padded). */
const rows = new Map(
  [...readme.matchAll(/^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|([^|]*)\|([^|]*)\|([^|]*)\|$/gm)].map((m) => [
    m[1]!,
    { default: m[2]!.trim(), where: m[3]!.trim(), meaning: m[4]!.trim() },
  ]),
);

describe('deploy/README.md', () => {
  it('documents every environment variable, with a meaning', () => {
    expect(CONFIG_KEYS.filter((k) => !rows.has(k))).toEqual([]);
    for (const [key, row] of rows) expect(row.meaning.length, key).toBeGreaterThan(10);
  });

  it('documents no variable the config schema does not know', () => {
    expect([...rows.keys()].filter((k) => !(CONFIG_KEYS as string[]).includes(k))).toEqual([]);
  });

  it('says credentials come from the Secret', () => {
    for (const key of SECRET_KEYS) expect(rows.get(key)?.where, key).toMatch(/^Secret/);
    for (const [key, row] of rows) {
      if (!(SECRET_KEYS as string[]).includes(key)) expect(row.where, key).not.toMatch(/Secret/);
    }
  });

  it('covers install, configure, upgrade, scale and monitoring', () => {
    for (const a of ['install', 'configure', 'upgrade', 'scale', 'monitoring', 'create-the-secret']) {
      expect(anchors, a).toContain(a);
    }
    expect(readme).toMatch(/kubectl apply -k deploy\/k8s\/overlays\/prod/);
    expect(readme).toMatch(/Cloudflare Tunnel → Edit/);
    expect(readme).toMatch(/DNS → Edit/);
    expect(readme).toMatch(/15 s lease, 10 s renew deadline, 2 s\s+retry/);
  });

  it('has every in-page link target', () => {
    const links = [...readme.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(5);
    expect(links.filter((l) => !anchors.has(l))).toEqual([]);
  });

  it('has every anchor the manifests point to', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
      );
    const refs = files(DEPLOY).flatMap((f) =>
      [...readText(f).matchAll(/deploy\/README\.md#([\w-]+)/g)].map((m) => ({
        file: relative(ROOT, f),
        anchor: m[1]!,
      })),
    );
    expect(refs.length).toBeGreaterThan(0);
    expect(refs.filter((r) => !anchors.has(r.anchor))).toEqual([]);
  });
});
