import { type ChildProcess, spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '..', '..', '..', 'bin', 'molecule-operator.js');

/** One log line of a child, with the wall-clock time the test received it. */
export interface LogLine {
  at: number;
  stream: 'stdout' | 'stderr';
  text: string;
  json: { msg?: string; level?: number; [k: string]: unknown } | undefined;
}

/** Every process a test started, so a failing test never leaves one behind. */
const live = new Set<ChildProcess>();

/** Kills (SIGKILL, by pid) whatever is still running; for afterAll. */
export function killAll(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid!, 'SIGCONT');
      } catch {}
      c.kill('SIGKILL');
    }
  }
}

/**
 * `molecule-operator <command>` as a child process with exactly `env` (plus PATH/HOME), every
 * output line kept with its arrival time. `waitFor` polls those lines with a deadline.
 */
export class OperatorProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly startedAt = Date.now();
  private partial = { stdout: '', stderr: '' };

  constructor(
    readonly label: string,
    args: string[],
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(this.child);
    // Below the test runner and the other test files: their timing must not suffer from ours.
    try {
      setPriority(this.child.pid!, 5);
    } catch {}
    for (const stream of ['stdout', 'stderr'] as const) {
      this.child[stream]!.setEncoding('utf8');
      this.child[stream]!.on('data', (chunk: string) => this.onData(stream, chunk));
    }
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        live.delete(this.child);
        this.child.on('close', () => {
          for (const stream of ['stdout', 'stderr'] as const) {
            if (this.partial[stream]) this.push(stream, this.partial[stream]);
            this.partial[stream] = '';
          }
          resolve({ code, signal });
        });
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) process.kill(this.pid, sig);
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<void> {
    this.signal('SIGKILL');
    await this.exited;
  }

  /** SIGTERM; returns the exit code (a graceful stop is 0). */
  async terminate(timeoutMs = 20_000): Promise<number | null> {
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), timeoutMs);
    const { code } = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** Log lines whose pino `msg` equals `msg`, optionally received after `since`. */
  messages(msg: string, since = 0): LogLine[] {
    return this.lines.filter((l) => l.at >= since && l.json?.msg === msg);
  }

  /** Waits until a line with pino `msg` arrives after `since`; fails early if the process exits. */
  async waitFor(msg: string, timeoutMs: number, since = 0): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.messages(msg, since)[0];
      if (hit) return hit;
      if (!this.running) throw new Error(`${this.label} exited before "${msg}":\n${this.tail()}`);
      if (Date.now() > deadline)
        throw new Error(`${this.label}: no "${msg}" within ${timeoutMs} ms:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  tail(n = 30): string {
    return this.lines
      .slice(-n)
      .map((l) => l.text)
      .join('\n');
  }

  private onData(stream: 'stdout' | 'stderr', chunk: string): void {
    const text = this.partial[stream] + chunk;
    const parts = text.split('\n');
    this.partial[stream] = parts.pop()!;
    for (const p of parts) if (p.trim()) this.push(stream, p);
  }

  private push(stream: 'stdout' | 'stderr', text: string): void {
    let json: LogLine['json'];
    try {
      const v = JSON.parse(text) as unknown;
      if (v && typeof v === 'object') json = v as LogLine['json'];
    } catch {}
    this.lines.push({ at: Date.now(), stream, text, json });
  }
}
