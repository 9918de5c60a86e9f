import { and, desc, eq, isNull, lt, sql } from 'drizzle-orm';
import {
  amiPins,
  type Org,
  orgs,
  type PinChangeRow,
  pinChanges,
  runtimeImagePins,
  workspaces,
} from '../../schema/index.js';
import { TENANT_RUNTIME } from '../provisioning/runtimes.js';
import type { Pins } from '../runtime/controller.js';
import type { Db } from './client.js';

/** A pin, as the API and CLI name it: a runtime's image, or a runtime's AMI in a region. */
export type PinKey =
  | { pin: 'runtime_image'; runtime: string }
  | { pin: 'ami'; runtime: string; region: string };

export interface PinValue {
  value: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface PinList {
  runtimeImages: { runtime: string; image: string; createdAt: Date; updatedAt: Date }[];
  amis: { runtime: string; region: string; amiId: string; createdAt: Date; updatedAt: Date }[];
}

/** What a set or unset did: the value before and after (undefined: no pin), and whether anything changed. */
export interface PinChange {
  before: string | undefined;
  after: string | undefined;
  changed: boolean;
  /** The pin row after the change (undefined after an unset). */
  row: PinValue | undefined;
  /** The audit row written (undefined when nothing changed). */
  audit: PinChangeRow | undefined;
}

/**
 * AMI and image pins and their audit trail (DESIGN §11). Every change takes the pin's advisory
 * lock, reads the value before, writes the pin and appends the audit row in one transaction:
 * two concurrent changes of one pin are serialised, and each audit row's "before" is the value
 * the change replaced. The table triggers NOTIFY the controllers when the transaction commits.
 */
export class PinRepository {
  constructor(private readonly db: Db) {}

  async list(): Promise<PinList> {
    const [images, amis] = await Promise.all([
      this.db.select().from(runtimeImagePins).orderBy(runtimeImagePins.runtime),
      this.db.select().from(amiPins).orderBy(amiPins.runtime, amiPins.region),
    ]);
    return { runtimeImages: images, amis };
  }

  /** Sets a pin to `value`; a pin already at that value is left alone (no audit row, no notification). */
  set(key: PinKey, value: string, actor: string): Promise<PinChange> {
    return this.change(key, value, actor);
  }

  /** Removes a pin; a pin that does not exist is left alone (changed: false). */
  unset(key: PinKey, actor: string): Promise<PinChange> {
    return this.change(key, undefined, actor);
  }

  /** The audit trail, newest first, `limit` rows after (older than) the row `beforeId`. */
  async audit(limit: number, options: { beforeId?: number } = {}): Promise<PinChangeRow[]> {
    return this.db
      .select()
      .from(pinChanges)
      .where(options.beforeId === undefined ? undefined : lt(pinChanges.id, options.beforeId))
      .orderBy(desc(pinChanges.id))
      .limit(limit);
  }

