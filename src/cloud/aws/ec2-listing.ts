import { isAscii } from 'node:buffer';
import { Readable } from 'node:stream';
import type { IngressRule, Instance, InstanceState, SecurityGroup } from '../ports.js';

/**
 * Decoding of the two listings the resync inventory pages through (DescribeInstances and
 * DescribeSecurityGroups), straight from the EC2 Query XML into our own types.
 *
 * Why: at 10,000 orgs × 3 workspaces a resync pages through 80,000 instances and groups
 * (~3 KB of XML each). The SDK's generic deserializer builds a tree of the whole page and then
 * the SDK's shapes before we copy the few fields we use: about 130 µs and tens of KB of
 * garbage per object, most of a resync's CPU and the operator's peak memory
 * (test/bench/scale.ts). This reader makes one pass over the page and builds only our objects.
 *
 * It reads the bytes as they came, led by the shape of the response: it descends only into the
 * elements that hold a field we keep, compares tag names in place and jumps over the rest. The
 * page never becomes one big string; only the values kept become strings, each of its own (a
 * slice of a page-sized string would keep the whole page in memory), and a value that repeats
 * from object to object (states, types, tag keys…) is made once and then shared.
 *
 * The SDK still builds, signs, sends and retries the request and turns errors into exceptions;
 * only a successful page's body is read here (a middleware on that one command, innermost, so it
 * runs per attempt). Anything unexpected in the text falls back to the SDK's own deserializer
 * for that page. test/integration/ec2-listing.test.ts checks that both give the same result.
 */

/** Input this reader does not handle; the caller falls back to the SDK's deserializer. */
export class UnsupportedXml extends Error {}

