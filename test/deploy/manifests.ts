// Loading and small helpers for the deploy/ tests: parsed manifests, kustomize layers, the
// effective environment of a container, metric names in PromQL.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { createMetrics } from '../../src/observability/metrics.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DEPLOY = join(ROOT, 'deploy');
export const BASE = join(DEPLOY, 'k8s', 'base');
export const OVERLAYS = ['staging', 'prod'] as const;
export type Overlay = (typeof OVERLAYS)[number];
export const overlayDir = (env: Overlay) => join(DEPLOY, 'k8s', 'overlays', env);

export const NAMESPACE = 'molecule-system';
export const CONFIGMAP = 'molecule-operator-config';
export const SECRET = 'molecule-operator-secrets';

export type Labels = Record<string, string>;

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Labels; annotations?: Labels };
  /** Where it was read from, relative to the repository root. */
  file: string;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
  };
}

export interface Probe {
  httpGet?: { path: string; port: number | string };
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}

export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: SecurityContext;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

export interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  restartPolicy?: string;
  securityContext?: SecurityContext & { fsGroup?: number };
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
}

export interface Volume {
  name: string;
  emptyDir?: { sizeLimit?: string };
  projected?: {
    defaultMode?: number;
    sources: {
      secret?: { name: string; optional?: boolean; items?: { key: string; path: string }[] };
    }[];
  };
}

export interface PodTemplate {
  metadata: { labels: Labels };
  spec: PodSpec;
}

export interface Deployment extends K8sObject {
  spec: {
    replicas: number;
    selector: { matchLabels: Labels };
    strategy?: { rollingUpdate?: { maxUnavailable?: number | string } };
    template: PodTemplate;
  };
}

export interface Job extends K8sObject {
  spec: { backoffLimit?: number; activeDeadlineSeconds?: number; template: PodTemplate };
}

export interface Service extends K8sObject {
  spec: { selector: Labels; ports: { name: string; port: number; targetPort: number | string }[] };
}

export interface ServiceMonitor extends K8sObject {
  spec: {
    selector: { matchLabels: Labels };
    endpoints: { port: string; path?: string; interval?: string }[];
  };
}

export interface PodDisruptionBudget extends K8sObject {
  spec: {
    minAvailable?: number | string;
    maxUnavailable?: number | string;
    selector: { matchLabels: Labels };
  };
}