  private change(key: PinKey, value: string | undefined, actor: string): Promise<PinChange> {
    return this.db.transaction(async (tx) => {
      const lockKey = key.pin === 'ami' ? `pin:ami:${key.runtime}/${key.region}` : `pin:image:${key.runtime}`;
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext(${lockKey}))`);
      const before = await readPin(tx, key);
      // Already so (also: unsetting a pin that does not exist): nothing to write or announce.
      if (before?.value === value) {
        return { before: before?.value, after: value, changed: false, row: before, audit: undefined };
      }
      let row: PinValue | undefined;
      if (key.pin === 'runtime_image') {
        if (value === undefined) {
          await tx.delete(runtimeImagePins).where(eq(runtimeImagePins.runtime, key.runtime));
        } else {
          const [r] = await tx
            .insert(runtimeImagePins)
            .values({ runtime: key.runtime, image: value })
            .onConflictDoUpdate({
              target: runtimeImagePins.runtime,
              set: { image: value, updatedAt: sql`now()` },
            })
            .returning();
          row = { value: r!.image, createdAt: r!.createdAt, updatedAt: r!.updatedAt };
        }
      } else if (value === undefined) {
        await tx.delete(amiPins).where(and(eq(amiPins.runtime, key.runtime), eq(amiPins.region, key.region)));
      } else {
        const [r] = await tx
          .insert(amiPins)
          .values({ runtime: key.runtime, region: key.region, amiId: value })
          .onConflictDoUpdate({
            target: [amiPins.runtime, amiPins.region],
            set: { amiId: value, updatedAt: sql`now()` },
          })
          .returning();
        row = { value: r!.amiId, createdAt: r!.createdAt, updatedAt: r!.updatedAt };
      }
      const [audit] = await tx
        .insert(pinChanges)
        .values({
          pin: key.pin,
          runtime: key.runtime,
          region: key.pin === 'ami' ? key.region : null,
          action: value === undefined ? 'unset' : 'set',
          oldValue: before?.value ?? null,
          newValue: value ?? null,
          actor,
        })
        .returning();
      return { before: before?.value, after: value, changed: true, row, audit };
    });
  }
}

/** A live owner a pin applies to, with the target its org is placed in. */
export interface PinnedOwner {
  kind: 'org' | 'workspace';
  id: string;
  target: Org['target'];
}

/**
 * The live owners whose instances a pin of `runtime` shapes: every org for the tenant runtime,
 * else the workspaces of that runtime (deleting ones included: they are still reconciled).
 */
export async function ownersPinnedBy(db: Db, runtime: string): Promise<PinnedOwner[]> {
  if (runtime === TENANT_RUNTIME) {
    const rows = await db
      .select({ id: orgs.id, target: orgs.target })
      .from(orgs)
      .where(isNull(orgs.purgedAt));
    return rows.map((r) => ({ kind: 'org', ...r }));
  }
  const rows = await db
    .select({ id: workspaces.id, target: orgs.target })
    .from(workspaces)
    .innerJoin(orgs, eq(orgs.id, workspaces.orgId))
    .where(and(eq(workspaces.runtime, runtime), isNull(workspaces.purgedAt)));
  return rows.map((r) => ({ kind: 'workspace', ...r }));
}

/** A pin change as the pin tables' trigger announces it on the desired-state channel. */
export interface PinNotification {
  kind: 'pin';
  pin: 'runtime_image' | 'ami';
  runtime: string;
  /** AMI pins only. */
  region?: string;
}

async function readPin(tx: Db, key: PinKey): Promise<PinValue | undefined> {
  if (key.pin === 'runtime_image') {
    const [r] = await tx.select().from(runtimeImagePins).where(eq(runtimeImagePins.runtime, key.runtime));
    return r && { value: r.image, createdAt: r.createdAt, updatedAt: r.updatedAt };
  }
  const [r] = await tx
    .select()
    .from(amiPins)
    .where(and(eq(amiPins.runtime, key.runtime), eq(amiPins.region, key.region)));
  return r && { value: r.amiId, createdAt: r.createdAt, updatedAt: r.updatedAt };
}

/**
 * AMI and image pins as the reconcilers read them: re-read at most every `ttlMs`, and at once
 * after {@link invalidate} (a pin change's notification).
 */
export class PinsCache {
  private cached: { at: number; pins: Pins } | undefined;
  /** What each set of pins read holds, as a string (see {@link fingerprint}). */
  private readonly fingerprints = new WeakMap<Pins, string>();
  /** Bumped by every invalidation: a read that started before one is not kept. */
  private version = 0;

  constructor(
    private readonly db: Db,
    private readonly ttlMs = 30_000,
  ) {}

  /** The pins; synchronous while the cache is fresh (every reconcile asks). */
  get(): Pins | Promise<Pins> {
    if (this.cached && Date.now() - this.cached.at < this.ttlMs) return this.cached.pins;
    return this.load();
  }

  /**
   * The pins {@link get} gives now, as a string that differs whenever they do (a resync
   * compares it with the one its last reconciles read).
   */
  async fingerprint(): Promise<string> {
    const pins = await this.get();
    return this.fingerprints.get(pins) ?? '';
  }

  /** Forgets the cached pins: the next {@link get} reads them again. */
  invalidate(): void {
    this.version++;
    this.cached = undefined;
  }

  private async load(): Promise<Pins> {
    const now = Date.now();
    const version = this.version;
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
    this.fingerprints.set(pins, JSON.stringify([[...ami].sort(), [...image].sort()]));
    if (version === this.version) this.cached = { at: now, pins };
    return pins;
  }
}
