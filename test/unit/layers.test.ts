import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { registry } from '../../controllers/index.js';

/*
 * The shape of the code (STYLE 11-12, DESIGN §10): controller names live in controllers/ (the
 * registry) and SQL in src/db. These read the sources as text; each check is shown able to find
 * what it forbids where it is allowed.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function sources(...entries: string[]): string[] {
  return entries.flatMap((entry) => {
    const path = join(ROOT, entry);
    if (entry.endsWith('.ts')) return [entry];
    return readdirSync(path, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => relative(ROOT, join(path, f)));
  });
}

/** Code lines only: comments dropped (names are fine in prose). */
function codeLines(file: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let inBlock = false;
  readFileSync(join(ROOT, file), 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      let text = raw;
      if (inBlock) {
        const end = text.indexOf('*/');
        if (end < 0) return;
        text = text.slice(end + 2);
        inBlock = false;
      }
      text = text.replace(/\/\*.*?\*\//g, '');
      const open = text.indexOf('/*');
      if (open >= 0) {
        inBlock = true;
        text = text.slice(0, open);
      }
      text = text.replace(/(^|\s)\/\/.*$/, '');
      if (text.trim()) out.push({ line: i + 1, text });
    });
  return out;
}

/** The registry's controllers, and the two jobs in controllers/ that are not registry entries. */
const NAMES = [...registry.names, 'orphan', 'workspace-bootstrap'];

/** A name spelled as a string: 'tunnel', "tunnel", `tunnel…` or `…:tunnel`. */
const spelled = new RegExp(`(['"\`])(?:${NAMES.join('|')})\\1|[\`:](?:${NAMES.join('|')})[\`:]`);

/** Strings that are not controller names: the EC2 API's resource type of a tag specification. */
const NOT_A_NAME = [/ResourceType: 'instance'/];

function spellings(files: string[]): string[] {
  return files.flatMap((file) =>
    codeLines(file)
      .filter(({ text }) => spelled.test(text) && !NOT_A_NAME.some((re) => re.test(text)))
      .map(({ line, text }) => `${file}:${line}: ${text.trim()}`),
  );
}

const SQL =
  /\bsql`|\.execute\(|\b(?:database|db|tx|pool|client)\.query\b|\bfrom '(?:drizzle-orm[^']*|pg|postgres|@electric-sql\/pglite[^']*)'/;

function sqlOutsideDb(files: string[]): string[] {
  return files
    .filter((f) => !f.startsWith('src/db/'))
    .flatMap((file) =>
      codeLines(file)
        .filter(({ text }) => SQL.test(text))
        .map(({ line, text }) => `${file}:${line}: ${text.trim()}`),
    );
}

describe('layers', () => {
  it('the registry names its controllers', () => {
    expect(registry.names).toEqual(
      expect.arrayContaining(['tunnel', 'secrets', 'securitygroup', 'instance']),
    );
  });

  it('no file under src/runtime, src/observability, src/cli or src/operator.ts spells a controller name', () => {
    const files = sources('src/runtime', 'src/observability', 'src/cli', 'src/operator.ts');
    expect(files.length).toBeGreaterThan(20);
    expect(spellings(files)).toEqual([]);
    // The check sees the names where they belong.
    expect(spellings(['controllers/index.ts']).length).toBeGreaterThanOrEqual(registry.names.length);
    expect(spellings(['controllers/workspace-bootstrap.ts', 'controllers/orphan.ts']).length).toBeGreaterThan(
      0,
    );
  });

  it('SQL and the database drivers are used in src/db only', () => {
    const files = sources('src', 'controllers');
    expect(files.length).toBeGreaterThan(50);
    expect(sqlOutsideDb(files)).toEqual([]);
    // The check sees the repositories' SQL.
    expect(
      codeLines('src/db/orphans.ts').filter(({ text }) => SQL.test(text)).length,
      'src/db/orphans.ts uses drizzle',
    ).toBeGreaterThan(0);
  });
});
