import type { Rng, World } from './world.js';

const RUNTIMES = ['hermes', 'langgraph', 'crewai', 'claude-code'] as const;

interface FleetWorkspace {
  id: string;
  tier: number;
  power: 'running' | 'stopped';
}
interface FleetOrg {
  id: string;
  slug: string;
  power: 'running' | 'stopped';
  workspaces: Map<string, FleetWorkspace>;
}

export type FleetOp =
  | 'createOrg'
  | 'addWorkspace'
  | 'changeTier'
  | 'powerOrg'
  | 'powerWorkspace'
  | 'deleteWorkspace'
  | 'deleteOrg';

/**
 * Drives desired state through the HTTP API the way users do: create orgs and workspaces,
 * change tiers and power, delete some. Every call must succeed; the fleet remembers what is
 * live so it never asks for something the API would rightly refuse.
 */
export class Fleet {
  readonly orgs = new Map<string, FleetOrg>();
  readonly ops: Record<FleetOp, number> = {
    createOrg: 0,
    addWorkspace: 0,
    changeTier: 0,
    powerOrg: 0,
    powerWorkspace: 0,
    deleteWorkspace: 0,
    deleteOrg: 0,
  };
  /** Orgs the API placed in each target. */
  readonly placed: Record<string, number> = {};
  private n = 0;

  constructor(
    private readonly world: World,
    private readonly rng: Rng,
    private readonly prefix = 'c',
  ) {}

  get total(): number {
    return Object.values(this.ops).reduce((a, b) => a + b, 0);
  }

  private async ok(method: string, path: string, body?: unknown) {
    const res = await this.world.api.call(method, path, body);
    if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${res.text}`);
    return res.body;
  }

  async createOrg(workspaces = this.rng.int(0, 2), isCanary = this.rng.chance(0.2)): Promise<FleetOrg> {
    const slug = `${this.prefix}-${++this.n}-${Math.floor(this.rng.next() * 1e6).toString(36)}`;
    const body = await this.ok('POST', '/cp/orgs', {
      slug,
      name: `Chaos ${slug}`,
      isCanary,
    });
    this.placed[body.target] = (this.placed[body.target] ?? 0) + 1;
    const org: FleetOrg = { id: body.id, slug, power: 'running', workspaces: new Map() };
    this.orgs.set(slug, org);
    this.ops.createOrg++;
    for (let i = 0; i < workspaces; i++) await this.addWorkspace(org);
    return org;
  }

  async addWorkspace(org = this.pickOrg()): Promise<void> {
    if (!org) return;
    const tier = this.rng.pick([3, 4]);
    const body = await this.ok('POST', `/cp/orgs/${org.slug}/workspaces`, {
      runtime: this.rng.pick(RUNTIMES),
      tier,
    });
    org.workspaces.set(body.id, { id: body.id, tier, power: 'running' });
    this.ops.addWorkspace++;
  }

  async changeTier(): Promise<void> {
    const ws = this.pickWorkspace();
    if (!ws) return;
    ws.tier = ws.tier === 3 ? 4 : 3;
    await this.ok('PATCH', `/cp/workspaces/${ws.id}`, { tier: ws.tier });
    this.ops.changeTier++;
  }

  async powerOrg(): Promise<void> {
    const org = this.pickOrg();
    if (!org) return;
    org.power = org.power === 'running' ? 'stopped' : 'running';
    await this.ok('POST', `/cp/admin/tenants/${org.slug}/${org.power === 'running' ? 'start' : 'stop'}`);
    this.ops.powerOrg++;
  }

  async powerWorkspace(): Promise<void> {
    const ws = this.pickWorkspace();
    if (!ws) return;
    ws.power = ws.power === 'running' ? 'stopped' : 'running';
    await this.ok('POST', `/cp/workspaces/${ws.id}/${ws.power === 'running' ? 'start' : 'stop'}`);
    this.ops.powerWorkspace++;
  }

  async deleteWorkspace(): Promise<void> {
    const org = this.pickOrg((o) => o.workspaces.size > 0);
    if (!org) return;
    const ws = this.rng.pick([...org.workspaces.values()]);
    org.workspaces.delete(ws.id);
    await this.ok('DELETE', `/cp/workspaces/${ws.id}`);
    this.ops.deleteWorkspace++;
  }

  async deleteOrg(): Promise<void> {
    const org = this.pickOrg();
    if (!org) return;
    this.orgs.delete(org.slug);
    await this.ok('DELETE', `/cp/orgs/${org.slug}`);
    this.ops.deleteOrg++;
  }

  /** One random change, weighted towards the ones that keep the fleet busy. */
  async randomStep(): Promise<FleetOp> {
    const weights: [FleetOp, number][] = [
      ['createOrg', this.orgs.size < 3 ? 4 : 1.5],
      ['addWorkspace', 2],
      ['changeTier', 3],
      ['powerOrg', 1],
      ['powerWorkspace', 2],
      ['deleteWorkspace', 1.5],
      ['deleteOrg', this.orgs.size > 3 ? 1.5 : 0.3],
    ];
    let r = this.rng.next() * weights.reduce((a, [, w]) => a + w, 0);
    let op: FleetOp = 'createOrg';
    for (const [name, w] of weights) {
      r -= w;
      if (r <= 0) {
        op = name;
        break;
      }
    }
    await this[op]();
    return op;
  }

  private pickOrg(filter: (o: FleetOrg) => boolean = () => true): FleetOrg | undefined {
    const xs = [...this.orgs.values()].filter(filter);
    return xs.length ? this.rng.pick(xs) : undefined;
  }

  private pickWorkspace(): FleetWorkspace | undefined {
    const xs = [...this.orgs.values()].flatMap((o) => [...o.workspaces.values()]);
    return xs.length ? this.rng.pick(xs) : undefined;
  }
}
