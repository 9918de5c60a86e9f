import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  DEPLOY,
  exportedSeriesNames,
  type K8sObject,
  markdownAnchors,
  metricNamesIn,
  readText,
  readYaml,
  which,
} from './manifests.js';

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleGroup {
  name: string;
  interval?: string;
  rules: Rule[];
}

const RULES_FILE = join(DEPLOY, 'prometheus', 'rules.yaml');
const groups = readYaml<{ groups: RuleGroup[] }>(RULES_FILE).groups;
const rules = groups.flatMap((g) => g.rules);
const alerts = rules.filter((r): r is Rule & { alert: string } => r.alert !== undefined);
const exprOf = (alert: string) => {
  const rule = alerts.find((r) => r.alert === alert);
  if (!rule) throw new Error(`no alert ${alert} in rules.yaml`);
  return rule.expr;
};

const MAIN_README = 'https://github.com/molecule-ai/molecule-operator/blob/main/README.md#';
const DEPLOY_README = 'https://github.com/molecule-ai/molecule-operator/blob/main/deploy/README.md#';
/** Sections the top-level README carries for on-call. */
const RUNBOOKS = [
  'runbook-orphans-rising',
  'runbook-deletion-stuck',
  'runbook-throttling',
  'runbook-leader-not-elected',
  'runbook-reconcile-errors',
  'runbook-orphan-scan-failing',
  'runbook-target-not-configured',
  'runbook-rollout-paused',
];

describe('alerting rules', () => {
  it('are the same in the rules file and the PrometheusRule', () => {
    const cr = readYaml<K8sObject & { spec: { groups: RuleGroup[] } }>(
      join(DEPLOY, 'prometheus', 'prometheusrule.yaml'),
    );
    expect(cr.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(cr.kind).toBe('PrometheusRule');
    expect(cr.spec.groups).toEqual(groups);
  });

  it('cover what on-call needs', () => {
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining([
        'OrphanedResourcesPresent',
        'OrphanScanFailing',
        'OrphanScanStale',
        'OrphanDeletionBlocked',
        'NoLeader',
        'SplitBrain',
        'ReconcileErrorsSustained',
        'DeletionStuck',
        'CloudThrottlingSustained',
        'CloudflareLockedOut',
        'WorkqueueBacklog',
        'ControllerDisabled',
        'RolloutPaused',
        'RedeployFailuresRepeated',
      ]),
    );
    expect(new Set(alerts.map((a) => a.alert)).size).toBe(alerts.length);
  });

  it.each(alerts.map((a) => [a.alert, a]))(
    '%s has a severity, summary, description and a runbook that exists',
    (_, a) => {
      const rule = a as Rule;
      expect(['critical', 'warning', 'info']).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary).toEqual(expect.stringMatching(/\S/));
      expect(rule.annotations?.description?.length).toBeGreaterThan(40);
      const url = rule.annotations?.runbook_url ?? '';
      if (url.startsWith(DEPLOY_README)) {
        expect(markdownAnchors(readText(join(DEPLOY, 'README.md')))).toContain(
          url.slice(DEPLOY_README.length),
        );
      } else {
        expect(url.startsWith(MAIN_README), url).toBe(true);
        expect(RUNBOOKS).toContain(url.slice(MAIN_README.length));
      }
    },
  );

  it('use only metrics the operator exports', async () => {
    const exported = await exportedSeriesNames();
    const used = rules.flatMap((r) => metricNamesIn(r.expr).map((name) => `${r.alert ?? r.record}: ${name}`));
    expect(used.length).toBeGreaterThan(alerts.length);
    expect(used.filter((u) => !exported.has(u.split(': ')[1]!))).toEqual([]);
  });
});

describe('metricNamesIn', () => {
  it.each([
    {
      reason: 'skips functions, keywords, grouping labels, matchers and ranges',
      expr: 'sum by (namespace, le) (rate(molecule_a_total{result=~"error|x"}[5m])) / on (job) group_left() molecule_b > bool 1',
      want: ['molecule_a_total', 'molecule_b'],
    },
    {
      reason: 'sees a misspelt metric',
      expr: 'max(molecule_orphans_total) and on (job, instance) (molecule_is_leader == 1)',
      want: ['molecule_is_leader', 'molecule_orphans_total'],
    },
    {
      reason: 'ignores Grafana variables',
      expr: `sum(increase(molecule_c_total{namespace=~"$namespace"}[$__rate_interval])) > \${threshold}`,
      want: ['molecule_c_total'],
    },
  ])('$reason', ({ expr, want }) => {
    expect(metricNamesIn(expr)).toEqual(want);
  });
});

