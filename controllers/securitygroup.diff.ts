import type { IngressRule } from '../src/cloud/ports.js';

/**
 * Rule identity is (protocol, port range, source): AWS ignores the description when matching,
 * so we do too (provider-aws `DiffPermissions`). Protocol names are normalised because AWS may
 * report `tcp` as `6`.
 */
export function ruleKey(r: IngressRule): string {
  const proto = PROTOCOLS[r.protocol.toLowerCase()] ?? r.protocol.toLowerCase();
  return `${proto}|${r.fromPort}|${r.toPort}|${r.cidr ?? ''}|${r.sourceGroupId ?? ''}`;
}

const PROTOCOLS: Record<string, string> = { '6': 'tcp', '17': 'udp', '1': 'icmp', all: '-1' };

/** Rules to add and rules to remove so that `have` becomes exactly `want`. */
export function diffRules(
  want: IngressRule[],
  have: IngressRule[],
): { add: IngressRule[]; remove: IngressRule[] } {
  // Each rule's key is computed once: every security group is diffed on every resync.
  const wantKeys = want.map(ruleKey);
  const haveKeys = have.map(ruleKey);
  return {
    add: missing(want, wantKeys, new Set(haveKeys)),
    remove: missing(have, haveKeys, new Set(wantKeys)),
  };
}

/** The rules (once each) whose key is not in `other`. */
function missing(rules: IngressRule[], keys: string[], other: Set<string>): IngressRule[] {
  const out: IngressRule[] = [];
  let seen: Set<string> | undefined;
  for (let i = 0; i < rules.length; i++) {
    const k = keys[i]!;
    if (other.has(k)) continue;
    seen ??= new Set();
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(rules[i]!);
  }
  return out;
}

export function describeRule(r: IngressRule): string {
  return `${r.protocol}/${r.fromPort === r.toPort ? r.fromPort : `${r.fromPort}-${r.toPort}`} from ${r.cidr ?? r.sourceGroupId}`;
}

/** True when a rule opens SSH to the whole internet — never allowed, whatever the spec says. */
export function opensSshToWorld(r: IngressRule): boolean {
  const world = r.cidr === '0.0.0.0/0' || r.cidr === '::/0';
  const proto = PROTOCOLS[r.protocol.toLowerCase()] ?? r.protocol.toLowerCase();
  const coversSsh =
    proto === '-1' || ((proto === 'tcp' || proto === '-1') && r.fromPort <= 22 && r.toPort >= 22);
  return world && coversSsh;
}
