import { createHash } from 'node:crypto';

/** SHA-256 of a response body, in the chunks it came in. */
export function bytesDigest(chunks: readonly Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(c);
  return hash.digest('base64');
}

interface Remembered<T> {
  digest: string;
  value: T;
}

/**
 * What the last run of each fleet-wide listing made of its pages, by request, with a digest of
 * each page's bytes: a page whose bytes are exactly those of the same request last time is not
 * decoded again, and what was made of it then is returned (the very objects: callers must not
 * change them). Every resync lists the whole fleet and mostly finds it as it was; decoding
 * 10,000 secrets or tunnels again, only to compare them with the last ones, cost tens of
 * milliseconds and tens of megabytes of garbage each time.
 *
 * Bytes equal, decoding equal: nothing is concluded from anything but the bytes, so a page
 * that changed in any way (an object, its order, a count) is decoded. Callers remember
 * fleet-wide listings only, never lookups.
 */
export class PageMemo<T> {
  private readonly listings = new Map<string, Map<string, Remembered<T>>>();

  /** `limit`: how many listings (keys) are remembered at once, the most recent ones. */
  constructor(private readonly limit = 4) {}

  /** Starts a run of `listing` (the same key for the same question, e.g. its filter). */
  begin(listing: string): ListingRun<T> {
    return new ListingRun(this.listings.get(listing), (pages) => {
      this.listings.delete(listing);
      this.listings.set(listing, pages);
      for (const key of this.listings.keys()) {
        if (this.listings.size <= this.limit) break;
        this.listings.delete(key);
      }
    });
  }
}

/** One run of a listing: {@link read} each page, then {@link end} once every page was read. */
export class ListingRun<T> {
  private readonly pages = new Map<string, Remembered<T>>();

  constructor(
    private readonly last: ReadonlyMap<string, Remembered<T>> | undefined,
    private readonly keep: (pages: Map<string, Remembered<T>>) => void,
  ) {}

  /**
   * The page asked for by `request` (what identifies it within the listing: its page number or
   * its place), from `chunks`, the bytes its content is judged by: decoded by `decode` unless
   * they are the last run's. `decode` may answer undefined (a page it cannot read): nothing is
   * remembered then.
   */
  read(request: string, chunks: readonly Uint8Array[], decode: () => T | undefined): T | undefined {
    const digest = bytesDigest(chunks);
    const was = this.last?.get(request);
    const value = was?.digest === digest ? was.value : decode();
    if (value !== undefined) this.pages.set(request, { digest, value });
    return value;
  }

  /** The listing read every page: its pages are the ones the next run compares with. */
  end(): void {
    this.keep(this.pages);
  }
}
