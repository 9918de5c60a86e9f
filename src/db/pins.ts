import { amiPins, runtimeImagePins } from '../../schema/index.js';
import type { Pins } from '../runtime/controller.js';
import type { Db } from './client.js';

/** AMI and image pins, re-read at most every `ttlMs` (they change rarely, and only by operators). */
export class PinsCache {
  private cached: { at: number; pins: Pins } | undefined;

  constructor(
    private readonly db: Db,
    private readonly ttlMs = 30_000,
  ) {}

  /** The pins; synchronous while the cache is fresh (every reconcile asks). */
  get(): Pins | Promise<Pins> {
    if (this.cached && Date.now() - this.cached.at < this.ttlMs) return this.cached.pins;
    return this.load();
  }

  private async load(): Promise<Pins> {
    const now = Date.now();
    const [amis, images] = await Promise.all([
      this.db.select().from(amiPins),
      this.db.select().from(runtimeImagePins),
    ]);
    const ami = new Map(amis.map((p) => [`${p.runtime}/${p.region}`, p.amiId]));
    const image = new Map(images.map((p) => [p.runtime, p.image]));
    const pins: Pins = {
      ami: (runtime, region) => ami.get(`${runtime}/${region}`),
      image: (runtime) => image.get(runtime),
    };
    this.cached = { at: now, pins };
    return pins;
  }
}
