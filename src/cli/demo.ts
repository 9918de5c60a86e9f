import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseFlags } from './args.js';
import { acquireDemoLock } from './lock.js';
import { waitForShutdownSignal } from './signals.js';
import type { CliContext } from './types.js';

/**
 * `molecule-operator demo`: says at once what it is doing, takes the data folder, and only then
 * loads the database, the simulator, the API and the controllers (seconds on a cold start).
 */
export async function run(argv: string[], ctx: CliContext): Promise<number> {
  const flags = parseFlags(argv, {
    reset: { type: 'boolean' },
    'data-dir': { type: 'string' },
    'sim-port': { type: 'string' },
    'no-samples': { type: 'boolean' },
    'database-url': { type: 'string' },
  });
  const dataDir = resolve(flags['data-dir'] ?? '.data');
  mkdirSync(dataDir, { recursive: true });
  // One demo per folder: a second would open the embedded database and the simulator's state twice.
  const lock = acquireDemoLock(dataDir);
  try {
    // From here Ctrl-C stops cleanly, whenever it comes.
    const shutdown = waitForShutdownSignal();
    ctx.stdout(
      `molecule-operator demo: starting in ${dataDir}${lock.tookOver ? ` (took over the folder from pid ${lock.tookOver}, which is gone)` : ''}…\n`,
    );
    const { runDemo } = await import('./demo-session.js');
    return await runDemo(flags, dataDir, lock, shutdown, ctx);
  } finally {
    lock.release();
  }
}
