#!/usr/bin/env node
// Runs the compiled CLI when present (container image), otherwise the TypeScript sources through tsx.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// package.json engines: Node 26 or later. npm runs this on the Node it installed (node_modules/.bin
// comes first on PATH for scripts and npx); anything else gets a clear refusal, not a stack trace.
const [major] = process.versions.node.split('.').map(Number);
if (major < 26) {
  process.stderr.write(
    `molecule-operator needs Node.js 26 or later; this is ${process.version} (${process.execPath}).\n` +
      'Run it through npm (npm start, npx molecule-operator ...), which uses the Node that npm install\n' +
      'put in node_modules/.bin, or install Node 26.\n',
  );
  process.exit(1);
}

const compiled = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url));
if (existsSync(compiled)) {
  warnIfStale(compiled);
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}

/**
 * In a checkout, a build older than the sources runs old code without a word: say so. (The image
 * ships dist/ alone, and this finds nothing to compare.)
 */
function warnIfStale(built) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const builtAt = statSync(built).mtimeMs;
  let newest;
  for (const dir of ['src', 'controllers', 'schema']) {
    if (!existsSync(join(root, dir))) continue;
    for (const entry of readdirSync(join(root, dir), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
      const file = join(entry.parentPath, entry.name);
      const mtime = statSync(file).mtimeMs;
      if (mtime > builtAt && (!newest || mtime > newest.mtime)) newest = { file, mtime };
    }
  }
  if (newest)
    process.stderr.write(
      `molecule-operator: warning: dist/ is older than the sources (${relative(root, newest.file)} changed since the build);\n` +
        'this runs the old build. Run `npm run build`, or delete dist/ to run the sources.\n',
    );
}
