import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { DEPLOY, exportedSeriesNames, metricNamesIn, placeholder, readText, which } from './manifests.js';

interface Target {
  refId: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query: string };
  datasource?: { type?: string; uid?: string };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

const DATASOURCE = placeholder('datasource');
const dashboard = JSON.parse(readText(join(DEPLOY, 'grafana', 'molecule-operator.json'))) as Dashboard;
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const dataPanels = allPanels.filter((p) => p.type !== 'row');
const exprs = dataPanels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? '' })),
);
const variableQueries = dashboard.templating.list
  .filter((v) => v.type === 'query')
  .map((v) => ({ name: v.name, query: typeof v.query === 'string' ? v.query : (v.query?.query ?? '') }));

describe('Grafana dashboard', () => {
  it('is a current dashboard with a data source variable and env and namespace filters', () => {
    expect(dashboard.uid).toBe('molecule-operator');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const vars = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
    expect(vars.datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(vars.env?.type).toBe('query');
    expect(vars.namespace?.type).toBe('query');
  });

  it('gives every panel a query against the selected data source', () => {
    expect(dataPanels.length).toBeGreaterThan(10);
    for (const p of dataPanels) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      expect(p.datasource?.uid, p.title).toBe(DATASOURCE);
      for (const t of p.targets ?? []) {
        expect(t.expr, `${p.title} ${t.refId}`).toMatch(/\S/);
        expect(t.datasource?.uid, `${p.title} ${t.refId}`).toBe(DATASOURCE);
      }
      expect(new Set(p.targets?.map((t) => t.refId)).size, p.title).toBe(p.targets?.length);
    }
    for (const v of dashboard.templating.list.filter((v) => v.type === 'query')) {
      expect(v.datasource?.uid, v.name).toBe(DATASOURCE);
    }
  });

  it('has unique panel ids and panels that fit the 24-column grid without overlapping', () => {
    expect(new Set(allPanels.map((p) => p.id)).size).toBe(allPanels.length);
    const cells = new Set<string>();
    for (const p of allPanels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w, p.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${p.title} overlaps at ${i},${j}`).toBe(false);
          cells.add(`${i},${j}`);
        }
      }
    }
  });

  it('shows what the issue asks for', () => {
    const all = exprs.map((e) => e.expr).join('\n');
    for (const metric of [
      'molecule_orphan_resources',
      'molecule_orphan_oldest_age_seconds',
      'molecule_managed_resources',
      'molecule_desired_objects',
      'molecule_reconcile_total',
      'molecule_reconcile_duration_seconds_bucket',
      'molecule_workqueue_depth',
      'molecule_workqueue_retries_total',
      'molecule_cloud_requests_total',
      'molecule_ratelimit_wait_seconds_total',
      'molecule_drift_corrections_total',
      'molecule_is_leader',
    ]) {
      expect(all).toContain(metric);
    }
    expect(all).toMatch(/histogram_quantile\(/);
    expect(all).toMatch(/sum by \(target, env, kind\) \(molecule_orphan_resources/);
    // Per target: the primary and the canary account each have their own leader and scan.
    expect(all).toContain('molecule_target_orgs');
    expect(all).toMatch(/and on \(job, instance, target\) \(molecule_is_leader/);
    expect(all).toMatch(/outcome="throttled"/);
  });

  it('uses only metrics the operator exports', async () => {
    const exported = await exportedSeriesNames();
    const used = [
      ...exprs.flatMap((e) => metricNamesIn(e.expr).map((m) => `${e.panel}: ${m}`)),
      ...variableQueries.flatMap((v) => {
        const m = /^label_values\(\s*([a-zA-Z_:][\w:]*)/.exec(v.query);
        expect(m, `variable ${v.name}`).not.toBeNull();
        return [`variable ${v.name}: ${m![1]}`];
      }),
    ];
    expect(used.length).toBeGreaterThan(dataPanels.length);
    expect(used.filter((u) => !exported.has(u.split(': ').at(-1)!))).toEqual([]);
  });
});

// Grafana does not check PromQL; promtool does, once the variables are filled in. Same rule as
// prometheus.test.ts: required in CI, skipped on a machine without promtool.
const promtool = which('promtool');
describe.skipIf(!promtool && !process.env.CI)('Grafana queries', () => {
  it('are valid PromQL (promtool check rules on them as recording rules)', () => {
    expect(promtool, 'promtool is missing: apt-get install prometheus (Debian) or see .ci/run').toBeDefined();
    const filled = (expr: string) =>
      expr
        .replaceAll('$__rate_interval', '5m')
        .replaceAll('$__range', '1h')
        .replace(/\$\{?(namespace|env|target)\}?/g, '.*');
    const rules = exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: filled(e.expr) }));
    const work = mkdtempSync(join(tmpdir(), 'molecule-dashboard-'));
    try {
      const file = join(work, 'dashboard-rules.yaml');
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
      const r = spawnSync(promtool!, ['check', 'rules', file], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
