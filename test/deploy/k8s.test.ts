import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import {
  BASE,
  baseObjects,
  CONFIGMAP,
  type ConfigMap,
  type Container,
  type Deployment,
  find,
  type Job,
  type K8sObject,
  mergedConfigData,
  NAMESPACE,
  type NetworkPolicy,
  type NetworkPolicyPort,
  OVERLAYS,
  ofKind,
  overlayDir,
  overlayPatches,
  type PodDisruptionBudget,
  type PodSpec,
  podTemplates,
  readKustomization,
  readYamlDocs,
  SECRET,
  type Service,
  type ServiceMonitor,
  secretExample,
  selects,
  which,
} from './manifests.js';

const objects = baseObjects();
const operator = find<Deployment>(objects, 'Deployment', 'molecule-operator');
const api = find<Deployment>(objects, 'Deployment', 'molecule-api');
const migration = find<Job>(objects, 'Job', 'molecule-operator-migrate');
const operatorPod = operator.spec.template;
const apiPod = api.spec.template;
const only = (spec: PodSpec): Container => {
  expect(spec.containers).toHaveLength(1);
  return spec.containers[0]!;
};

describe('manifest files', () => {
  const yamlFiles = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? yamlFiles(join(dir, e.name)) : e.name.endsWith('.yaml') ? [join(dir, e.name)] : [],
    );

  it.each(yamlFiles(join(BASE, '..')).map((f) => [f.slice(f.indexOf('deploy/')), f]))(
    '%s parses and every document has apiVersion, kind and a name',
    (_name, file) => {
      const docs = readYamlDocs(file!) as Partial<K8sObject>[];
      expect(docs.length).toBeGreaterThan(0);
      for (const doc of docs) {
        expect(doc.apiVersion, file).toEqual(expect.any(String));
        expect(doc.kind, file).toEqual(expect.any(String));
        if (doc.kind !== 'Kustomization') expect(doc.metadata?.name, file).toEqual(expect.any(String));
      }
    },
  );

  it('lists only files that exist, and every manifest of the base is listed (except the Secret example)', () => {
    const k = readKustomization(BASE);
    for (const r of k.resources ?? []) expect(existsSync(join(BASE, r)), r).toBe(true);
    const onDisk = readdirSync(BASE).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect(new Set(k.resources)).toEqual(new Set(onDisk.filter((f) => f !== 'secret.example.yaml')));
    expect(k.namespace).toBe(NAMESPACE);
  });

  it.each(OVERLAYS)('overlay %s builds on the base, with patches that exist and a pinned image', (env) => {
    const dir = overlayDir(env);
    const k = readKustomization(dir);
    expect(k.resources).toEqual(['../../base']);
    for (const p of k.patches ?? []) if (p.path) expect(existsSync(join(dir, p.path)), p.path).toBe(true);
    const image = k.images?.find((i) => i.name === only(operatorPod.spec).image.split(':')[0]);
    expect(image, 'overlay sets the operator image').toBeDefined();
    expect(image!.digest ?? image!.newTag).toMatch(/^(?!latest$)\S+$/);
    if (image!.digest) expect(image!.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    for (const patch of overlayPatches(env)) {
      // A patch must name something in the base, or kustomize fails.
      expect(() => find(objects, patch.kind, patch.metadata.name)).not.toThrow();
    }
  });

  it('keeps the example Secret out of every kustomization, with placeholder values only', () => {
    for (const dir of [BASE, ...OVERLAYS.map(overlayDir)]) {
      const k = readKustomization(dir);
      expect(JSON.stringify(k)).not.toMatch(/secret/i);
    }
    expect(objects.some((o) => o.kind === 'Secret')).toBe(false);
    const secret = secretExample();
    expect(secret.metadata.name).toBe(SECRET);
    expect(secret.data).toBeUndefined();
    for (const [key, value] of Object.entries(secret.stringData ?? {})) {
      expect(value, key).toMatch(/PLACEHOLDER/);
    }
  });

  it('puts everything in one namespace that enforces the restricted pod security standard', () => {
    const ns = find<K8sObject>(objects, 'Namespace', NAMESPACE);
    expect(ns.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
    for (const o of objects) expect(o.metadata.namespace ?? NAMESPACE, o.file).toBe(NAMESPACE);
  });
});

describe('pods', () => {
  it.each(
    podTemplates(objects).map(({ owner, template }) => [`${owner.kind} ${owner.metadata.name}`, template]),
  )(
    '%s runs hardened: non-root uid 10001, read-only root, no capabilities, RuntimeDefault seccomp, /tmp emptyDir',
    (_name, template) => {
      const spec = template!.spec;
      expect(spec.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 10001,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(spec.automountServiceAccountToken).toBe(false);
      for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
        expect(c.securityContext, c.name).toMatchObject({
          runAsNonRoot: true,
          runAsUser: 10001,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        });
        expect(c.securityContext?.privileged).not.toBe(true);
        expect(c.securityContext?.capabilities?.add ?? []).toEqual([]);
        expect(c.resources?.requests, c.name).toMatchObject({
          cpu: expect.any(String),
          memory: expect.any(String),
        });
        expect(c.resources?.limits, c.name).toMatchObject({
          cpu: expect.any(String),
          memory: expect.any(String),
        });
        expect(c.args?.length, `${c.name} passes a molecule-operator command`).toBe(1);
        expect(c.command, 'the image ENTRYPOINT is used').toBeUndefined();
        const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
        expect(tmp, `${c.name} has a writable /tmp`).toBeDefined();
        expect(spec.volumes?.find((v) => v.name === tmp!.name)?.emptyDir).toBeDefined();
      }
    },
  );

  it('runs the controllers as 2 leader-elected replicas with probes on the metrics port', () => {
    expect(operator.spec.replicas).toBe(2);
    expect(selects(operator.spec.selector.matchLabels, operatorPod.metadata.labels)).toBe(true);
    expect(operator.spec.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
    const spec = operatorPod.spec;
    expect(spec.serviceAccountName).toBe('molecule-operator');
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
    const c = only(spec);
    expect(c.args).toEqual(['run']);
    expect(c.ports).toContainEqual(expect.objectContaining({ name: 'metrics', containerPort: 9090 }));
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(c.envFrom).toContainEqual({ configMapRef: { name: CONFIGMAP } });
  });

  it('runs the API on port 8080 with its own identity and probes', () => {
    expect(api.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(selects(api.spec.selector.matchLabels, apiPod.metadata.labels)).toBe(true);
    expect(selects(operator.spec.selector.matchLabels, apiPod.metadata.labels)).toBe(false);
    expect(apiPod.spec.serviceAccountName).not.toBe('molecule-operator');
    const c = only(apiPod.spec);
    expect(c.args).toEqual(['api']);
    expect(c.ports).toContainEqual(expect.objectContaining({ name: 'http', containerPort: 8080 }));
    expect(c.ports).toContainEqual(expect.objectContaining({ name: 'metrics', containerPort: 9090 }));
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
  });

  it('migrates with a Job that does not restart forever', () => {
    const spec = migration.spec.template.spec;
    expect(only(spec).args).toEqual(['migrate']);
    expect(['Never', 'OnFailure']).toContain(spec.restartPolicy);
    expect(migration.spec.backoffLimit).toBeGreaterThan(0);
    expect(migration.spec.activeDeadlineSeconds).toBeGreaterThan(0);
    expect(migration.spec.template.metadata.labels['app.kubernetes.io/component']).toBe('migration');
  });

  it('uses one image for every workload', () => {
    const images = new Set(
      podTemplates(objects).flatMap(({ template }) => template.spec.containers.map((c) => c.image)),
    );
    expect(images.size).toBe(1);
  });

  it('gives only the controllers the IRSA role', () => {
    const accounts = ofKind<K8sObject & { automountServiceAccountToken?: boolean }>(
      objects,
      'ServiceAccount',
    );
    expect(accounts.map((a) => a.metadata.name).sort()).toEqual(['molecule-api', 'molecule-operator']);
    for (const env of OVERLAYS) {
      const sa = overlayPatches(env).find((o) => o.kind === 'ServiceAccount');
      expect(sa?.metadata.name).toBe('molecule-operator');
      expect(sa?.metadata.annotations?.['eks.amazonaws.com/role-arn']).toMatch(
        /^arn:aws:iam::\d{12}:role\/\S+$/,
      );
    }
  });
});

describe('services and monitoring', () => {
  const services = ofKind<Service>(objects, 'Service');
  const metrics = find<Service>(objects, 'Service', 'molecule-operator-metrics');
  const apiMetrics = find<Service>(objects, 'Service', 'molecule-api-metrics');
  const apiService = find<Service>(objects, 'Service', 'molecule-api');
  const monitor = find<ServiceMonitor>(objects, 'ServiceMonitor', 'molecule-operator');

  it('exposes the metrics port of the controller pods', () => {
    expect(selects(metrics.spec.selector, operatorPod.metadata.labels)).toBe(true);
    expect(selects(metrics.spec.selector, apiPod.metadata.labels)).toBe(false);
    expect(metrics.spec.ports).toEqual([
      expect.objectContaining({ name: 'metrics', port: 9090, targetPort: 'metrics' }),
    ]);
  });

  it('exposes the metrics port of the API pods apart from the port clients reach', () => {
    expect(selects(apiMetrics.spec.selector, apiPod.metadata.labels)).toBe(true);
    expect(selects(apiMetrics.spec.selector, operatorPod.metadata.labels)).toBe(false);
    expect(apiMetrics.spec.ports).toEqual([
      expect.objectContaining({ name: 'metrics', port: 9090, targetPort: 'metrics' }),
    ]);
  });

  it('exposes the API on 8080, and only the API port', () => {
    expect(selects(apiService.spec.selector, apiPod.metadata.labels)).toBe(true);
    expect(apiService.spec.ports).toEqual([expect.objectContaining({ port: 8080, targetPort: 'http' })]);
  });

  it('names container ports that exist', () => {
    for (const s of services) {
      const pods = podTemplates(objects).filter(({ template }) =>
        selects(s.spec.selector, template.metadata.labels),
      );
      expect(pods.length, s.metadata.name).toBeGreaterThan(0);
      for (const p of s.spec.ports) {
        for (const { template } of pods) {
          const names = template.spec.containers.flatMap((c) => (c.ports ?? []).map((cp) => cp.name));
          expect(names, `${s.metadata.name}:${p.name}`).toContain(p.targetPort);
        }
      }
    }
  });

  it('has a ServiceMonitor that selects the two metrics Services, and only them', () => {
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    const selected = services.filter((s) => selects(monitor.spec.selector.matchLabels, s.metadata.labels));
    expect(selected.map((s) => s.metadata.name).sort()).toEqual([
      'molecule-api-metrics',
      'molecule-operator-metrics',
    ]);
    expect(monitor.spec.endpoints).toContainEqual(
      expect.objectContaining({ port: 'metrics', path: '/metrics' }),
    );
    for (const e of monitor.spec.endpoints) {
      for (const s of selected) expect(s.spec.ports.map((p) => p.name)).toContain(e.port);
    }
  });

  it('keeps one controller and one API pod through voluntary disruptions', () => {
    const pdbs = ofKind<PodDisruptionBudget>(objects, 'PodDisruptionBudget');
    for (const pod of [operatorPod, apiPod]) {
      const pdb = pdbs.find((p) => selects(p.spec.selector.matchLabels, pod.metadata.labels));
      expect(pdb, JSON.stringify(pod.metadata.labels)).toBeDefined();
      expect(pdb!.spec.minAvailable).toBe(1);
    }
  });
});

describe('network policies', () => {
  const policies = ofKind<NetworkPolicy>(objects, 'NetworkPolicy');
  const forPod = (labels: Record<string, string>) =>
    policies.filter((p) => selects(p.spec.podSelector.matchLabels, labels));
  const egressPorts = (labels: Record<string, string>) =>
    forPod(labels).flatMap((p) => (p.spec.egress ?? []).flatMap((e) => e.ports ?? []));
  const port = (p: number, protocol = 'TCP'): NetworkPolicyPort => ({ port: p, protocol });

  it('denies all ingress and egress by default', () => {
    const deny = policies.find((p) => Object.keys(p.spec.podSelector.matchLabels ?? {}).length === 0);
    expect(deny?.spec.policyTypes.sort()).toEqual(['Egress', 'Ingress']);
    expect(deny?.spec.ingress ?? []).toEqual([]);
    expect(deny?.spec.egress ?? []).toEqual([]);
  });

  it('lets the controllers reach Postgres, HTTPS and DNS, and be scraped from monitoring', () => {
    const labels = operatorPod.metadata.labels;
    expect(egressPorts(labels)).toEqual(
      expect.arrayContaining([port(5432), port(443), port(53, 'UDP'), port(53, 'TCP')]),
    );
    const ingress = forPod(labels).flatMap((p) => p.spec.ingress ?? []);
    expect(ingress).toContainEqual({
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
      ports: [port(9090)],
    });
  });

  it('lets clients reach the API port, monitoring its metrics port; the API and the Job reach only Postgres and DNS', () => {
    const ingress = forPod(apiPod.metadata.labels).flatMap((p) => p.spec.ingress ?? []);
    expect(ingress).toContainEqual({ ports: [port(8080)] });
    // The metrics port only from the monitoring namespace: never open to whoever reaches the API.
    expect(ingress.filter((i) => (i.ports ?? []).some((p) => p.port === 9090))).toEqual([
      {
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
        ports: [port(9090)],
      },
    ]);
    for (const labels of [apiPod.metadata.labels, migration.spec.template.metadata.labels]) {
      expect(new Set(egressPorts(labels).map((p) => p.port))).toEqual(new Set([53, 5432]));
    }
  });

  it('opens egress only by port: Postgres only to the database address, nothing to any port', () => {
    for (const { owner, template } of podTemplates(objects)) {
      const rules = forPod(template.metadata.labels).flatMap((p) => p.spec.egress ?? []);
      for (const rule of rules) {
        expect(rule.ports?.length, `${owner.metadata.name}: a rule open to every port`).toBeGreaterThan(0);
        const ports = new Set(rule.ports!.map((p) => p.port));
        expect(
          [...ports].every((p) => [53, 443, 5432].includes(p)),
          owner.metadata.name,
        ).toBe(true);
        if (ports.has(5432)) {
          expect(ports, `${owner.metadata.name}: Postgres shares a rule`).toEqual(new Set([5432]));
          expect(rule.to?.length, `${owner.metadata.name}: Postgres open to any address`).toBeGreaterThan(0);
          for (const peer of rule.to!) expect(peer.ipBlock?.cidr).toMatch(/^[0-9.]+\/\d+$/);
        }
      }
    }
  });

  it.each(OVERLAYS)('overlay %s sets the database address', (env) => {
    const patch = overlayPatches(env).find((o) => o.kind === 'NetworkPolicy') as NetworkPolicy | undefined;
    expect(patch?.metadata.name).toBe('molecule-database');
    const base = find<NetworkPolicy>(objects, 'NetworkPolicy', 'molecule-database');
    expect(patch!.spec.egress?.[0]?.to?.[0]?.ipBlock?.cidr).not.toBe(
      base.spec.egress?.[0]?.to?.[0]?.ipBlock?.cidr,
    );
  });

  it('selects every pod with at least one policy besides the default deny', () => {
    for (const { owner, template } of podTemplates(objects)) {
      const own = forPod(template.metadata.labels).filter(
        (p) => Object.keys(p.spec.podSelector.matchLabels ?? {}).length,
      );
      expect(own.length, owner.metadata.name).toBeGreaterThan(0);
    }
  });
});

// kustomize itself, when kubectl is installed: the overlays must build and come out as the
// tests above assume (ConfigMap merged, image pinned, namespace set).
const kubectl = which('kubectl');
describe.skipIf(!kubectl)('kubectl kustomize', () => {
  it.each(OVERLAYS)('builds overlay %s', (env) => {
    const r = spawnSync(kubectl!, ['kustomize', overlayDir(env)], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const rendered = parseRendered(r.stdout, `kubectl kustomize overlays/${env}`);
    expect(rendered.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      objects.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
    );
    expect(find<ConfigMap>(rendered, 'ConfigMap', CONFIGMAP).data).toEqual(mergedConfigData(env));
    // Pinned by tag, or by digest as a release pins it (`kustomize edit set image name=new@sha256:…`).
    const pin = readKustomization(overlayDir(env)).images?.[0];
    const name = pin?.newName ?? 'ghcr.io/molecule-ai/molecule-operator';
    const image = pin?.digest ? `${name}@${pin.digest}` : `${name}:${pin?.newTag}`;
    for (const { template } of podTemplates(rendered)) {
      for (const c of template.spec.containers) expect(c.image).toBe(image);
    }
    for (const o of rendered)
      if (o.kind !== 'Namespace') expect(o.metadata.namespace, o.kind).toBe(NAMESPACE);
    const database = find<NetworkPolicy>(rendered, 'NetworkPolicy', 'molecule-database');
    const patch = overlayPatches(env).find((o) => o.kind === 'NetworkPolicy') as NetworkPolicy;
    expect(database.spec.egress).toEqual(patch.spec.egress);
    expect(database.spec.podSelector).toEqual({
      matchLabels: { 'app.kubernetes.io/name': 'molecule-operator' },
    });
    const sa = find<K8sObject>(rendered, 'ServiceAccount', 'molecule-operator');
    expect(sa.metadata.annotations?.['eks.amazonaws.com/role-arn']).toBeDefined();
  });
});

function parseRendered(text: string, label: string): K8sObject[] {
  return parseAllDocuments(text).map((d) => ({ ...(d.toJS() as Omit<K8sObject, 'file'>), file: label }));
}