const ENTITY = /&(?:#(\d+)|#x([0-9a-fA-F]+)|(amp|lt|gt|quot|apos));/g;
const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeText(s: string): string {
  if (s.indexOf('&') === -1) return s;
  return s.replace(
    ENTITY,
    (_m, dec: string | undefined, hex: string | undefined, name: string | undefined) => {
      if (dec) return String.fromCodePoint(Number(dec));
      if (hex) return String.fromCodePoint(Number.parseInt(hex, 16));
      return NAMED[name!]!;
    },
  );
}

/** The SDK's rule for a leaf's text: kept as is, except that whitespace with a line break is ''. */
function leafText(raw: string): string {
  if (raw.indexOf('\n') !== -1 && raw.trim() === '') return '';
  return decodeText(raw);
}

/**
 * One copy of the values that repeat from object to object (states, types, image, subnet and
 * VPC ids, tag keys, shared tag values…), for every page read in this process. A fixed number of
 * slots, each holding the last value that hashed to it: a value seen again costs a comparison of
 * its bytes and no allocation, and unique values (ids, names) only replace one another instead
 * of piling up in a map for the whole listing. The bytes of each slot's value sit side by side
 * with the others', where comparing them is cheapest; longer values are not shared.
 */
const SHARED_SLOTS = 2048;
const SHARED_MAX = 64;
const sharedStrings: string[] = new Array<string>(SHARED_SLOTS).fill('');
const sharedLengths = new Uint8Array(SHARED_SLOTS);
const sharedBytes = new Uint8Array(SHARED_SLOTS * SHARED_MAX);

const TAB = 9;
const LF = 10;
const CR = 13;
const SPACE = 32;
const BANG = 33;
const QUOTE = 34;
const AMPERSAND = 38;
const APOSTROPHE = 39;
const MINUS = 45;
const SLASH = 47;
const ZERO = 48;
const LT = 60;
const GT = 62;
const QUESTION = 63;

/** Bytes that end a tag name (1), or may not appear in one (2). */
const NAME_ENDS = new Uint8Array(256);
for (const c of [GT, SLASH, SPACE, TAB, LF, CR]) NAME_ENDS[c] = 1;
for (const c of [QUOTE, APOSTROPHE]) NAME_ENDS[c] = 2;

/** An element name, as the bytes to compare with the page's. */
type Name = Uint8Array;
const name = (text: string): Name => new Uint8Array(Buffer.from(text, 'latin1'));

/**
 * A forward reader over the bytes of one XML document, steered by the decoders below: `root`
 * and `child` step onto the next element, `is` tells its name, `leaf` reads its text and `skip`
 * jumps past it. Attributes are skipped (EC2 puts only `xmlns` on the root). DOCTYPE and CDATA
 * are not expected from EC2 and make it give up, as do markup inside a value, content after the
 * root element and mismatched tags. Text around child elements is ignored, as the SDK does.
 *
 * Markup is all ASCII, and UTF-8 never uses an ASCII byte inside a longer character, so the
 * bytes are read as they are; only the texts kept are decoded.
 */
class PageReader {
  private readonly b: Buffer;
  /** Whether the whole page is ASCII: then a text's bytes are its characters. */
  private readonly ascii: boolean;
  /** Just past the markup read last. */
  private i = 0;
  /** The element `root` or `child` stepped onto: its name's span, and whether it is `<name/>`. */
  private nameStart = 0;
  private nameEnd = 0;
  empty = false;
  /** The text `leaf` read, and whether it needs decoding (an entity, a line break or UTF-8). */
  private from = 0;
  private to = 0;
  private coded = false;
  /** Where the next '&' and line break are, at or after the last text read (the end: none). */
  private nextAmp = -1;
  private nextLf = -1;

  constructor(xml: Buffer | string) {
    this.b = typeof xml === 'string' ? Buffer.from(xml, 'utf8') : xml;
    this.ascii = isAscii(this.b);
  }

  /** Steps onto the root element and returns its name; undefined when there is none. */
  root(): Name | undefined {
    const b = this.b;
    for (;;) {
      const lt = this.find(LT, this.i);
      if (lt === -1) return undefined;
      const c = b[lt + 1];
      if (c === QUESTION) this.i = this.declarationEnd(lt);
      else if (c === BANG) this.i = this.commentEnd(lt);
      else if (c === SLASH) throw new UnsupportedXml('closing tag before the root element');
      else {
        this.open(lt);
        return b.subarray(this.nameStart, this.nameEnd);
      }
    }
  }

  /** After the root element: only comments and declarations may follow. */
  end(): void {
    const b = this.b;
    for (;;) {
      const lt = this.find(LT, this.i);
      if (lt === -1) return;
      const c = b[lt + 1];
      if (c === QUESTION) this.i = this.declarationEnd(lt);
      else if (c === BANG) this.i = this.commentEnd(lt);
      else throw new UnsupportedXml('content after the root element');
    }
  }

  /**
   * Steps onto the next child of `parent`, the element whose content is being read: true, or
   * false once `</parent>` is read. Only for a `parent` that is not empty.
   */
  child(parent: Name): boolean {
    const b = this.b;
    for (;;) {
      const lt = this.find(LT, this.i);
      if (lt === -1) throw new UnsupportedXml('unexpected end of input');
      const c = b[lt + 1];
      if (c === SLASH) {
        this.close(parent, lt);
        return false;
      }
      if (c === BANG) {
        // Text split by a comment is not expected from EC2: give up rather than guess.
        if (this.decode(this.i, lt).trim() !== '') throw new UnsupportedXml('comment inside text');
        this.i = this.commentEnd(lt);
      } else if (c === QUESTION) {
        this.i = this.declarationEnd(lt);
      } else {
        this.open(lt);
        return true;
      }
    }
  }

  /** Whether the element stepped onto is called `name`. */
  is(name: Name): boolean {
    const start = this.nameStart;
    const length = name.length;
    if (this.nameEnd - start !== length) return false;
    const b = this.b;
    for (let k = 0; k < length; k++) if (b[start + k] !== name[k]) return false;
    return true;
  }

  /** When the element stepped onto is called `name`: reads its text (see {@link leaf}) and says true. */
  at(name: Name): boolean {
    if (!this.is(name)) return false;
    this.leaf(name);
    return true;
  }

  /** Moves past the element stepped onto without reading it. */
  skip(): void {
    if (this.empty) return;
    const b = this.b;
    const from = this.i;
    const start = this.nameStart;
    const length = this.nameEnd - start;
    // Most skipped elements are leaves: the next tag closes them.
    const lt = this.find(LT, from);
    if (lt !== -1 && b[lt + 1] === SLASH && b[lt + 2 + length] === GT) {
      let k = 0;
      while (k < length && b[start + k] === b[lt + 2 + k]) k++;
      if (k === length) {
        this.i = lt + 3 + length;
        return;
      }
    }
    const tags = tagsOf(b, start, this.nameEnd);
    const close = b.indexOf(tags.close, from);
    if (close === -1) throw new UnsupportedXml('missing closing tag');
    // Searching backwards from the closing tag scans only this element's own content.
    if (b.lastIndexOf(tags.open, close) < from) {
      this.i = close + length + 3;
      return;
    }
    // An element of the same name inside: walk it to find the right closing tag.
    while (this.child(tags.name)) this.skip();
  }

  /** Reads the text of the element stepped onto, called `name`, and its closing tag. */
  leaf(name: Name): void {
    const b = this.b;
    let from = this.i;
    if (this.empty) {
      this.from = this.to = from;
      this.coded = false;
      return;
    }
    for (;;) {
      const lt = this.find(LT, from);
      if (lt === -1) throw new UnsupportedXml('unexpected end of input');
      if (b[lt + 1] === SLASH) {
        this.close(name, lt);
        this.from = from;
        this.to = lt;
        // Each search starts where the last one found its byte: one pass over the page in all.
        if (this.nextAmp < from) this.nextAmp = found(b.indexOf(AMPERSAND, from), b.length);
        if (this.nextLf < from) this.nextLf = found(b.indexOf(LF, from), b.length);
        this.coded = this.nextAmp < lt || this.nextLf < lt || (!this.ascii && !asciiBetween(b, from, lt));
        return;
      }
      if (!this.startsWith('<!--', lt)) throw new UnsupportedXml('markup inside a value');
      // A comment may come before the text, not inside it.
      if (this.decode(from, lt).trim() !== '') throw new UnsupportedXml('comment inside text');
      from = this.commentEnd(lt);
    }
  }

  /** The text `leaf` read, as a string of its own. */
  text(): string {
    if (this.coded) return leafText(this.decode(this.from, this.to));
    return this.b.toString('latin1', this.from, this.to);
  }

  /** The text `leaf` read, as the shared copy of that value (for values that repeat). */
  shared(): string {
    const { b, from, to } = this;
    const length = to - from;
    if (this.coded || length > SHARED_MAX) return this.text();
    if (length === 0) return '';
    // A few bytes tell most values apart; a collision only costs a copy.
    let h = Math.imul(length ^ b[from]!, 0x01000193);
    h = Math.imul(h ^ b[from + (length >> 1)]!, 0x01000193);
    for (let k = Math.max(from, to - 4); k < to; k++) h = Math.imul(h ^ b[k]!, 0x01000193);
    const slot = (h ^ (h >>> 15)) & (SHARED_SLOTS - 1);
    const at = slot * SHARED_MAX;
    if (sharedLengths[slot] === length) {
      let k = 0;
      while (k < length && sharedBytes[at + k] === b[from + k]) k++;
      if (k === length) return sharedStrings[slot]!;
    }
    const copy = b.toString('latin1', from, to);
    sharedStrings[slot] = copy;
    sharedLengths[slot] = length;
    for (let k = 0; k < length; k++) sharedBytes[at + k] = b[from + k]!;
    return copy;
  }

  /** The text `leaf` read as a port, as `Number` reads it (digits are read in place); -1 when empty. */
  port(): number {
    const { b, from, to } = this;
    if (!this.coded && to - from > 0 && to - from < 10) {
      const negative = b[from] === MINUS;
      let value = 0;
      let k = negative ? from + 1 : from;
      while (k < to && b[k]! >= ZERO && b[k]! <= ZERO + 9) value = value * 10 + b[k++]! - ZERO;
      if (k === to && k > from + (negative ? 1 : 0)) return negative ? -value : value;
    }
    const text = this.text();
    return text === '' ? -1 : Number(text);
  }

  /** The text `leaf` read as a time, as `new Date` reads it; undefined when empty. */
  time(): Date | undefined {
    const text = this.text();
    return text ? new Date(text) : undefined;
  }

  /** Where the next byte `c` is, at or after `from`; -1 when there is none. */
  private find(c: number, from: number): number {
    const b = this.b;
    let i = from;
    while (i < b.length && b[i] !== c) i++;
    return i < b.length ? i : -1;
  }

  private startsWith(text: string, at: number): boolean {
    for (let k = 0; k < text.length; k++) if (this.b[at + k] !== text.charCodeAt(k)) return false;
    return true;
  }

  /** Bytes as UTF-8 text, before any rule for leaves (off the fast path only). */
  private decode(from: number, to: number): string {
    return this.b.toString('utf8', from, to);
  }

  /** Reads the start tag at `lt`. */
  private open(lt: number): void {
    const b = this.b;
    let end = lt + 1;
    while (end < b.length && NAME_ENDS[b[end]!] === 0) end++;
    if (end >= b.length) throw new UnsupportedXml('unterminated tag');
    if (NAME_ENDS[b[end]!] === 2) throw new UnsupportedXml('quote in a tag name');
    if (end === lt + 1) throw new UnsupportedXml('empty tag name');
    this.nameStart = lt + 1;
    this.nameEnd = end;
    if (b[end] === GT) {
      this.empty = false;
      this.i = end + 1;
    } else if (b[end] === SLASH && b[end + 1] === GT) {
      this.empty = true;
      this.i = end + 2;
    } else {
      // Attributes, whose quoted values may hold '>'.
      const gt = tagEnd(b, end);
      this.empty = b[gt - 1] === SLASH;
      this.i = gt + 1;
    }
  }

  /** Reads the closing tag at `lt`, which must close `name`. */
  private close(name: Name, lt: number): void {
    const b = this.b;
    const length = name.length;
    const gt = lt + 2 + length;
    if (b[gt] === GT) {
      let k = 0;
      while (k < length && b[lt + 2 + k] === name[k]) k++;
      if (k === length) {
        this.i = gt + 1;
        return;
      }
    }
    // Whitespace is allowed before the '>'.
    const end = this.find(GT, lt + 2);
    if (end === -1) throw new UnsupportedXml('unterminated tag');
    const closing = this.decode(lt + 2, end).trim();
    if (!Buffer.from(closing, 'utf8').equals(name)) throw new UnsupportedXml(`mismatched </${closing}>`);
    this.i = end + 1;
  }

  private commentEnd(lt: number): number {
    if (!this.startsWith('<!--', lt)) throw new UnsupportedXml('CDATA or DOCTYPE');
    const end = this.b.indexOf('-->', lt + 4, 'latin1');
    if (end === -1) throw new UnsupportedXml('unterminated comment');
    return end + 3;
  }

  private declarationEnd(lt: number): number {
    const end = this.b.indexOf('?>', lt + 2, 'latin1');
    if (end === -1) throw new UnsupportedXml('unterminated declaration');
    return end + 2;
  }
}

const found = (at: number, none: number) => (at === -1 ? none : at);

function asciiBetween(b: Buffer, from: number, to: number): boolean {
  for (let k = from; k < to; k++) if (b[k]! > 127) return false;
  return true;
}

/** Where a start tag with attributes ends: its first '>' outside quotes. */
function tagEnd(b: Buffer, from: number): number {
  let quote = 0;
  for (let i = from; i < b.length; i++) {
    const c = b[i]!;
    if (quote) {
      if (c === quote) quote = 0;
    } else if (c === QUOTE || c === APOSTROPHE) quote = c;
    else if (c === GT) return i;
  }
  throw new UnsupportedXml('unterminated tag');
}

/** An element name with its start and closing tags, to search the bytes for. */
interface Tags {
  name: Name;
  open: Uint8Array;
  close: Uint8Array;
}

/** The tags of the elements skipped whole (a few dozen names in EC2's responses), made once each. */
const tagSlots: (Tags | undefined)[] = new Array<Tags | undefined>(256).fill(undefined);

function tagsOf(b: Buffer, start: number, end: number): Tags {
  const length = end - start;
  let h = 0x811c9dc5;
  for (let k = start; k < end; k++) h = Math.imul(h ^ b[k]!, 0x01000193);
  const slot = (h ^ (h >>> 15)) & (tagSlots.length - 1);
  const known = tagSlots[slot];
  if (known && known.name.length === length) {
    let k = 0;
    while (k < length && known.name[k] === b[start + k]) k++;
    if (k === length) return known;
  }
  // Copies: a view would keep this page in memory.
  const open = new Uint8Array(length + 1);
  open[0] = LT;
  open.set(b.subarray(start, end), 1);
  const close = new Uint8Array(length + 3);
  close.set([LT, SLASH]);
  close.set(b.subarray(start, end), 2);
  close[length + 2] = GT;
  const tags = { name: open.subarray(1), open, close };
  tagSlots[slot] = tags;
  return tags;
}

/** The element names the decoders look for. */
const E = {
  item: name('item'),
  reservationSet: name('reservationSet'),
  instancesSet: name('instancesSet'),
  nextToken: name('nextToken'),
  instanceId: name('instanceId'),
  imageId: name('imageId'),
  instanceState: name('instanceState'),
  name: name('name'),
  instanceType: name('instanceType'),
  subnetId: name('subnetId'),
  vpcId: name('vpcId'),
  groupSet: name('groupSet'),
  groupId: name('groupId'),
  iamInstanceProfile: name('iamInstanceProfile'),
  metadataOptions: name('metadataOptions'),
  httpTokens: name('httpTokens'),
  httpPutResponseHopLimit: name('httpPutResponseHopLimit'),
  arn: name('arn'),
  clientToken: name('clientToken'),
  launchTime: name('launchTime'),
  tagSet: name('tagSet'),
  key: name('key'),
  value: name('value'),
  securityGroupInfo: name('securityGroupInfo'),
  groupName: name('groupName'),
  groupDescription: name('groupDescription'),
  ipPermissions: name('ipPermissions'),
  ipProtocol: name('ipProtocol'),
  fromPort: name('fromPort'),
  toPort: name('toPort'),
  groups: name('groups'),
  ipRanges: name('ipRanges'),
  cidrIp: name('cidrIp'),
  ipv6Ranges: name('ipv6Ranges'),
  cidrIpv6: name('cidrIpv6'),
  description: name('description'),
};

/** A `tagSet` (whose children are being read) into `tags`: the last value of a key wins. */
function readTags(r: PageReader, tags: Record<string, string>): void {
  while (r.child(E.tagSet)) {
    if (!r.is(E.item) || r.empty) {
      r.skip();
      continue;
    }
    let key: string | undefined;
    let value: string | undefined;
    while (r.child(E.item)) {
      if (r.at(E.key)) {
        key = r.shared();
      } else if (r.at(E.value)) {
        value = r.shared();
      } else r.skip();
    }
    if (key !== undefined) tags[key] = value ?? '';
  }
}

export interface InstancePage {
  instances: Instance[];
  nextToken: string | undefined;
}

/** DescribeInstancesResponse → our instances (the same fields as the SDK path's toInstance). */
export function decodeInstancesPage(xml: Buffer | string): InstancePage {
  const r = new PageReader(xml);
  const instances: Instance[] = [];
  let nextToken: string | undefined;
  const root = r.root();
  if (root === undefined) return { instances, nextToken };
  if (!r.empty) {
    while (r.child(root)) {
      if (r.is(E.reservationSet) && !r.empty) {
        while (r.child(E.reservationSet)) {
          if (!r.is(E.item) || r.empty) r.skip();
          else
            while (r.child(E.item)) {
              if (!r.is(E.instancesSet) || r.empty) r.skip();
              else
                while (r.child(E.instancesSet)) {
                  if (r.is(E.item)) instances.push(readInstance(r));
                  else r.skip();
                }
            }
        }
      } else if (r.at(E.nextToken)) {
        nextToken = r.text() || undefined;
      } else r.skip();
    }
  }
  r.end();
  return { instances, nextToken };
}

/** The instance `<item>` stepped onto; the elements we do not keep (network interfaces…) are skipped. */
function readInstance(r: PageReader): Instance {
  const instance: Instance = {
    id: '',
    state: 'pending',
    instanceType: '',
    imageId: '',
    subnetId: undefined,
    vpcId: undefined,
    securityGroupIds: [],
    iamInstanceProfileArn: undefined,
    clientToken: undefined,
    launchTime: undefined,
    metadata: undefined,
    tags: {},
  };
  if (r.empty) return instance;
  while (r.child(E.item)) {
    if (r.at(E.instanceId)) {
      instance.id = r.text();
    } else if (r.at(E.imageId)) {
      instance.imageId = r.shared();
    } else if (r.is(E.instanceState)) {
      if (r.empty) continue;
      while (r.child(E.instanceState)) {
        if (r.at(E.name)) instance.state = (r.shared() || 'pending') as InstanceState;
        else r.skip();
      }
    } else if (r.at(E.instanceType)) {
      instance.instanceType = r.shared();
    } else if (r.at(E.subnetId)) {
      instance.subnetId = r.shared();
    } else if (r.at(E.vpcId)) {
      instance.vpcId = r.shared();
    } else if (r.is(E.groupSet)) {
      if (r.empty) continue;
      while (r.child(E.groupSet)) {
        if (!r.is(E.item) || r.empty) r.skip();
        else
          while (r.child(E.item)) {
            if (!r.at(E.groupId)) r.skip();
            else {
              const id = r.shared();
              if (id) instance.securityGroupIds.push(id);
            }
          }
      }
    } else if (r.is(E.iamInstanceProfile)) {
      if (r.empty) continue;
      while (r.child(E.iamInstanceProfile)) {
        if (r.at(E.arn)) instance.iamInstanceProfileArn = r.shared();
        else r.skip();
      }
    } else if (r.is(E.metadataOptions)) {
      if (r.empty) continue;
      const metadata = { httpTokens: 'optional', hopLimit: 1 };
      while (r.child(E.metadataOptions)) {
        if (r.at(E.httpTokens)) {
          metadata.httpTokens = r.shared();
        } else if (r.at(E.httpPutResponseHopLimit)) {
          metadata.hopLimit = Number(r.shared()) || 1;
        } else r.skip();
      }
      instance.metadata = metadata;
    } else if (r.at(E.clientToken)) {
      instance.clientToken = r.text() || undefined;
    } else if (r.at(E.launchTime)) {
      instance.launchTime = r.time();
    } else if (r.is(E.tagSet)) {
      if (!r.empty) readTags(r, instance.tags);
    } else r.skip();
  }
  return instance;
}

export interface SecurityGroupPage {
  groups: SecurityGroup[];
  nextToken: string | undefined;
}

/** DescribeSecurityGroupsResponse → our groups (the same fields as the SDK path's toSecurityGroup). */
export function decodeSecurityGroupsPage(xml: Buffer | string): SecurityGroupPage {
  const r = new PageReader(xml);
  const groups: SecurityGroup[] = [];
  let nextToken: string | undefined;
  const root = r.root();
  if (root === undefined) return { groups, nextToken };
  if (!r.empty) {
    const sources: Sources = { v4: [], pairs: [], v6: [] };
    while (r.child(root)) {
      if (r.is(E.securityGroupInfo) && !r.empty) {
        while (r.child(E.securityGroupInfo)) {
          if (r.is(E.item)) groups.push(readGroup(r, sources));
          else r.skip();
        }
      } else if (r.at(E.nextToken)) {
        nextToken = r.text() || undefined;
      } else r.skip();
    }
  }
  r.end();
  return { groups, nextToken };
}

/**
 * One permission's sources, each as a CIDR or group id followed by a description; reused from
 * one permission to the next.
 */
interface Sources {
  v4: string[];
  pairs: string[];
  v6: string[];
}

/** The group `<item>` stepped onto. */
function readGroup(r: PageReader, sources: Sources): SecurityGroup {
  const group: SecurityGroup = { id: '', name: '', vpcId: undefined, description: '', ingress: [], tags: {} };
  if (r.empty) return group;
  while (r.child(E.item)) {
    if (r.at(E.groupId)) {
      group.id = r.text();
    } else if (r.at(E.groupName)) {
      group.name = r.text();
    } else if (r.at(E.vpcId)) {
      group.vpcId = r.shared();
    } else if (r.at(E.groupDescription)) {
      group.description = r.text();
    } else if (r.is(E.ipPermissions)) {
      if (r.empty) continue;
      while (r.child(E.ipPermissions)) {
        if (r.is(E.item)) readPermission(r, sources, group.ingress);
        else r.skip();
      }
    } else if (r.is(E.tagSet)) {
      if (!r.empty) readTags(r, group.tags);
    } else r.skip();
  }
  return group;
}

/** The permission `<item>` stepped onto, as one rule per source in the SDK path's order. */
function readPermission(r: PageReader, sources: Sources, rules: IngressRule[]): void {
  let protocol = '-1';
  let fromPort = -1;
  let toPort = -1;
  const { v4, pairs, v6 } = sources;
  v4.length = 0;
  pairs.length = 0;
  v6.length = 0;
  if (!r.empty) {
    while (r.child(E.item)) {
      if (r.at(E.ipProtocol)) {
        protocol = r.shared() || '-1';
      } else if (r.at(E.fromPort)) {
        fromPort = r.port();
      } else if (r.at(E.toPort)) {
        toPort = r.port();
      } else if (r.is(E.ipRanges)) readSources(r, E.ipRanges, E.cidrIp, v4);
      else if (r.is(E.groups)) readSources(r, E.groups, E.groupId, pairs);
      else if (r.is(E.ipv6Ranges)) readSources(r, E.ipv6Ranges, E.cidrIpv6, v6);
      else r.skip();
    }
  }
  // The SDK path's order: IPv4 ranges, then group pairs, then IPv6 ranges.
  for (let k = 0; k < v4.length; k += 2) {
    const cidr = v4[k]!;
    const description = v4[k + 1]!;
    rules.push(
      description ? { protocol, fromPort, toPort, cidr, description } : { protocol, fromPort, toPort, cidr },
    );
  }
  for (let k = 0; k < pairs.length; k += 2) {
    const sourceGroupId = pairs[k]!;
    const description = pairs[k + 1]!;
    rules.push(
      description
        ? { protocol, fromPort, toPort, sourceGroupId, description }
        : { protocol, fromPort, toPort, sourceGroupId },
    );
  }
  for (let k = 0; k < v6.length; k += 2) {
    const cidr = v6[k]!;
    const description = v6[k + 1]!;
    rules.push(
      description ? { protocol, fromPort, toPort, cidr, description } : { protocol, fromPort, toPort, cidr },
    );
  }
}

/** The list of sources `list` (stepped onto) into `out`: `field`'s value and the description of each item. */
function readSources(r: PageReader, list: Name, field: Name, out: string[]): void {
  if (r.empty) return;
  while (r.child(list)) {
    if (!r.is(E.item)) {
      r.skip();
      continue;
    }
    let value = '';
    let description = '';
    if (!r.empty)
      while (r.child(E.item)) {
        if (r.at(field)) {
          value = r.shared();
        } else if (r.at(E.description)) {
          description = r.shared();
        } else r.skip();
      }
    out.push(value, description);
  }
}

/** The SDK command (DescribeInstances, DescribeSecurityGroups, ListSecrets) whose responses are read here. */
export interface ListingCommand {
  readonly middlewareStack: unknown;
}

/** The one shape of the SDK's middleware stack used here (a deserialize-step middleware). */
interface DeserializeStack {
  add(
    middleware: (
      next: (args: unknown) => Promise<{ response: unknown; output: unknown }>,
    ) => (args: unknown) => Promise<{ response: unknown; output: unknown }>,
    options: { step: 'deserialize'; priority: 'low'; name: string },
  ): void;
}

/**
 * Has `take` read the body of the command's successful responses, in the chunks it came in: it
 * returns what it made of them, or undefined to leave them to the SDK's deserializer. What the
 * SDK deserializes instead is `empty`, an empty response of the operation in its protocol.
 */
export function readBodies<T>(
  command: ListingCommand,
  take: (chunks: Buffer[]) => T | undefined,
  empty = '<Response/>',
): () => T | undefined {
  let page: T | undefined;
  (command.middlewareStack as unknown as DeserializeStack).add(
    (next) => async (args) => {
      page = undefined;
      const result = await next(args);
      const response = result.response as { statusCode?: number; body?: unknown };
      if (response.statusCode !== 200 || !(response.body instanceof Readable)) return result;
      const chunks: Buffer[] = [];
      for await (const chunk of response.body) chunks.push(chunk as Buffer);
      page = take(chunks);
      // The SDK still deserializes something: an empty response of the same operation.
      response.body = Readable.from(page === undefined ? chunks : [Buffer.from(empty)]);
      return result;
    },
    { step: 'deserialize', priority: 'low', name: 'moleculeListingDecoder' },
  );
  return () => page;
}

/**
 * Has `decode` read the body of the command's successful responses; returns a function giving
 * the last decoded page, or undefined when the SDK's deserializer must be used for it.
 */
export function decodeWith<T>(command: ListingCommand, decode: (xml: Buffer) => T): () => T | undefined {
  return readBodies(command, (chunks) => {
    try {
      return decode(Buffer.concat(chunks));
    } catch (e) {
      if (!(e instanceof UnsupportedXml)) throw e;
      return undefined;
    }
  });
}

/** Keeps the body of the command's successful response as it came, in the chunks it came in. */
export function keepBody(command: ListingCommand): () => Buffer[] | undefined {
  return readBodies(command, (chunks) => chunks);
}

/** The listing element of each page decoded here. */
export type ListingSet = 'reservationSet' | 'securityGroupInfo';

const HEAD = 4096;
const TAIL = 8192;
const REQUEST_ID = Buffer.from('<requestId>');
const REQUEST_ID_END = Buffer.from('</requestId>');
const NEXT_TOKEN = Buffer.from('<nextToken>');
const NEXT_TOKEN_END = Buffer.from('</nextToken>');

/** The first bytes of a page (at least `n` of them, when it has that many). */
function head(chunks: Buffer[], n: number): Buffer {
  if (chunks[0]!.length >= n || chunks.length === 1) return chunks[0]!;
  const some: Buffer[] = [];
  let size = 0;
  for (const c of chunks) {
    some.push(c);
    size += c.length;
    if (size >= n) break;
  }
  return Buffer.concat(some);
}

/** The last bytes of a page (at least `n`, when it has that many), and where they start in it. */
function tail(chunks: Buffer[], n: number): { bytes: Buffer; at: number } {
  let total = 0;
  for (const c of chunks) total += c.length;
  const last = chunks[chunks.length - 1]!;
  if (last.length >= n || chunks.length === 1) return { bytes: last, at: total - last.length };
  const some: Buffer[] = [];
  let size = 0;
  for (let i = chunks.length - 1; i >= 0 && size < n; i--) {
    some.unshift(chunks[i]!);
    size += chunks[i]!.length;
  }
  return { bytes: Buffer.concat(some), at: total - size };
}

const isSpace = (c: number | undefined) => c === SPACE || c === TAB || c === LF || c === CR;

/** Whether `b` has `word` at `at`. */
function has(b: Buffer, at: number, word: Buffer | string): boolean {
  const w = typeof word === 'string' ? Buffer.from(word) : word;
  return at >= 0 && at + w.length <= b.length && b.compare(w, 0, w.length, at, at + w.length) === 0;
}

/**
 * A raw listing page (in the chunks it came in), split for a digest of what it lists. EC2's
 * listing responses are `<root><requestId/><set>…</set>[<nextToken/>]</root>`: the request id
 * and the page token differ from call to call while the objects listed stay the same, so
 * `content` is the page less those two; `token` is the next page's. Only the page's first and
 * last few kilobytes are read. Undefined when the page is not laid out so (then nothing is
 * concluded from its bytes).
 */
export function pageParts(
  chunks: Buffer[],
  set: ListingSet,
): { content: Buffer[]; token: string | undefined } | undefined {
  if (chunks.length === 0) return undefined;
  // Head: [<?xml …?>] <root …> <requestId>…</requestId> <set
  const h = head(chunks, HEAD);
  let i = 0;
  while (isSpace(h[i])) i++;
  if (has(h, i, '<?')) {
    i = h.indexOf('?>', i);
    if (i === -1) return undefined;
    i += 2;
  }
  while (isSpace(h[i])) i++;
  if (h[i] !== LT || h[i + 1] === SLASH || h[i + 1] === BANG || h[i + 1] === QUESTION) return undefined;
  i = h.indexOf(GT, i);
  if (i === -1 || h[i - 1] === SLASH) return undefined;
  i++;
  while (isSpace(h[i])) i++;
  if (!has(h, i, REQUEST_ID)) return undefined;
  const idStart = i;
  i = h.indexOf(REQUEST_ID_END, i);
  if (i === -1) return undefined;
  const idEnd = i + REQUEST_ID_END.length;
  i = idEnd;
  while (isSpace(h[i])) i++;
  if (!has(h, i, `<${set}`) || !(h[i + set.length + 1] === GT || h[i + set.length + 1] === SLASH))
    return undefined;

  // Tail: </set> or <set/>, [<nextToken>…</nextToken>] </root>
  const { bytes: t, at } = tail(chunks, TAIL);
  let j = t.length - 1;
  while (isSpace(t[j])) j--;
  if (t[j] !== GT) return undefined;
  const rootClose = t.lastIndexOf('</', j);
  if (rootClose === -1) return undefined;
  j = rootClose - 1;
  while (isSpace(t[j])) j--;
  let token: string | undefined;
  let tokenSpan: [number, number] | undefined;
  if (has(t, j - NEXT_TOKEN_END.length + 1, NEXT_TOKEN_END)) {
    const open = t.lastIndexOf(NEXT_TOKEN, j);
    if (open === -1) return undefined;
    const text = t.toString('utf8', open + NEXT_TOKEN.length, j - NEXT_TOKEN_END.length + 1);
    token = text.trim() === '' ? undefined : decodeText(text);
    tokenSpan = [at + open, at + j + 1];
    j = open - 1;
    while (isSpace(t[j])) j--;
  }
  const closes = has(t, j - set.length - 2, `</${set}>`) || has(t, j - set.length - 2, `<${set}/>`);
  if (!closes) return undefined;

  // Everything but the request id and the token, without copying.
  const cuts: [number, number][] = [[idStart, idEnd]];
  if (tokenSpan) cuts.push(tokenSpan);
  const content: Buffer[] = [];
  let offset = 0;
  for (const c of chunks) {
    const end = offset + c.length;
    let from = offset;
    for (const [cutStart, cutEnd] of cuts) {
      if (cutEnd <= from || cutStart >= end) continue;
      if (cutStart > from) content.push(c.subarray(from - offset, cutStart - offset));
      from = Math.max(from, cutEnd);
    }
    if (from < end) content.push(c.subarray(from - offset));
    offset = end;
  }
  return { content, token };
}
