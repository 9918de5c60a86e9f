#!/usr/bin/env node
// Runs the compiled CLI when present (container image), otherwise the TypeScript sources through tsx.
import { existsSync } from 'node:fs';
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
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
