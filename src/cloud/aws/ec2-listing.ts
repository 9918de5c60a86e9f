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
 * (test/bench/scale.ts). This reader makes one pass over the text and builds only our objects.
 *
 * The SDK still builds, signs, sends and retries the request and turns errors into exceptions;
 * only a successful page's body is read here (a middleware on that one command, innermost, so it
 * runs per attempt). Anything unexpected in the text falls back to the SDK's own deserializer
 * for that page. test/unit/cloud/ec2-listing.test.ts checks that both give the same result.
 */

/**
 * Receives elements as they open and close; `text` is a leaf's text content ('' for an element
 * with children). `open` returning true skips the element's content (it is not closed either).
 */
interface XmlVisitor {
  open(name: string, depth: number): boolean | undefined;
  close(name: string, depth: number, text: string): void;
}

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

/**
 * One pass over an XML document: elements, text, self-closing tags, comments and the
 * declaration. Attributes are skipped (EC2 puts only `xmlns` on the root). DOCTYPE and CDATA are
 * not expected from EC2 and make it give up (the caller then uses the SDK's deserializer).
 * Leaf text follows the SDK's rule: kept as is, except whitespace with a line break is ''.
 */
function walkXml(x: string, v: XmlVisitor): void {
  const names: string[] = [];
  let i = 0;
  // Where the text of the innermost open element starts, or -1 once it has had a child.
  let textFrom = -1;
  for (;;) {
    const lt = x.indexOf('<', i);
    if (lt === -1) {
      if (names.length > 0) throw new UnsupportedXml('unexpected end of input');
      return;
    }
    const c = x.charCodeAt(lt + 1);
    if (c === 63 /* ? */) {
      const end = x.indexOf('?>', lt + 2);
      if (end === -1) throw new UnsupportedXml('unterminated declaration');
      i = end + 2;
      continue;
    }
    if (c === 33 /* ! */) {
      if (!x.startsWith('<!--', lt)) throw new UnsupportedXml('CDATA or DOCTYPE');
      const end = x.indexOf('-->', lt + 4);
      if (end === -1) throw new UnsupportedXml('unterminated comment');
      if (textFrom !== -1) {
        // Text split by a comment is not expected from EC2: give up rather than guess.
        if (x.slice(textFrom, lt).trim() !== '') throw new UnsupportedXml('comment inside text');
        textFrom = end + 3;
      }
      i = end + 3;
      continue;
    }
    const gt = x.indexOf('>', lt + 1);
    if (gt === -1) throw new UnsupportedXml('unterminated tag');
    if (c === 47 /* / */) {
      const name = x.slice(lt + 2, gt).trim();
      const open = names.pop();
      if (open !== name) throw new UnsupportedXml(`mismatched </${name}>`);
      let text = '';
      if (textFrom !== -1) {
        text = x.slice(textFrom, lt);
        if (text.indexOf('\n') !== -1 && text.trim() === '') text = '';
        else text = decodeText(text);
      }
      v.close(name, names.length + 1, text);
      textFrom = -1;
      i = gt + 1;
      continue;
    }
    // An opening or self-closing tag; attributes may hold '>' only inside quotes.
    let end = gt;
    const tag = x.slice(lt + 1, end);
    if (tag.indexOf('"') !== -1 || tag.indexOf("'") !== -1) {
      end = tagEnd(x, lt + 1);
    }
    const selfClosing = x.charCodeAt(end - 1) === 47; /* / */
    let nameEnd = lt + 1;
    while (nameEnd < end) {
      const ch = x.charCodeAt(nameEnd);
      if (ch === 32 || ch === 9 || ch === 10 || ch === 13 || ch === 47 || ch === 62) break;
      nameEnd++;
    }
    const name = x.slice(lt + 1, nameEnd);
    if (name === '') throw new UnsupportedXml('empty tag name');
    if (textFrom !== -1 && names.length > 0) {
      // The parent has an element child: text around it is ignored, as the SDK does.
      textFrom = -1;
    }
    names.push(name);
    const skip = v.open(name, names.length);
    if (selfClosing) {
      names.pop();
      if (!skip) v.close(name, names.length + 1, '');
      textFrom = -1;
      i = end + 1;
      continue;
    }
    const after = skip ? skipTo(x, name, end + 1) : -1;
    if (after !== -1) {
      names.pop();
      textFrom = -1;
      i = after;
      continue;
    }
    textFrom = end + 1;
    i = end + 1;
  }
}

/**
 * Where the content of element `name` (starting at `from`) ends: just past its closing tag, or
 * -1 when an element of the same name is nested inside it (then it is walked, not skipped).
 */
function skipTo(x: string, name: string, from: number): number {
  const close = x.indexOf(`</${name}>`, from);
  if (close === -1) throw new UnsupportedXml(`missing </${name}>`);
  // Searching backwards from the close tag scans only this element's own text.
  if (x.lastIndexOf(`<${name}`, close) >= from) return -1;
  return close + name.length + 3;
}

