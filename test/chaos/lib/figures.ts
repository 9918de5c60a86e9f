import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Writes one scenario's figures for `test/chaos/run.ts` to collect (when it set
 * CHAOS_RESULTS_DIR); a plain `vitest run` records nothing.
 */
export function recordFigures(scenario: string, figures: Record<string, unknown>): void {
  const dir = process.env.CHAOS_RESULTS_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${scenario}.json`), `${JSON.stringify({ scenario, ...figures }, null, 2)}\n`);
}
