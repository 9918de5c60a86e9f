import { registry } from '../../../controllers/index.js';
import type { Database } from '../../../src/db/client.js';
import type { SimStateDump } from '../../../src/sim/index.js';

/** The workspaces every benchmark org gets: a mix of runtimes and tiers (hermes floors its volume). */
export const WORKSPACE_MIX = [
  { runtime: 'hermes', tier: 3 },
  { runtime: 'langgraph', tier: 4 },
  { runtime: 'claude-code', tier: 3 },
] as const;

/**
 * Writes `orgs` desired orgs with {@link WORKSPACE_MIX} workspaces each, in one transaction, as
 * the API would (same tables, same triggers: every row NOTIFYs on commit).
 */
export async function createFleet(
  database: Database,
  orgs: number,
  options: { prefix?: string; workspacesPerOrg?: number; canaryEvery?: number } = {},
): Promise<{ orgIds: string[]; workspaceIds: string[] }> {
  const prefix = options.prefix ?? 'b';
  const per = options.workspacesPerOrg ?? WORKSPACE_MIX.length;
  const mix = WORKSPACE_MIX.slice(0, per);
  // Every `canaryEvery`-th org is a canary org placed in the canary target (0: none).
  const rows = await database.query<{ kind: string; id: string }>(
    `WITH o AS (
       INSERT INTO orgs (slug, name, is_canary, target)
       SELECT $1 || '-' || g, 'Bench org ' || g, c, CASE WHEN c THEN 'canary' ELSE 'primary' END
         FROM generate_series(1, $2::int) g, LATERAL (SELECT $6::int > 0 AND g % $6::int = 0 AS c) x
       RETURNING id
     ), w AS (
       INSERT INTO workspaces (org_id, name, runtime, tier)
       SELECT o.id, 'ws-' || k, ($3::text[])[k], ($4::int[])[k] FROM o, generate_series(1, $5::int) k
       RETURNING id
     )
     SELECT 'org' AS kind, id::text FROM o UNION ALL SELECT 'workspace', id::text FROM w`,
    [prefix, orgs, mix.map((m) => m.runtime), mix.map((m) => m.tier), per, options.canaryEvery ?? 0],
  );
  return {
    orgIds: rows.filter((r) => r.kind === 'org').map((r) => r.id),
    workspaceIds: rows.filter((r) => r.kind === 'workspace').map((r) => r.id),
  };
}

/** Status rows a converged fleet has: one per controller that keeps something for the owner's kind. */
export const expectedStatusRows = (orgs: number, workspaces: number) =>
  orgs * registry.forOwner('org').length + workspaces * registry.forOwner('workspace').length;

export async function readyRows(database: Database): Promise<{ ready: number; total: number }> {
  const [r] = await database.query<{ ready: number; total: number }>(
    'SELECT count(*) FILTER (WHERE ready)::int AS ready, count(*)::int AS total FROM reconcile_status',
  );
  return r!;
}

export interface DuplicateReport {
  owners: number;
  /** Owners with other than exactly one live resource of a kind, by kind. */
  wrong: Record<string, number>;
  examples: string[];
}

/**
 * Exactly one live instance, security group per owner, and one secret, tunnel and DNS record
 * per org, checked in the simulator's own state.
 */
export function checkDuplicates(
  dump: SimStateDump,
  orgIds: string[],
  workspaceIds: string[],
): DuplicateReport {
  const count = new Map<string, number>();
  const bump = (k: string) => count.set(k, (count.get(k) ?? 0) + 1);
  for (const i of dump.instances) {
    if (i.state === 'terminated' || i.state === 'shutting-down') continue;
    const owner = i.tags.WorkspaceID ?? (i.tags.Role === 'tenant' ? i.tags.OrgID : undefined);
    if (owner) bump(`instance:${owner}`);
  }
  for (const g of dump.securityGroups) {
    if (g.deletedAt !== undefined) continue;
    const owner = g.tags.WorkspaceID ?? (g.tags.Role === 'tenant' ? g.tags.OrgID : undefined);
    if (owner) bump(`sg:${owner}`);
  }
  for (const s of dump.secrets) {
    if (s.deletedAt !== undefined) continue;
    const m = /\/tenant\/([0-9a-f-]{36})\/bootstrap$/.exec(s.name);
    if (m) bump(`secret:${m[1]}`);
  }
  for (const t of dump.tunnels) {
    if (t.deletedAt !== undefined) continue;
    const m = /-([0-9a-f-]{36})$/.exec(t.name);
    if (m) bump(`tunnel:${m[1]}`);
  }
  for (const r of dump.dnsRecords) {
    const m = /org=([0-9a-f-]{36})/.exec(r.comment ?? '');
    if (m) bump(`dns:${m[1]}`);
  }
  const wrong: Record<string, number> = {};
  const examples: string[] = [];
  const expect = (kind: string, owner: string) => {
    const n = count.get(`${kind}:${owner}`) ?? 0;
    if (n !== 1) {
      wrong[kind] = (wrong[kind] ?? 0) + 1;
      if (examples.length < 10) examples.push(`${kind} ${owner}: ${n}`);
    }
  };
  for (const o of orgIds) for (const k of ['instance', 'sg', 'secret', 'tunnel', 'dns']) expect(k, o);
  for (const w of workspaceIds) for (const k of ['instance', 'sg']) expect(k, w);
  return { owners: orgIds.length + workspaceIds.length, wrong, examples };
}
