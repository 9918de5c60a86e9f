/**
 * Items kept in creation order (by a monotonically increasing `seq`) with an id index.
 * Pagination tokens carry a `seq`, so resuming a page is a binary search, not a rescan,
 * and a full paginated walk stays O(n).
 */
export class OrderedStore<T extends { seq: number; id: string }> {
  private readonly byId = new Map<string, T>();
  private list: T[] = [];
  private readonly dead = new Set<T>();

  get size(): number {
    return this.byId.size;
  }

  get(id: string): T | undefined {
    return this.byId.get(id);
  }

  add(item: T): void {
    const last = this.list[this.list.length - 1];
    this.byId.set(item.id, item);
    if (last === undefined || last.seq < item.seq) {
      this.list.push(item);
    } else {
      // Only loading a saved state can add out of order; keep the list sorted.
      this.list.push(item);
      this.list.sort((a, b) => a.seq - b.seq);
    }
  }

  remove(item: T): void {
    if (this.byId.get(item.id) !== item) return;
    this.byId.delete(item.id);
    this.dead.add(item);
    if (this.dead.size > 256 && this.dead.size * 4 > this.list.length) this.compact();
  }

  compact(): void {
    if (this.dead.size === 0) return;
    this.list = this.list.filter((x) => !this.dead.has(x));
    this.dead.clear();
  }

  clear(): void {
    this.byId.clear();
    this.list = [];
    this.dead.clear();
  }

  /** Index of the first item with seq >= `seq`. */
  private lowerBound(seq: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.list[mid]!.seq < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Live items with seq >= `fromSeq` in ascending order (or seq <= `fromSeq` descending). */
  *scan(fromSeq = 0, descending = false): Generator<T> {
    const list = this.list;
    const dead = this.dead;
    if (!descending) {
      for (let i = this.lowerBound(fromSeq); i < list.length; i++) {
        const item = list[i]!;
        if (dead.size === 0 || !dead.has(item)) yield item;
      }
    } else {
      let i = this.lowerBound(fromSeq + 1) - 1;
      for (; i >= 0; i--) {
        const item = list[i]!;
        if (dead.size === 0 || !dead.has(item)) yield item;
      }
    }
  }

  values(): Generator<T> {
    return this.scan(0);
  }

  /** The item at position `index` among live items (O(1) when nothing was removed). */
  at(index: number): T | undefined {
    if (this.dead.size > 0) this.compact();
    return this.list[index];
  }
}
