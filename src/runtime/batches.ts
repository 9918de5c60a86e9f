import { createHash } from 'node:crypto';
import type { Outcome } from './queue.js';

/**
 * What a resync remembers of its batches of orgs from one resync to the next (the incremental
 * resync). A batch's *inputs* are everything its reconciles read: the rows of its orgs, their
 * workspaces and status (a digest the database computes), the EC2 listing of its orgs (a digest
 * of the pages' bytes), their secrets, tunnels and DNS records as listed, and the pins. When a
 * resync finds a batch's inputs exactly as they were when every reconcile of the batch last
 * ended steady (decided from those inputs, nothing written, nothing to do), reconciling it again
 * would decide the same: the batch is neither decoded nor reconciled. Anything that changes an
 * input, in the cloud out of band or in the database, changes its digest, and the batch is
 * worked off in full. What no listing shows (a tunnel's configuration) is still checked in turn
 * (manager.ts).
 *
 * Batches keep their boundaries from one resync to the next, so that a new org changes one
 * batch, not every batch after it.
 */
export class ResyncBatches {
  /** First org id of each batch, ascending. */
  private starts: string[] = [];
  private readonly records = new Map<string, BatchRecord>();

  /**
   * Splits the orgs (ids ascending) into batches of at most `max`: the first time in full
   * batches, then into the last resync's ranges, a range that outgrew `max` split in equal
   * parts. When deletions have left many more batches than needed, it starts over.
   */
  plan(sorted: readonly string[], max: number): string[][] {
    const batches: string[][] = [];
    let range = 0;
    let current: string[] = [];
    const fresh = this.starts.length === 0;
    const close = () => {
      if (current.length === 0) return;
      // A first plan fills batches up; a range that outgrew `max` is split in equal parts.
      const size = fresh ? max : Math.ceil(current.length / Math.ceil(current.length / max));
      for (let i = 0; i < current.length; i += size) batches.push(current.slice(i, i + size));
      current = [];
    };
    for (const id of sorted) {
      // The range an id is in: the last one starting at or before it (the first takes any smaller id).
      let moved = false;
      while (range + 1 < this.starts.length && this.starts[range + 1]! <= id) {
        range++;
        moved = true;
      }
      if (moved) close();
      current.push(id);
    }
    close();
    const needed = Math.ceil(sorted.length / max);
    if (batches.length > Math.max(needed + 2, Math.ceil(needed * 1.25))) {
      batches.length = 0;
      for (let i = 0; i < sorted.length; i += max) batches.push(sorted.slice(i, i + max));
    }
    this.starts = batches.map((b) => b[0]!);
    const kept = new Set(this.starts);
    for (const start of this.records.keys()) if (!kept.has(start)) this.records.delete(start);
    return batches;
  }

  /** Whether this batch may have been steady last time (then its inputs are worth comparing). */
  known(orgIds: readonly string[]): boolean {
    return this.records.get(orgIds[0]!)?.steady() ?? false;
  }

  /** The record of the batch when its reconciles all ended steady on exactly these inputs. */
  steady(orgIds: readonly string[], inputs: string): BatchRecord | undefined {
    const record = this.records.get(orgIds[0]!);
    return record?.steady() && record.inputs === inputs ? record : undefined;
  }

  /** Starts a batch's record as it is worked off on these inputs (replacing any earlier one). */
  begin(orgIds: readonly string[], inputs: string, counts: BatchCounts): BatchRecord {
    const record = new BatchRecord(inputs, counts);
    this.records.set(orgIds[0]!, record);
    return record;
  }

  /** Forgets every batch (leadership changed: the next resync works everything off). */
  forget(): void {
    this.records.clear();
  }
}

/** One digest of a batch's inputs: its org ids and the digest of each input, in order. */
export function batchInputs(orgIds: readonly string[], parts: readonly string[]): string {
  const hash = createHash('sha256');
  hash.update(orgIds.join(','));
  for (const p of parts) hash.update(`\u0000${p}`);
  return hash.digest('base64');
}

/** What a batch listed (reported again when it is skipped). */
export interface BatchCounts {
  instances: number;
  securityGroups: number;
}

/**
 * A batch as last worked off: on which inputs, and whether each of its reconciles has ended
 * steady. A reconcile that ends otherwise (wrote, acted, failed, will look again), or that never
 * reports (it ran for another reason than the resync), leaves the batch unsteady.
 */
export class BatchRecord {
  private expected = 0;
  private steadyCount = 0;
  private unsteady = false;

  constructor(
    readonly inputs: string,
    readonly counts: BatchCounts,
  ) {}

  /** A reconcile queued with this batch's snapshot. */
  expect(): void {
    this.expected++;
  }

  /** How one of them ended. */
  ended(outcome: Outcome): void {
    if (outcome.result === 'success' && outcome.steady) this.steadyCount++;
    else this.unsteady = true;
  }

  steady(): boolean {
    return !this.unsteady && this.expected > 0 && this.steadyCount === this.expected;
  }
}
