import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Every project file a module loads, following static and literal dynamic imports. */
function closure(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      visit(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
    }
  };
  visit(resolve(ROOT, entry));
  return new Set([...seen].map((f) => relative(ROOT, f)));
}

describe('what each command loads', () => {
  it.each(['src/cli/run.ts', 'src/cli/api.ts', 'src/cli/migrate.ts', 'src/cli/main.ts'])(
    '%s never loads the simulator',
    (entry) => {
      const loaded = [...closure(entry)];
      expect(loaded.length).toBeGreaterThan(3);
      expect(loaded.filter((f) => f.startsWith('src/sim/'))).toEqual([]);
    },
  );

  it('the demo does load it (the check can see an import of the simulator)', () => {
    expect([...closure('src/cli/demo.ts')].some((f) => f.startsWith('src/sim/'))).toBe(true);
  });
});
