import { spawn } from 'node:child_process';
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

/** The project modules `molecule-operator <argv>` really loads (traced by a module hook), relative to the root. */
function loadedBy(argv: string[]): Promise<{ code: number | null; loaded: string[] }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      resolve(ROOT, 'test/fixtures/trace-loads.mjs'),
      resolve(ROOT, 'bin/molecule-operator.js'),
      ...argv,
    ],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH, PGLITE_DIR: '/nonexistent' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((done, fail) => {
    child.once('error', fail);
    child.once('exit', (code) =>
      done({
        code,
        loaded: [...stderr.matchAll(/^loaded file:\/\/(.+)$/gm)].map((m) => relative(ROOT, m[1]!)),
      }),
    );
  });
}

describe('what each command loads, at run time', () => {
  // An unknown flag: the command's module is loaded, then the command refuses before any I/O.
  it.each(['run', 'api', 'migrate'])(
    '`%s` never loads the simulator',
    async (command) => {
      const { code, loaded } = await loadedBy([command, '--no-such-flag']);
      expect(code).toBe(2);
      expect(loaded).toContain(`src/cli/${command}.ts`);
      expect(loaded.filter((f) => f.startsWith('src/sim/'))).toEqual([]);
    },
    120_000,
  );

  it('`sim` does (the trace sees a simulator module when one is loaded)', async () => {
    const { code, loaded } = await loadedBy(['sim', '--no-such-flag']);
    expect(code).toBe(2);
    expect(loaded.filter((f) => f.startsWith('src/sim/')).length).toBeGreaterThan(5);
  }, 120_000);
});
