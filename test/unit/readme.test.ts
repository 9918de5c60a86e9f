import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { commands } from '../../src/cli/commands.js';
import { CONFIG_KEYS } from '../../src/config.js';
import { createMetrics } from '../../src/observability/metrics.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const configSection = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## Metrics'));

describe('README', () => {
  it('states the two commands a new user runs', () => {
    expect(readme).toContain('npm install && npm start');
    expect(readme).toContain('npm install && npm test');
  });

  it.each(CONFIG_KEYS)('documents %s in the configuration table', (key) => {
    expect(configSection).toMatch(new RegExp(`^\\| \`${key}\``, 'm'));
  });

  it('documents no variable the config schema does not know', () => {
    const documented = [...configSection.matchAll(/^\| `([A-Z0-9_]+)`/gm)].map((m) => m[1]);
    expect(documented.filter((k) => !CONFIG_KEYS.includes(k as never))).toEqual([]);
  });

  it('documents every CLI command', () => {
    for (const name of Object.keys(commands)) expect(readme).toContain(`| \`${name}`);
  });

  it('documents every molecule_ metric the operator exports', async () => {
    const names = (await createMetrics({ defaults: false }).registry.getMetricsAsJSON()).map((m) => m.name);
    for (const name of names) expect(readme, name).toContain(`\`${name}`);
  });
});
