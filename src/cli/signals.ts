const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * Resolves on the first SIGINT or SIGTERM. The handlers are removed then, so a second signal
 * during a slow shutdown gets Node's default behaviour and ends the process at once.
 */
export function waitForShutdownSignal(): { signal: Promise<NodeJS.Signals>; abort: AbortSignal } {
  const controller = new AbortController();
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    const handler = (name: NodeJS.Signals) => {
      for (const s of SIGNALS) process.off(s, handler);
      controller.abort();
      resolve(name);
    };
    for (const s of SIGNALS) process.once(s, handler);
  });
  return { signal, abort: controller.signal };
}
