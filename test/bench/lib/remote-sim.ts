import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type {
  CallCount,
  CallRecord,
  FaultSettings,
  SeedInfo,
  SimOptions,
  SimStateDump,
} from '../../../src/sim/index.js';
import { type NetworkInfo, SEED } from '../../../src/sim/index.js';

/**
 * The simulator running in a child process, driven through its `/_sim/` admin API: the same
 * surface as the in-process {@link Simulator}, asynchronous.
 */
export interface RemoteSim {
  readonly url: string;
  readonly awsEndpoint: string;
  readonly cloudflareBaseUrl: string;
  readonly seed: SeedInfo;
  readonly pid: number;
  calls(): Promise<CallCount[]>;
  callLog(sinceMs?: number): Promise<CallRecord[]>;
  resetCalls(): Promise<void>;
  dump(): Promise<SimStateDump>;
  /** Simulated now (ms). */
  now(): Promise<number>;
  setFaults(f: Partial<FaultSettings>): Promise<void>;
  /** The default network of an account and region (made on first use). */
  network(account: string, region: string): Promise<NetworkInfo>;
  close(): Promise<void>;
}

const SCRIPT = fileURLToPath(new URL('./sim-process.ts', import.meta.url));

export async function startRemoteSim(options: SimOptions = {}): Promise<RemoteSim> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify(options)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // A benchmark that crashes (or exits) never leaves its simulator behind.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  void exited.then(() => process.off('exit', reap));
  const first = await new Promise<{ url: string; pid: number }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve(JSON.parse(line)));
    child.once('exit', (code) => reject(new Error(`simulator exited with ${code} before listening`)));
  });
  const admin = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${first.url}${path}`, {
      method,
      ...(body !== undefined
        ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }
        : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`sim admin ${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
    return JSON.parse(text) as T;
  };
  return {
    url: first.url,
    awsEndpoint: first.url,
    cloudflareBaseUrl: `${first.url}/client/v4`,
    seed: { ...SEED },
    pid: first.pid,
    calls: () => admin<CallCount[]>('GET', '/_sim/calls'),
    callLog: (since) =>
      admin<CallRecord[]>('GET', `/_sim/log${since === undefined ? '' : `?since=${since}`}`),
    network: (account, region) =>
      admin<NetworkInfo>('GET', `/_sim/network?account=${account}&region=${region}`),
    resetCalls: async () => {
      await admin('DELETE', '/_sim/calls');
    },
    dump: () => admin<SimStateDump>('GET', '/_sim/state'),
    now: async () => (await admin<{ now: number }>('GET', '/_sim')).now,
    setFaults: async (f) => {
      await admin('PUT', '/_sim/faults', f);
    },
    async close() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
