import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError } from './types.js';

/**
 * The demo owns its data folder: its embedded database (PGlite) and the simulator's state file
 * may be opened by one process only. `demo.lock` says which process (and where its API is); other
 * commands read it instead of opening the database a second time.
 */
export interface DemoLock {
  pid: number;
  dataDir: string;
  startedAt: string;
  /** Set once the API listens. */
  apiUrl?: string;
  /** The demo's loopback endpoint for what the API does not offer (`plan`), and its bearer token. */
  controlUrl?: string;
  controlToken?: string;
}

export const LOCK_FILE = 'demo.lock';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

function read(dataDir: string): DemoLock | undefined {
  try {
    const lock = JSON.parse(readFileSync(join(dataDir, LOCK_FILE), 'utf8')) as DemoLock;
    return Number.isInteger(lock.pid) ? lock : undefined;
  } catch {
    return undefined;
  }
}

/** The lock of a live demo other than this process, if one owns `dataDir`. */
export function liveDemo(dataDir: string): DemoLock | undefined {
  const lock = read(dataDir);
  return lock && lock.pid !== process.pid && alive(lock.pid) ? lock : undefined;
}

/** What to tell someone who wants the folder a live demo owns. */
export function ownedMessage(lock: DemoLock): string {
  const api = lock.apiUrl ? `use the API at ${lock.apiUrl}` : 'use its API once it has started';
  return `the demo (pid ${lock.pid}) owns ${lock.dataDir} — ${api}, or stop it (Ctrl-C in its terminal, or kill ${lock.pid})`;
}

/**
 * Takes the folder for this process: fails with {@link ownedMessage} while another live demo holds
 * it, takes over a lock whose process is gone.
 */
export interface DemoLockHandle {
  update(info: Pick<DemoLock, 'apiUrl' | 'controlUrl' | 'controlToken'>): void;
  release(): void;
  /** The pid of a gone process whose lock was taken over. */
  tookOver: number | undefined;
}

export function acquireDemoLock(dataDir: string): DemoLockHandle {
  const file = join(dataDir, LOCK_FILE);
  const lock: DemoLock = { pid: process.pid, dataDir, startedAt: new Date().toISOString() };
  let tookOver: number | undefined;
  for (let attempt = 0; ; attempt++) {
    try {
      // Only this user may read it: it holds the control endpoint's token.
      writeFileSync(file, `${JSON.stringify(lock)}\n`, { flag: 'wx', mode: 0o600 });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      const held = liveDemo(dataDir);
      if (held) throw new CliError(ownedMessage(held));
      tookOver = read(dataDir)?.pid;
      rmSync(file, { force: true });
    }
  }
  return {
    tookOver,
    update(info) {
      Object.assign(lock, info);
      writeFileSync(file, `${JSON.stringify(lock)}\n`, { mode: 0o600 });
    },
    release() {
      if (read(dataDir)?.pid === process.pid) rmSync(file, { force: true });
    },
  };
}

/** A GET on a live demo's control endpoint (plan, status). */
export async function askDemo<T>(demo: DemoLock, path: string): Promise<T> {
  if (!demo.controlUrl || !demo.controlToken)
    throw new CliError(
      `the demo (pid ${demo.pid}) owns ${demo.dataDir} and is still starting`,
      'try again in a moment',
    );
  const res = await fetch(`${demo.controlUrl}${path}`, {
    headers: { authorization: `Bearer ${demo.controlToken}` },
  }).catch((e: Error) => {
    throw new CliError(`the demo (pid ${demo.pid}) does not answer at ${demo.controlUrl}: ${e.message}`);
  });
  if (res.status === 404) {
    const body = (await res.json()) as { error: string; hint?: string };
    throw new CliError(body.error, body.hint);
  }
  if (!res.ok)
    throw new CliError(
      `the demo (pid ${demo.pid}) could not answer ${path}: ${res.status} ${await res.text()}`,
    );
  return (await res.json()) as T;
}
