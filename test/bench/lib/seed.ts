import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { secrets as secretsSpec, tunnel as tunnelSpec } from '../../../controllers/index.js';
import { createSecretsController } from '../../../controllers/secrets.js';
import type { Org } from '../../../schema/index.js';
import { targetSettings } from '../../../src/cloud/targets.js';
import type { Config } from '../../../src/config.js';
import type { Database } from '../../../src/db/client.js';
import { SEED, type SimStateDump, startSimulator } from '../../../src/sim/index.js';
import { createBenchDatabase } from './db.js';
import { createFleet, expectedStatusRows, readyRows } from './fleet.js';
import { mutatingByOp, total, until } from './measure.js';
import { benchConfig, liftedBuckets, startBenchOperator, waitForLeadership } from './stack.js';

/**
 * A faithful shortcut for seeding very large converged fleets (benchmark 4).
 *
 * Converging 40,000 owners through the operator takes tens of minutes, so instead: (1) the real
 * operator converges ONE org with its workspaces in a real simulator — the template — and a
 * steady-state resync of it must make no mutating call; (2) the template's simulator objects
 * and database rows (orgs, workspaces, status) are copied N times with every identifier
 * replaced by a fresh one of the same shape (uuids, i-/r-/vol-/sg-/sgr- ids, DNS record ids,
 * secret ARN suffixes, tunnel secrets, slugs, private IPs), inside base64 user-data and tunnel
 * tokens too; the one derived value, the secret's input fingerprint, is recomputed by the
 * secrets controller's own `desired()`. RunInstances client tokens are left out, as for a
 * fleet launched more than 24 h ago. The copy is proven faithful by what follows: a full
 * resync of the cloned fleet by the real operator makes no mutating call.
 */

export const TEMPLATE_SLUG = 'tplslug';

export interface Template {
  /** The simulator's serialized state (SerializedState) of the converged template. */
  state: Record<string, unknown> & { instances: unknown[]; securityGroups: SgJson[] };
  orgs: Record<string, unknown>[];
  workspaces: Record<string, unknown>[];
  status: Record<string, unknown>[];
  orgId: string;
  workspaceIds: string[];
}

interface SgJson {
  id: string;
  [k: string]: unknown;
}

/** Converges the template org with the real operator and returns its world, verified steady. */
export async function buildTemplate(): Promise<Template> {
  const sim = await startSimulator({ port: 0, profile: 'fast' });
  const bdb = await createBenchDatabase('template');
  try {
    const { database } = bdb;
    const config = benchConfig(sim, { CREATE_GRACE: '5s' });
    const fleet = await createFleet(database, 1, { prefix: TEMPLATE_SLUG });
    await database.query('UPDATE orgs SET slug = $1', [TEMPLATE_SLUG]);
    const op = await startBenchOperator({
      config,
      database,
      buckets: liftedBuckets(),
      manager: { pollIntervalMs: 50, backoff: { baseDelayMs: 50, maxDelayMs: 500 } },
    });
    try {
      await waitForLeadership(op.operator);
      const expected = expectedStatusRows(1, fleet.workspaceIds.length);
      await until(async () => (await readyRows(database)).ready === expected, 60_000, 50);
      await op.operator.manager.idle();
      // Steady state, proven: a full resync (with deep checks) then changes nothing.
      const since = sim.now();
      await op.operator.manager.resync('template-check');
      await op.operator.manager.idle();
      const mutating = total(mutatingByOp(sim.callLog(since)));
      if (mutating !== 0) throw new Error(`template not steady: ${mutating} mutating calls on resync`);
    } finally {
      await op.stop();
    }
    const dump = sim.dump();
    const {
      now: _now,
      seed: _seed,
      calls: _calls,
      ...state
    } = dump as SimStateDump & Record<string, unknown>;
    for (const i of state.instances as Record<string, unknown>[]) delete i.userDataDecoded;
    return {
      state: { ...(state as unknown as Template['state']), clientTokens: [] },
      orgs: await database.query('SELECT * FROM orgs'),
      workspaces: await database.query('SELECT * FROM workspaces ORDER BY created_at, id'),
      status: await database.query('SELECT * FROM reconcile_status'),
      orgId: fleet.orgIds[0]!,
      workspaceIds: fleet.workspaceIds,
    };
  } finally {
    await bdb.drop();
    await sim.close();
  }
}