function tagEnd(x: string, from: number): number {
  let quote = 0;
  for (let i = from; i < x.length; i++) {
    const c = x.charCodeAt(i);
    if (quote) {
      if (c === quote) quote = 0;
    } else if (c === 34 || c === 39) quote = c;
    else if (c === 62) return i;
  }
  throw new UnsupportedXml('unterminated tag');
}

/** The instance's elements toInstance reads; the rest (network interfaces, block devices…) is skipped. */
const INSTANCE_FIELDS = new Set([
  'instanceId',
  'imageId',
  'instanceState',
  'instanceType',
  'subnetId',
  'vpcId',
  'groupSet',
  'iamInstanceProfile',
  'clientToken',
  'launchTime',
  'tagSet',
]);
const GROUP_FIELDS = new Set([
  'groupId',
  'groupName',
  'vpcId',
  'groupDescription',
  'ipPermissions',
  'tagSet',
]);

/** One copy of each repeated value (states, types, tag values…) across the pages of one listing. */
export type Interner = Map<string, string>;

function interning(strings: Interner): (s: string) => string {
  return (s) => {
    const known = strings.get(s);
    if (known !== undefined) return known;
    const copy = own(s);
    strings.set(copy, copy);
    return copy;
  };
}

/**
 * A copy of a value cut out of the page. NOTE: V8 represents a slice of 13 or more characters
 * as a view of the whole string, so an inventory of slices would keep every page it was read
 * from in memory (tens of MB per thousand instances).
 */
function own(s: string): string {
  return s.length < 13 ? s : ` ${s}`.slice(1);
}

export interface InstancePage {
  instances: Instance[];
  nextToken: string | undefined;
}

/** DescribeInstancesResponse → our instances (the same fields as the SDK path's toInstance). */
export function decodeInstancesPage(xml: Buffer | string, strings: Interner = new Map()): InstancePage {
  const keep = interning(strings);
  const instances: Instance[] = [];
  let nextToken: string | undefined;
  const stack: string[] = [];
  let cur: Instance | undefined;
  let at = 0; // depth of the current instance's <item>
  let tagKey: string | undefined;
  let tagValue: string | undefined;
  walkXml(typeof xml === 'string' ? xml : xml.toString('utf8'), {
    open(name, depth) {
      stack[depth - 1] = name;
      if (cur && depth === at + 1) return !INSTANCE_FIELDS.has(name);
      if (depth === 4 && stack[1] === 'reservationSet') return name !== 'instancesSet';
      if (
        name === 'item' &&
        depth >= 5 &&
        stack[depth - 2] === 'instancesSet' &&
        stack[depth - 3] === 'item' &&
        stack[depth - 4] === 'reservationSet'
      ) {
        cur = {
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
          tags: {},
        };
        at = depth;
      } else if (cur && name === 'item' && depth === at + 2 && stack[at] === 'tagSet') {
        tagKey = undefined;
        tagValue = undefined;
      }
      return false;
    },
    close(name, depth, text) {
      if (depth === 2 && name === 'nextToken') nextToken = text || undefined;
      if (!cur) return;
      if (depth === at) {
        instances.push(cur);
        cur = undefined;
        return;
      }
      const under = stack[at]; // the instance's child this element is in
      if (depth === at + 1) {
        switch (name) {
          case 'instanceId':
            cur.id = own(text);
            break;
          case 'imageId':
            cur.imageId = keep(text);
            break;
          case 'instanceType':
            cur.instanceType = keep(text);
            break;
          case 'subnetId':
            cur.subnetId = keep(text);
            break;
          case 'vpcId':
            cur.vpcId = keep(text);
            break;
          case 'clientToken':
            cur.clientToken = text ? own(text) : undefined;
            break;
          case 'launchTime':
            cur.launchTime = text ? new Date(text) : undefined;
            break;
        }
      } else if (depth === at + 2) {
        if (under === 'instanceState' && name === 'name')
          cur.state = keep(text || 'pending') as InstanceState;
        else if (under === 'iamInstanceProfile' && name === 'arn') cur.iamInstanceProfileArn = keep(text);
        else if (under === 'tagSet' && name === 'item' && tagKey !== undefined)
          cur.tags[tagKey] = keep(tagValue ?? '');
      } else if (depth === at + 3 && stack[at + 1] === 'item') {
        if (under === 'groupSet' && name === 'groupId' && text) cur.securityGroupIds.push(keep(text));
        else if (under === 'tagSet' && name === 'key') tagKey = text;
        else if (under === 'tagSet' && name === 'value') tagValue = text;
      }
    },
  });
  return { instances, nextToken };
}

export interface SecurityGroupPage {
  groups: SecurityGroup[];
  nextToken: string | undefined;
}

interface PermissionParts {
  protocol: string;
  fromPort: number;
  toPort: number;
  v4: { cidr: string; description?: string }[];
  pairs: { sourceGroupId: string; description?: string }[];
  v6: { cidr: string; description?: string }[];
}