// promtool comes from Debian's `prometheus` package. CI installs it (.ci/run) and must not pass
// without it; a developer machine without it skips these two tests.
const promtool = which('promtool');
const inCi = Boolean(process.env.CI);

describe.skipIf(!promtool && !inCi)('promtool', () => {
  const run = (args: string[]) => {
    expect(promtool, 'promtool is missing: apt-get install prometheus (Debian) or see .ci/run').toBeDefined();
    const r = spawnSync(promtool!, args, { encoding: 'utf8', timeout: 60_000 });
    return { ok: r.status === 0, output: `${r.stdout}\n${r.stderr}` };
  };

  it('check rules passes', () => {
    const r = run(['check', 'rules', RULES_FILE]);
    expect(r.output).toMatch(/SUCCESS/);
    expect(r.ok, r.output).toBe(true);
  });

  it('every alert expression fires in its scenario and stays quiet otherwise', () => {
    const tests = SCENARIOS.map((s) => ({
      interval: '1m',
      input_series: s.series.map(([series, values]) => ({ series, values })),
      promql_expr_test: s.checks.map((c) => ({
        expr: exprOf(c.alert),
        eval_time: c.at ?? '10m',
        exp_samples: c.want.map(([labels, value]) => ({ labels, value })),
      })),
    }));
    const covered = new Set(
      SCENARIOS.flatMap((s) => s.checks.filter((c) => c.want.length > 0).map((c) => c.alert)),
    );
    expect(alerts.map((a) => a.alert).filter((a) => !covered.has(a))).toEqual([]);
    const work = mkdtempSync(join(tmpdir(), 'molecule-rules-'));
    try {
      const file = join(work, 'rules.test.yaml');
      writeFileSync(file, stringify({ evaluation_interval: '1m', tests }));
      const r = run(['test', 'rules', file]);
      expect(r.ok, r.output).toBe(true);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

/**
 * Two replicas scraped from one namespace: `a` leads, `b` is a standby that led before and
 * still shows its last (stale) gauge values. Leader-only alerts must see `a` only.
 */
const ns = 'namespace="molecule-system"';
const A = `job="molecule-operator-metrics", instance="10.0.0.1:9090", ${ns}`;
const B = `job="molecule-operator-metrics", instance="10.0.0.2:9090", ${ns}`;
const PRIMARY = `{target="primary", ${ns}}`;

interface Scenario {
  name: string;
  series: [string, string][];
  checks: { alert: string; at?: string; want: [string, number][] }[];
}

const SCENARIOS: Scenario[] = [
  {
    name: 'healthy leader a, stale former leader b',
    series: [
      [`molecule_is_leader{${A}, target="primary"}`, '1x30'],
      [`molecule_is_leader{${B}, target="primary"}`, '0x30'],
      [`molecule_orphan_oldest_age_seconds{${A}, target="primary", kind="ec2_instance"}`, '7200x30'],
      [`molecule_orphan_oldest_age_seconds{${A}, target="primary", kind="secret"}`, '60x30'],
      [`molecule_orphan_oldest_age_seconds{${B}, target="primary", kind="cf_tunnel"}`, '99999x30'],
      [`molecule_orphan_resources{${A}, target="primary", kind="ec2_instance", env="prod"}`, '2x30'],
      [`molecule_orphan_resources{${A}, target="primary", kind="secret", env="prod"}`, '1x30'],
      [`molecule_orphan_resources{${B}, target="primary", kind="cf_tunnel", env="prod"}`, '5x30'],
      [`molecule_orphan_scan_success{${A}, target="primary"}`, '1x30'],
      [`molecule_orphan_scan_success{${B}, target="primary"}`, '0x30'],
      [`molecule_orphan_scan_timestamp_seconds{${A}, target="primary"}`, '0+60x30'],
      [`molecule_orphan_scan_timestamp_seconds{${B}, target="primary"}`, '0x30'],
      [`molecule_orphan_deletion_blocked{${A}, target="primary"}`, '0x30'],
      [`molecule_orphan_deletion_blocked{${B}, target="primary"}`, '1x30'],
      [`molecule_deletion_stuck{${A}, controller="instance"}`, '2x30'],
      [`molecule_deletion_stuck{${B}, controller="secrets"}`, '7x30'],
      [`molecule_workqueue_depth{${A}, controller="tunnel"}`, '500x30'],
      [`molecule_workqueue_depth{${A}, controller="instance"}`, '500 0 500x28'],
      [`molecule_workqueue_depth{${B}, controller="secrets"}`, '1000x30'],
      [`molecule_controller_enabled{${A}, controller="tunnel"}`, '0x30'],
      [`molecule_controller_enabled{${B}, controller="tunnel"}`, '0x30'],
      [`molecule_controller_enabled{${A}, controller="instance"}`, '1x30'],
      [`molecule_reconcile_total{${A}, controller="instance", result="success"}`, '0+30x30'],
      [`molecule_reconcile_total{${A}, controller="instance", result="error"}`, '0+10x30'],
      [`molecule_reconcile_total{${A}, controller="tunnel", result="success"}`, '0+99x30'],
      [`molecule_reconcile_total{${A}, controller="tunnel", result="terminal"}`, '0+1x30'],
      [
        `molecule_cloud_requests_total{${A}, target="primary", service="ec2", operation="RunInstances", outcome="ok"}`,
        '0+90x30',
      ],
      [
        `molecule_cloud_requests_total{${A}, target="primary", service="ec2", operation="RunInstances", outcome="throttled"}`,
        '0+10x30',
      ],
      [
        `molecule_cloud_requests_total{${A}, target="primary", service="cloudflare", operation="ListTunnels", outcome="ok"}`,
        '0+100x30',
      ],
      [`molecule_ratelimit_lockouts_total{${A}, bucket="cloudflare", target=""}`, '0 0 1x28'],
    ],
    checks: [
      { alert: 'OrphanedResourcesPresent', want: [[`{kind="ec2_instance", target="primary", ${ns}}`, 7200]] },
      { alert: 'OrphanScanFailing', want: [] },
      { alert: 'OrphanScanStale', at: '20m', want: [] },
      { alert: 'OrphanDeletionBlocked', want: [] },
      { alert: 'DeletionStuck', want: [[`{controller="instance", ${ns}}`, 2]] },
      { alert: 'WorkqueueBacklog', at: '29m', want: [[`{controller="tunnel", ${ns}}`, 500]] },
      { alert: 'ControllerDisabled', want: [[`{controller="tunnel", ${ns}}`, 0]] },
      { alert: 'ReconcileErrorsSustained', want: [[`{controller="instance", ${ns}}`, 0.25]] },
      { alert: 'CloudThrottlingSustained', want: [[`{service="ec2", target="primary", ${ns}}`, 0.1]] },
      { alert: 'CloudflareLockedOut', want: [[`{${ns}}`, 1]] },
      { alert: 'CloudflareLockedOut', at: '29m', want: [] },
      { alert: 'NoLeader', want: [] },
      { alert: 'SplitBrain', want: [] },
      { alert: 'OperatorMetricsAbsent', want: [] },
    ],
  },
  {
    name: 'the leader a cannot scan or delete; b holds stale good values',
    series: [
      [`molecule_is_leader{${A}, target="primary"}`, '1x30'],
      [`molecule_is_leader{${B}, target="primary"}`, '0x30'],
      [`molecule_orphan_scan_success{${A}, target="primary"}`, '0x30'],
      [`molecule_orphan_scan_success{${B}, target="primary"}`, '1x30'],
      [`molecule_orphan_scan_timestamp_seconds{${A}, target="primary"}`, '0x30'],
      [`molecule_orphan_scan_timestamp_seconds{${B}, target="primary"}`, '60x30'],
      [`molecule_orphan_deletion_blocked{${A}, target="primary"}`, '1x30'],
    ],
    checks: [
      { alert: 'OrphanScanFailing', want: [[PRIMARY, 0]] },
      { alert: 'OrphanDeletionBlocked', want: [[PRIMARY, 1]] },
      { alert: 'OrphanScanStale', at: '10m', want: [] },
      { alert: 'OrphanScanStale', at: '20m', want: [[PRIMARY, 1140]] },
    ],
  },
  {
    name: 'nobody leads',
    series: [
      [`molecule_is_leader{${A}, target="primary"}`, '0x30'],
      [`molecule_is_leader{${B}, target="primary"}`, '0x30'],
    ],
    checks: [
      { alert: 'NoLeader', want: [[PRIMARY, 0]] },
      { alert: 'SplitBrain', want: [] },
    ],
  },
  {
    name: 'both claim to lead',
    series: [
      [`molecule_is_leader{${A}, target="primary"}`, '1x30'],
      [`molecule_is_leader{${B}, target="primary"}`, '1x30'],
    ],
    checks: [
      { alert: 'SplitBrain', want: [[PRIMARY, 2]] },
      { alert: 'NoLeader', want: [] },
    ],
  },
  {
    name: 'a leads the primary, b the canary; a led the canary before and keeps stale values',
    series: [
      [`molecule_is_leader{${A}, target="primary"}`, '1x30'],
      [`molecule_is_leader{${A}, target="canary"}`, '0x30'],
      [`molecule_is_leader{${B}, target="primary"}`, '0x30'],
      [`molecule_is_leader{${B}, target="canary"}`, '1x30'],
      [`molecule_orphan_oldest_age_seconds{${A}, target="primary", kind="ec2_instance"}`, '0x30'],
      [`molecule_orphan_resources{${A}, target="primary", kind="ec2_instance", env="prod"}`, '0x30'],
      [`molecule_orphan_oldest_age_seconds{${A}, target="canary", kind="secret"}`, '99999x30'],
      [`molecule_orphan_resources{${A}, target="canary", kind="secret", env="prod"}`, '9x30'],
      [`molecule_orphan_oldest_age_seconds{${B}, target="canary", kind="ec2_instance"}`, '7200x30'],
      [`molecule_orphan_resources{${B}, target="canary", kind="ec2_instance", env="prod"}`, '1x30'],
    ],
    checks: [
      { alert: 'NoLeader', want: [] },
      { alert: 'SplitBrain', want: [] },
      {
        alert: 'OrphanedResourcesPresent',
        want: [[`{kind="ec2_instance", target="canary", ${ns}}`, 7200]],
      },
    ],
  },
  {
    name: 'orgs placed in a target the operator is not configured for',
    series: [
      [`molecule_is_leader{${A}, target="primary"}`, '1x30'],
      [`molecule_target_orgs{${A}, target="primary"}`, '10x30'],
      [`molecule_target_configured{${A}, target="primary"}`, '1x30'],
      [`molecule_target_orgs{${A}, target="canary"}`, '3x30'],
      [`molecule_target_configured{${A}, target="canary"}`, '0x30'],
    ],
    checks: [{ alert: 'TargetNotConfigured', want: [[`{target="canary", ${ns}}`, 3]] }],
  },
  {
    name: 'no replica scraped',
    series: [[`molecule_workqueue_depth{${A}, controller="tunnel"}`, '0x30']],
    checks: [{ alert: 'OperatorMetricsAbsent', want: [['{}', 1]] }],
  },
  {
    name: 'a rollout paused on the leader; a standby with stale failures',
    series: [
      [`molecule_is_leader{${A}, target="primary"}`, '1x60'],
      [`molecule_is_leader{${B}, target="primary"}`, '0x60'],
      [`molecule_rollout_paused{${A}}`, '0x5 1x55'],
      [`molecule_rollout_paused{${B}}`, '3x60'],
      [`molecule_rollout_instances{${A}, image_kind="tenant", state="failed"}`, '2x60'],
      [`molecule_rollout_instances{${A}, image_kind="workspace", state="failed"}`, '0x60'],
      [`molecule_rollout_instances{${B}, image_kind="workspace", state="failed"}`, '9x60'],
    ],
    checks: [
      { alert: 'RolloutPaused', at: '4m', want: [] },
      { alert: 'RolloutPaused', at: '20m', want: [[`{${ns}}`, 1]] },
      { alert: 'RedeployFailuresRepeated', at: '40m', want: [[`{image_kind="tenant", ${ns}}`, 2]] },
    ],
  },
];