const ID_PATTERNS: { re: RegExp; fresh: (old: string) => string }[] = [
  { re: /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, fresh: () => randomUUID() },
  {
    re: /\b(?:i|r|vol|sg|sgr)-[0-9a-f]{17}\b/g,
    fresh: (old) => `${old.slice(0, old.indexOf('-'))}-${hex(17)}`,
  },
  { re: /\b[0-9a-f]{32}\b/g, fresh: () => hex(32) },
];
const SEED_IDS = new Set<string>([
  SEED.vpcId,
  SEED.subnetId,
  SEED.eicSecurityGroupId,
  SEED.cloudflareAccountId,
  SEED.cloudflareZoneId,
  'sgr-0e1c0e1c0e1c0e1c1',
]);

const hex = (n: number) =>
  randomBytes(Math.ceil(n / 2))
    .toString('hex')
    .slice(0, n);
const alnum = (n: number) =>
  Array.from(
    randomBytes(n),
    (b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'[b % 62],
  ).join('');
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Replaces every template identifier in a JSON-able value, recursing into base64 and JSON strings. */
class Remapper {
  private readonly olds: string[];
  private readonly re: RegExp;
  /** How to make a fresh value for each old identifier. */
  private readonly makers = new Map<string, () => string>();

  constructor(template: Template) {
    const text = JSON.stringify(template);
    const add = (old: string, make: () => string) => {
      if (!SEED_IDS.has(old) && !this.makers.has(old)) this.makers.set(old, make);
    };
    for (const { re, fresh } of ID_PATTERNS) for (const m of text.matchAll(re)) add(m[0], () => fresh(m[0]));
    // Identifiers inside base64: the tunnel secret (in tunnel tokens) and user-data's contents.
    for (const t of (template.state.tunnels as { secret: string }[]) ?? []) {
      add(t.secret, () => randomBytes(Buffer.from(t.secret, 'base64').length).toString('base64'));
    }
    for (const i of template.state.instances as { userData?: string }[]) {
      const text2 = i.userData ? Buffer.from(i.userData, 'base64').toString('utf8') : '';
      for (const { re, fresh } of ID_PATTERNS)
        for (const m of text2.matchAll(re)) add(m[0], () => fresh(m[0]));
    }
    // Secret ARN suffixes, private IPs, the slug, and the 12-character workspace name prefixes.
    for (const s of template.state.secrets as { id: string }[]) {
      const suffix = /-([A-Za-z0-9]{6})$/.exec(s.id)?.[1];
      if (suffix) add(`${s.id.slice(0, -7)}-${suffix}`, () => '');
    }
    add(TEMPLATE_SLUG, () => '');
    for (const w of template.workspaceIds) add(w.slice(0, 12), () => '');
    this.olds = [...this.makers.keys()].sort((a, b) => b.length - a.length);
    this.re = new RegExp(this.olds.map(escapeRe).join('|'), 'g');
  }

  /** A fresh set of identifiers for clone number `n`. */
  mapFor(n: number): Map<string, string> {
    const map = new Map<string, string>();
    for (const [old, make] of this.makers) map.set(old, make());
    map.set(TEMPLATE_SLUG, `s-${n}`);
    for (const old of this.olds) {
      if (old.length === 12 && map.get(old) === '') {
        const full = this.olds.find((o) => o.length === 36 && o.startsWith(old));
        map.set(old, map.get(full!)!.slice(0, 12));
      }
      if (old.startsWith('arn:aws:secretsmanager:')) {
        // The ARN embeds the secret's name (with the org id); keep the shape, renew the suffix.
        const base = old.slice(0, -7).replace(this.re, (m) => map.get(m) ?? m);
        map.set(old, `${base}-${alnum(6)}`);
      }
    }
    return map;
  }

  apply(value: unknown, map: Map<string, string>, key = ''): unknown {
    if (typeof value === 'string') {
      if (key === 'userData') {
        return Buffer.from(this.str(Buffer.from(value, 'base64').toString('utf8'), map), 'utf8').toString(
          'base64',
        );
      }
      if (key === 'secretString' || key === 'tunnelToken') {
        const json = key === 'tunnelToken' ? Buffer.from(value, 'base64').toString('utf8') : value;
        let parsed: unknown;
        try {
          parsed = JSON.parse(json);
        } catch {
          return this.str(value, map);
        }
        const out = JSON.stringify(this.apply(parsed, map));
        return key === 'tunnelToken' ? Buffer.from(out, 'utf8').toString('base64') : out;
      }
      return this.str(value, map);
    }
    if (Array.isArray(value)) return value.map((v) => this.apply(v, map, key));
    if (value && typeof value === 'object' && !(value instanceof Date)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = this.apply(v, map, k);
      return out;
    }
    return value;
  }

  private str(s: string, map: Map<string, string>): string {
    return s.replace(this.re, (m) => map.get(m) ?? m);
  }
}

/** A status row as the database returns it (snake_case columns). */
interface StatusJson {
  controller: string;
  external_ids: Record<string, string>;
  state: Record<string, unknown>;
  [column: string]: unknown;
}

export interface ClonedFleet {
  orgIds: string[];
  workspaceIds: string[];
  instances: number;
  securityGroups: number;
}

/**
 * Writes N copies of the template: the simulator's state file (streamed; the simulator loads it
 * at start) and the database rows, in batches.
 */
export async function cloneFleet(
  template: Template,
  n: number,
  target: { stateFile: string; database: Database; config: Config },
): Promise<ClonedFleet> {
  const remap = new Remapper(template);
  const secrets = createSecretsController({ secrets: {} as never });
  const st = template.state;
  const eic = st.securityGroups.filter((g) => g.id === SEED.eicSecurityGroupId);
  const ownGroups = st.securityGroups.filter((g) => g.id !== SEED.eicSecurityGroupId);
  const kinds = ['instances', 'securityGroups', 'secrets', 'tunnels', 'dnsRecords'] as const;
  const buffers: Record<(typeof kinds)[number], string[]> = {
    instances: [],
    securityGroups: [],
    secrets: [],
    tunnels: [],
    dnsRecords: [],
  };
  // Sections go to temporary files first (one pass over the clones), then into one JSON file.
  const parts = Object.fromEntries(
    kinds.map((k) => [k, createWriteStream(`${target.stateFile}.${k}.part`)]),
  ) as Record<(typeof kinds)[number], ReturnType<typeof createWriteStream>>;
  const firstInPart = Object.fromEntries(kinds.map((k) => [k, true])) as Record<
    (typeof kinds)[number],
    boolean
  >;
  const flush = async (k: (typeof kinds)[number]) => {
    if (buffers[k].length === 0) return;
    const text = (firstInPart[k] ? '' : ',') + buffers[k].join(',');
    firstInPart[k] = false;
    buffers[k] = [];
    if (!parts[k].write(text)) await once(parts[k], 'drain');
  };
  let seq = 1;
  let ip = 4;
  const orgRows: unknown[] = [];
  const wsRows: unknown[] = [];
  const statusRows: unknown[] = [];
  const orgIds: string[] = [];
  const workspaceIds: string[] = [];
  const insert = async () => {
    const db = target.database;
    if (orgRows.length > 0)
      await db.query('INSERT INTO orgs SELECT * FROM json_populate_recordset(NULL::orgs, $1::json)', [
        JSON.stringify(orgRows.splice(0)),
      ]);
    if (wsRows.length > 0)
      await db.query(
        'INSERT INTO workspaces SELECT * FROM json_populate_recordset(NULL::workspaces, $1::json)',
        [JSON.stringify(wsRows.splice(0))],
      );
    if (statusRows.length > 0)
      await db.query(
        'INSERT INTO reconcile_status SELECT * FROM json_populate_recordset(NULL::reconcile_status, $1::json)',
        [JSON.stringify(statusRows.splice(0))],
      );
  };
  const sections = {
    instances: st.instances,
    securityGroups: ownGroups,
    secrets: st.secrets as unknown[],
    tunnels: st.tunnels as unknown[],
    dnsRecords: st.dnsRecords as unknown[],
  };
  for (let c = 0; c < n; c++) {
    const map = remap.mapFor(c);
    for (const k of kinds) {
      for (const obj of sections[k]) {
        const copy = remap.apply(obj, map) as Record<string, unknown>;
        copy.seq = seq++;
        if (k === 'instances') {
          copy.privateIp = `10.42.${(ip >> 8) & 255}.${ip & 255}`;
          ip = ip >= 65_534 ? 4 : ip + 1;
        }
        buffers[k].push(JSON.stringify(copy));
      }
    }
    const orgId = map.get(template.orgId)!;
    orgIds.push(orgId);
    for (const w of template.workspaceIds) workspaceIds.push(map.get(w)!);
    for (const o of template.orgs) orgRows.push(remap.apply(o, map));
    for (const w of template.workspaces) wsRows.push(remap.apply(w, map));
    for (const s of template.status) {
      const row = remap.apply(s, map) as StatusJson;
      if (row.controller === secretsSpec.name) {
        // The one derived value: a hash over the tunnel id and fixed inputs, from the controller itself.
        const org = { ...(remap.apply(template.orgs[0], map) as object), id: orgId, slug: `s-${c}` } as Org;
        const tunnel = remap.apply(
          template.status.find((x) => x.controller === tunnelSpec.name),
          map,
        ) as StatusJson;
        const tunnelId = tunnel.external_ids.tunnelId;
        const d = secrets.desired({
          now: Date.now(),
          config: target.config,
          target: targetSettings(target.config)[0]!,
          owner: { kind: 'org', id: orgId },
          org,
          workspace: undefined,
          self: { tunnel: { externalIds: { tunnelId } } as never },
          org_: {},
          pins: { ami: () => undefined, image: () => undefined },
          enabled: new Set(),
        });
        row.state = { ...row.state, fingerprint: d.fingerprint };
      }
      statusRows.push(row);
    }
    if (c % 500 === 499 || c === n - 1) {
      for (const k of kinds) await flush(k);
      await insert();
    }
  }
  for (const k of kinds) {
    parts[k].end();
    await once(parts[k], 'close');
  }
  // Assemble the state file: the header, each section from its part, the footer.
  const { instances: _i, securityGroups: _g, secrets: _s, tunnels: _t, dnsRecords: _d, ...header } = st;
  const out = createWriteStream(target.stateFile);
  const write = async (s: string | Buffer) => {
    if (!out.write(s)) await once(out, 'drain');
  };
  await write(JSON.stringify({ ...header, seq: seq + 1, ip, clientTokens: [] }).slice(0, -1));
  const { createReadStream } = await import('node:fs');
  for (const k of kinds) {
    await write(`,${JSON.stringify(k)}:[`);
    if (k === 'securityGroups' && eic.length > 0)
      await write(`${eic.map((g) => JSON.stringify(g)).join(',')}${n > 0 ? ',' : ''}`);
    for await (const chunk of createReadStream(`${target.stateFile}.${k}.part`)) await write(chunk as Buffer);
    await write(']');
  }
  await write('}');
  out.end();
  await once(out, 'close');
  const { rm } = await import('node:fs/promises');
  await Promise.all(kinds.map((k) => rm(`${target.stateFile}.${k}.part`, { force: true })));
  return {
    orgIds,
    workspaceIds,
    instances: n * st.instances.length,
    securityGroups: n * ownGroups.length,
  };
}