/** DescribeSecurityGroupsResponse → our groups (the same fields as the SDK path's toSecurityGroup). */
export function decodeSecurityGroupsPage(
  xml: Buffer | string,
  strings: Interner = new Map(),
): SecurityGroupPage {
  const keep = interning(strings);
  const groups: SecurityGroup[] = [];
  let nextToken: string | undefined;
  const stack: string[] = [];
  let cur: SecurityGroup | undefined;
  let at = 0;
  let perm: PermissionParts | undefined;
  let member: { id?: string; cidr?: string; description?: string } | undefined;
  let tagKey: string | undefined;
  let tagValue: string | undefined;
  walkXml(typeof xml === 'string' ? xml : xml.toString('utf8'), {
    open(name, depth) {
      stack[depth - 1] = name;
      if (cur && depth === at + 1) return !GROUP_FIELDS.has(name);
      if (name !== 'item') return false;
      if (depth === 3 && stack[1] === 'securityGroupInfo') {
        cur = { id: '', name: '', vpcId: undefined, description: '', ingress: [], tags: {} };
        at = depth;
      } else if (cur && depth === at + 2 && stack[at] === 'ipPermissions') {
        perm = { protocol: '-1', fromPort: -1, toPort: -1, v4: [], pairs: [], v6: [] };
      } else if (cur && depth === at + 2 && stack[at] === 'tagSet') {
        tagKey = undefined;
        tagValue = undefined;
      } else if (perm && depth === at + 4) {
        member = {};
      }
      return false;
    },
    close(name, depth, text) {
      if (depth === 2 && name === 'nextToken') nextToken = text || undefined;
      if (!cur) return;
      if (depth === at) {
        groups.push(cur);
        cur = undefined;
        return;
      }
      const under = stack[at];
      if (depth === at + 1) {
        if (name === 'groupId') cur.id = own(text);
        else if (name === 'groupName') cur.name = own(text);
        else if (name === 'vpcId') cur.vpcId = keep(text);
        else if (name === 'groupDescription') cur.description = own(text);
      } else if (under === 'tagSet') {
        if (depth === at + 3 && name === 'key') tagKey = text;
        else if (depth === at + 3 && name === 'value') tagValue = text;
        else if (depth === at + 2 && tagKey !== undefined) cur.tags[tagKey] = keep(tagValue ?? '');
      } else if (under === 'ipPermissions' && perm) {
        if (depth === at + 3) {
          if (name === 'ipProtocol') perm.protocol = keep(text || '-1');
          else if (name === 'fromPort') perm.fromPort = text === '' ? -1 : Number(text);
          else if (name === 'toPort') perm.toPort = text === '' ? -1 : Number(text);
        } else if (depth === at + 5 && member) {
          const list = stack[at + 2];
          if (name === 'description') member.description = keep(text);
          else if (list === 'groups' && name === 'groupId') member.id = keep(text);
          else if (list === 'ipRanges' && name === 'cidrIp') member.cidr = keep(text);
          else if (list === 'ipv6Ranges' && name === 'cidrIpv6') member.cidr = keep(text);
        } else if (depth === at + 4 && member) {
          const list = stack[at + 2];
          const d = member.description ? { description: member.description } : {};
          if (list === 'groups') perm.pairs.push({ sourceGroupId: member.id ?? '', ...d });
          else if (list === 'ipRanges') perm.v4.push({ cidr: member.cidr ?? '', ...d });
          else if (list === 'ipv6Ranges') perm.v6.push({ cidr: member.cidr ?? '', ...d });
          member = undefined;
        } else if (depth === at + 2) {
          // The SDK path's order: IPv4 ranges, then group pairs, then IPv6 ranges.
          const base = { protocol: perm.protocol, fromPort: perm.fromPort, toPort: perm.toPort };
          const rules: IngressRule[] = cur.ingress;
          for (const r of perm.v4) rules.push({ ...base, ...r });
          for (const p of perm.pairs) rules.push({ ...base, ...p });
          for (const r of perm.v6) rules.push({ ...base, ...r });
          perm = undefined;
        }
      }
    },
  });
  return { groups, nextToken };
}

/** The SDK command (DescribeInstances or DescribeSecurityGroups) whose responses are read here. */
interface ListingCommand {
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
 * Has `decode` read the body of the command's successful responses; returns a function giving
 * the last decoded page, or undefined when the SDK's deserializer must be used for it.
 */
export function decodeWith<T>(command: ListingCommand, decode: (xml: Buffer) => T): () => T | undefined {
  let page: T | undefined;
  (command.middlewareStack as unknown as DeserializeStack).add(
    (next) => async (args) => {
      page = undefined;
      const result = await next(args);
      const response = result.response as { statusCode?: number; body?: unknown };
      if (response.statusCode !== 200 || !(response.body instanceof Readable)) return result;
      const chunks: Buffer[] = [];
      for await (const chunk of response.body) chunks.push(chunk as Buffer);
      const raw = Buffer.concat(chunks);
      try {
        page = decode(raw);
        // The SDK still deserializes something: an empty response of the same operation.
        response.body = Readable.from([Buffer.from('<Response/>')]);
      } catch (e) {
        if (!(e instanceof UnsupportedXml)) throw e;
        response.body = Readable.from([raw]);
      }
      return result;
    },
    { step: 'deserialize', priority: 'low', name: 'moleculeListingDecoder' },
  );
  return () => page;
}
