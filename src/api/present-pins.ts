import type { z } from 'zod';
import type { PinChangeRow } from '../../schema/index.js';
import type { PinChange, PinList } from '../db/pins.js';
import type * as views from './responses.js';

/* Pins as the API answers them and the CLI prints them with --json: one shape for both. */

export type PinListView = z.output<typeof views.PinList>;
export type PinChangeView = z.output<typeof views.PinChangeView>;

const iso = (d: Date) => d.toISOString();

export function presentPinList(list: PinList): PinListView {
  return {
    runtimeImages: list.runtimeImages.map((p) => ({
      runtime: p.runtime,
      image: p.image,
      createdAt: iso(p.createdAt),
      updatedAt: iso(p.updatedAt),
    })),
    amis: list.amis.map((p) => ({
      runtime: p.runtime,
      region: p.region,
      amiId: p.amiId,
      createdAt: iso(p.createdAt),
      updatedAt: iso(p.updatedAt),
    })),
  };
}

/** A pin after a set: the pin, whether anything changed, and the value it replaced. */
export function presentImagePinSet(
  runtime: string,
  change: PinChange,
): z.output<typeof views.RuntimeImagePinChange> {
  const row = change.row!;
  return {
    runtime,
    image: row.value,
    createdAt: iso(row.createdAt),
    updatedAt: iso(row.updatedAt),
    changed: change.changed,
    previous: change.before ?? null,
  };
}

export function presentAmiPinSet(
  runtime: string,
  region: string,
  change: PinChange,
): z.output<typeof views.AmiPinChange> {
  const row = change.row!;
  return {
    runtime,
    region,
    amiId: row.value,
    createdAt: iso(row.createdAt),
    updatedAt: iso(row.updatedAt),
    changed: change.changed,
    previous: change.before ?? null,
  };
}

export function presentPinChange(r: PinChangeRow): PinChangeView {
  return {
    id: r.id,
    pin: r.pin,
    runtime: r.runtime,
    region: r.region,
    action: r.action,
    oldValue: r.oldValue,
    newValue: r.newValue,
    actor: r.actor,
    at: iso(r.at),
  };
}