export interface NetworkPolicyPeer {
  namespaceSelector?: { matchLabels?: Labels };
  podSelector?: { matchLabels?: Labels };
  ipBlock?: { cidr: string };
}
export interface NetworkPolicyPort {
  port: number;
  protocol?: string;
}
export interface NetworkPolicy extends K8sObject {
  spec: {
    podSelector: { matchLabels?: Labels };
    policyTypes: string[];
    ingress?: { from?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
    egress?: { to?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
  };
}

export interface ConfigMap extends K8sObject {
  data: Record<string, string>;
}

export interface Secret extends K8sObject {
  type?: string;
  stringData?: Record<string, string>;
  data?: Record<string, string>;
}

export interface Kustomization {
  resources?: string[];
  patches?: { path?: string; patch?: string }[];
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  namespace?: string;
}

/** Every YAML document in a file; parse errors and warnings fail loudly. */
export function readYamlDocs(path: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  if (!Array.isArray(docs)) throw new Error(`${path}: not a YAML stream`);
  return docs.flatMap((doc, i) => {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0)
      throw new Error(`${path} document ${i + 1}: ${problems.map((p) => p.message).join('; ')}`);
    const value = doc.toJS() as unknown;
    return value === null || value === undefined ? [] : [value];
  });
}

export function readYaml<T>(path: string): T {
  const docs = readYamlDocs(path);
  if (docs.length !== 1) throw new Error(`${path}: expected one YAML document, found ${docs.length}`);
  return docs[0] as T;
}

export function readKustomization(dir: string): Kustomization {
  return readYaml<Kustomization>(join(dir, 'kustomization.yaml'));
}

/** The Kubernetes objects of every file listed under `resources` of the base. */
export function baseObjects(): K8sObject[] {
  const k = readKustomization(BASE);
  return (k.resources ?? []).flatMap((r) => readObjects(join(BASE, r)));
}

export function readObjects(path: string): K8sObject[] {
  const file = relative(ROOT, path);
  return readYamlDocs(path).map((doc) => ({ ...(doc as Omit<K8sObject, 'file'>), file }));
}

export function find<T extends K8sObject>(objects: K8sObject[], kind: string, name: string): T {
  const found = objects.filter((o) => o.kind === kind && o.metadata?.name === name);
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name}, found ${found.length}`);
  return found[0] as T;
}

export const ofKind = <T extends K8sObject>(objects: K8sObject[], kind: string) =>
  objects.filter((o) => o.kind === kind) as T[];

/** True when every label of the selector is on the object. */
export function selects(selector: Labels | undefined, labels: Labels | undefined): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

/** Base ConfigMap data with an overlay's ConfigMap patch merged over it (what kustomize does). */
export function mergedConfigData(env: Overlay): Record<string, string> {
  const base = find<ConfigMap>(baseObjects(), 'ConfigMap', CONFIGMAP).data;
  return { ...base, ...overlayConfigPatch(env).data };
}

export function overlayConfigPatch(env: Overlay): ConfigMap {
  const patches = overlayPatches(env).filter((o) => o.kind === 'ConfigMap');
  if (patches.length !== 1) throw new Error(`overlay ${env}: expected one ConfigMap patch`);
  return patches[0] as ConfigMap;
}

export function overlayPatches(env: Overlay): K8sObject[] {
  const dir = overlayDir(env);
  const k = readKustomization(dir);
  return (k.patches ?? []).flatMap((p) => (p.path ? readObjects(join(dir, p.path)) : []));
}

export function secretExample(): Secret {
  return readYaml<Secret>(join(BASE, 'secret.example.yaml'));
}

/**
 * The environment a container starts with, given ConfigMap data and Secret values: envFrom
 * first, then env entries (which win), as the kubelet does. Optional references that cannot
 * be resolved are left out.
 */
export function containerEnv(
  container: Container,
  configData: Record<string, string>,
  secretData: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef) {
      if (from.configMapRef.name !== CONFIGMAP)
        throw new Error(`unknown ConfigMap ${from.configMapRef.name}`);
      Object.assign(env, configData);
    }
    if (from.secretRef) {
      if (from.secretRef.name !== SECRET) throw new Error(`unknown Secret ${from.secretRef.name}`);
      Object.assign(env, secretData);
    }
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    const secretRef = e.valueFrom?.secretKeyRef;
    const configRef = e.valueFrom?.configMapKeyRef;
    const ref = secretRef ?? configRef;
    if (!ref) continue;
    const source = secretRef ? secretData : configData;
    const value = source[ref.key];
    if (value !== undefined) env[e.name] = value;
    else if (!ref.optional) throw new Error(`${container.name}: ${e.name} refers to missing key ${ref.key}`);
  }
  return env;
}

/**
 * What a container starts with: its environment ({@link containerEnv}) and, when it names a
 * CREDENTIALS_DIRECTORY, that folder as the kubelet would mount it from the pod's projected
 * Secret volume — written to a temporary folder, which CREDENTIALS_DIRECTORY then names. A
 * required key missing from the Secret fails, as the pod would not start.
 */
export function containerStart(
  pod: PodSpec,
  container: Container,
  configData: Record<string, string>,
  secretData: Record<string, string>,
): { env: Record<string, string>; files: Record<string, string> } {
  const env = containerEnv(container, configData, secretData);
  const files: Record<string, string> = {};
  const dir = env.CREDENTIALS_DIRECTORY;
  if (dir === undefined) return { env, files };
  const mount = container.volumeMounts?.find((m) => m.mountPath === dir);
  if (!mount) throw new Error(`${container.name}: CREDENTIALS_DIRECTORY ${dir} is not a mount`);
  const volume = pod.volumes?.find((v) => v.name === mount.name);
  if (!volume?.projected) throw new Error(`${container.name}: ${mount.name} is not a projected volume`);
  for (const { secret } of volume.projected.sources) {
    if (!secret) continue;
    if (secret.name !== SECRET) throw new Error(`unknown Secret ${secret.name}`);
    for (const item of secret.items ?? []) {
      const value = secretData[item.key];
      if (value !== undefined) files[item.path] = value;
      else if (!secret.optional)
        throw new Error(`${container.name}: ${mount.name} needs missing key ${item.key}`);
    }
  }
  const folder = mkdtempSync(join(tmpdir(), 'molecule-credentials-'));
  for (const [path, value] of Object.entries(files)) writeFileSync(join(folder, path), value);
  env.CREDENTIALS_DIRECTORY = folder;
  return { env, files };
}

/** Names every pod template of the given objects, with the owner that carries it. */
export function podTemplates(objects: K8sObject[]): { owner: K8sObject; template: PodTemplate }[] {
  return objects
    .filter((o) => o.kind === 'Deployment' || o.kind === 'Job')
    .map((o) => ({ owner: o, template: (o as Deployment | Job).spec.template }));
}

// --- PromQL --------------------------------------------------------------------------------

const PROMQL_KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/**
 * Metric names referenced by a PromQL expression (or a Grafana query using its variables):
 * identifiers that are not functions, keywords, label names in matchers or grouping clauses,
 * nor inside strings or range selectors.
 */
export function metricNamesIn(expr: string): string[] {
  let s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  s = s.replace(/\{[^}]*\}/g, ' ');
  s = s.replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  s = s.replace(/\$\{?\w+\}?/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w.])[a-zA-Z_:][\w:]*/g)) {
    const rest = s.slice((m.index ?? 0) + m[0].length).trimStart();
    if (rest.startsWith('(')) continue;
    if (PROMQL_KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names].sort();
}

/** Every series name the operator's registry exports (histograms as _bucket, _sum, _count). */
export async function exportedSeriesNames(): Promise<Set<string>> {
  const { registry } = createMetrics();
  const names = new Set<string>();
  for (const metric of await registry.getMetricsAsJSON()) {
    const type = String(metric.type);
    if (type === 'histogram') {
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(metric.name + suffix);
    } else if (type === 'summary') {
      for (const suffix of ['', '_sum', '_count']) names.add(metric.name + suffix);
    } else {
      names.add(metric.name);
    }
  }
  registry.clear();
  return names;
}

// --- tools ---------------------------------------------------------------------------------

/** Absolute path of an executable on PATH, or undefined. */
export function which(command: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  const path = r.stdout.trim();
  return r.status === 0 && path && existsSync(path) ? path : undefined;
}

/** Markdown heading anchors as GitHub renders them. */
export function markdownAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^#{1,6}\s+(.*)$/.exec(line);
    if (!m) continue;
    const slug = m[1]!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    anchors.add(slug);
  }
  return anchors;
}

/** `${name}`: a placeholder to be filled by envsubst, or a Grafana variable. */
export const placeholder = (name: string) => `\${${name}}`;

export const readText = (path: string) => readFileSync(path, 'utf8');
export const repoPath = (...parts: string[]) => join(ROOT, ...parts);
