/**
 * Simulated time. It starts at the base clock's reading, runs `timeScale` times faster, and
 * can be pushed forward with {@link SimClock.advance}. Everything time-based in the simulator
 * (state transitions, bucket refill, ghosts, recovery windows) reads this clock.
 */
export class SimClock {
  private readonly origin: number;
  private offset = 0;

  constructor(
    private readonly base: () => number,
    readonly timeScale: number,
  ) {
    if (!(timeScale > 0)) throw new Error(`timeScale must be > 0, got ${timeScale}`);
    this.origin = base();
  }

  now(): number {
    return Math.floor(this.origin + (this.base() - this.origin) * this.timeScale + this.offset);
  }

  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`advance takes a non-negative number of ms, got ${ms}`);
    this.offset += ms;
  }

  /** Moves the clock forward to `t` if it is behind (used when loading a saved state). */
  atLeast(t: number): void {
    const now = this.now();
    if (t > now) this.offset += t - now;
  }

  /** Real milliseconds that `simMs` of simulated time take. */
  toRealMs(simMs: number): number {
    return simMs / this.timeScale;
  }
}
