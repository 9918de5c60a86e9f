import { setTimeout as sleep } from 'node:timers/promises';
import { waitForShutdownSignal } from './signals.js';
import type { CliContext } from './types.js';

const WATCH_INTERVAL_MS = 2_000;

/**
 * Prints `render()` once, or with `watch` redraws it every 2 s (clearing the screen and homing
 * the cursor, under a timestamp) until Ctrl-C / SIGTERM, as `kubectl get -w` users expect.
 */
export async function showOrWatch(
  ctx: CliContext,
  watch: boolean,
  render: () => Promise<string>,
): Promise<number> {
  if (!watch) {
    ctx.stdout(await render());
    return 0;
  }
  const shutdown = waitForShutdownSignal();
  while (!shutdown.abort.aborted) {
    ctx.stdout(`\x1b[2J\x1b[H${new Date().toISOString()}\n\n${await render()}`);
    await sleep(WATCH_INTERVAL_MS, undefined, { signal: shutdown.abort }).catch(() => {});
  }
  return 0;
}
