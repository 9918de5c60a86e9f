/**
 * Failpoints for the chaos suite (FAILPOINTS). At a named point — after a write was decided and
 * its lease term captured, before it reaches the database or the cloud — the process stops
 * itself (SIGSTOP) the first time it gets there, as a long GC pause or a frozen VM would stop
 * it. A test lets another replica take the lease meanwhile and then resumes the process
 * (SIGCONT) right there: whatever it does next must be refused. Unset (production), every point
 * is a no-op.
 */
export const FAILPOINTS = [
  'before-status-write',
  'before-audit-write',
  'before-finalizer-write',
  'before-purge',
  'before-ledger-write',
  'before-cloud-mutation',
] as const;
export type Failpoint = (typeof FAILPOINTS)[number];

export function createFailpoints(armed: readonly Failpoint[]): (point: Failpoint) => void {
  if (armed.length === 0) return () => {};
  const pending = new Set(armed);
  return (point) => {
    if (!pending.delete(point)) return;
    process.stderr.write(`failpoint ${point}: stopping (pid ${process.pid})\n`);
    process.kill(process.pid, 'SIGSTOP');
    process.stderr.write(`failpoint ${point}: resumed\n`);
  };
}
