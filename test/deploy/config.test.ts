import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, type ConfigKey, capabilities, loadConfig, SECRET_KEYS } from '../../src/config.js';
import {
  baseObjects,
  CONFIGMAP,
  type ConfigMap,
  containerStart,
  type Deployment,
  find,
  type Job,
  mergedConfigData,
  OVERLAYS,
  overlayConfigPatch,
  podTemplates,
  secretExample,
} from './manifests.js';

const objects = baseObjects();
const baseConfig = find<ConfigMap>(objects, 'ConfigMap', CONFIGMAP).data;
const secretData = secretExample().stringData ?? {};
const pod = (kind: 'Deployment' | 'Job', name: string) =>
  find<Deployment | Job>(objects, kind, name).spec.template.spec;
const operatorPod = pod('Deployment', 'molecule-operator');
const apiPod = pod('Deployment', 'molecule-api');
const migratePod = pod('Job', 'molecule-operator-migrate');
const operator = operatorPod.containers[0]!;
const api = apiPod.containers[0]!;
/** Variables read outside the config schema: where the credential files are. */
const FILE_VARIABLES = ['CREDENTIALS_DIRECTORY'];

/** Everything a full deployment sets: without one of these some controller stays off or `api` exits. */
const REQUIRED: ConfigKey[] = [
  'DATABASE_URL',
  'CP_ADMIN_API_TOKEN',
  'MOLECULE_ENV',
  'EC2_VPC_ID',
  'EC2_SUBNET_ID',
  'EC2_TENANT_IAM_PROFILE',
  'EIC_ENDPOINT_SG_ID',
  'CLOUDFLARE_API_TOKEN',
  'CLOUDFLARE_ACCOUNT_ID',
  'CLOUDFLARE_ZONE_ID',
];

/** Variables that only make sense for the simulator, tests or the embedded database. */
const NEVER_IN_CLUSTER: ConfigKey[] = ['PGLITE_DIR', 'AWS_ENDPOINT_URL', 'CLOUDFLARE_BASE_URL'];

describe('environment variables in the manifests', () => {
  const configKeys = new Set<string>([...CONFIG_KEYS, ...FILE_VARIABLES]);

  it('sets only variables the config schema knows', () => {
    const named = [
      ...Object.keys(baseConfig).map((k) => `ConfigMap ${k}`),
      ...OVERLAYS.flatMap((env) =>
        Object.keys(overlayConfigPatch(env).data).map((k) => `overlay ${env} ${k}`),
      ),
      ...Object.keys(secretData).map((k) => `Secret ${k}`),
      ...podTemplates(objects).flatMap(({ owner, template }) =>
        template.spec.containers.flatMap((c) =>
          (c.env ?? []).map((e) => `${owner.metadata.name} env ${e.name}`),
        ),
      ),
    ];
    const unknown = named.filter((n) => !configKeys.has(n.split(' ').at(-1)!));
    expect(unknown).toEqual([]);
  });

  it('keeps credentials in the Secret and everything else out of it', () => {
    expect(new Set(Object.keys(secretData))).toEqual(new Set(SECRET_KEYS));
    for (const data of [baseConfig, ...OVERLAYS.map((env) => overlayConfigPatch(env).data)]) {
      expect(Object.keys(data).filter((k) => (SECRET_KEYS as string[]).includes(k))).toEqual([]);
    }
    for (const { owner, template } of podTemplates(objects)) {
      for (const c of template.spec.containers) {
        for (const e of c.env ?? []) {
          const where = `${owner.metadata.name} ${e.name}`;
          // Credentials are files, never environment variables.
          expect(e.valueFrom?.secretKeyRef, `${where}: a credential in the environment`).toBeUndefined();
          if (e.value !== undefined)
            expect(FILE_VARIABLES, `${where}: no literal values in env`).toContain(e.name);
          if (e.valueFrom?.configMapKeyRef) expect(Object.keys(baseConfig), where).toContain(e.name);
        }
        expect(
          c.envFrom?.some((f) => f.secretRef),
          `${owner.metadata.name}: name each secret it gets`,
        ).toBeFalsy();
      }
    }
  });

  it('mounts each component only the credentials it needs, read-only and unreadable by others', () => {
    const mounted = (spec: typeof operatorPod) => {
      const { env, files } = containerStart(spec, spec.containers[0]!, baseConfig, secretData);
      const mount = spec.containers[0]!.volumeMounts?.find((m) => m.name === 'credentials');
      expect(mount?.readOnly).toBe(true);
      const volume = spec.volumes?.find((v) => v.name === 'credentials');
      expect(volume?.projected?.defaultMode).toBe(0o440);
      expect(Object.values(env)).not.toEqual(expect.arrayContaining(Object.values(secretData)));
      return Object.keys(files).sort();
    };
    expect(mounted(operatorPod)).toEqual([
      'CLOUDFLARE_API_TOKEN',
      'DATABASE_URL',
      'GHCR_PULL_TOKEN',
      'PROVISION_SHARED_SECRET',
    ]);
    expect(mounted(apiPod)).toEqual(['CP_ADMIN_API_TOKEN', 'DATABASE_URL']);
    expect(mounted(migratePod)).toEqual(['DATABASE_URL']);
    // GHCR_PULL_TOKEN may be left out of the Secret (public images): the operator still starts.
    const { GHCR_PULL_TOKEN: _, ...withoutPull } = secretData;
    const { env } = containerStart(operatorPod, operator, baseConfig, withoutPull);
    expect(loadConfig(env).GHCR_PULL_TOKEN).toBeUndefined();
  });

  it.each(OVERLAYS)('%s sets every variable a full deployment needs', (env) => {
    const set = new Set([...Object.keys(mergedConfigData(env)), ...Object.keys(secretData)]);
    expect(REQUIRED.filter((k) => !set.has(k))).toEqual([]);
    for (const k of NEVER_IN_CLUSTER) expect(set.has(k), k).toBe(false);
  });

  it.each(OVERLAYS)('%s sets MOLECULE_ENV to the overlay name and a domain of its own', (env) => {
    expect(overlayConfigPatch(env).data.MOLECULE_ENV).toBe(env);
    const domains = OVERLAYS.map((e) => mergedConfigData(e).APP_DOMAIN);
    expect(new Set(domains).size).toBe(OVERLAYS.length);
  });

  it.each(OVERLAYS)('%s: the operator starts with every controller enabled', (env) => {
    const envVars = containerStart(operatorPod, operator, mergedConfigData(env), secretData).env;
    const config = loadConfig(envVars);
    expect(capabilities(config)).toEqual({ cloudflare: [], instance: [], securityGroup: [] });
    expect(config.MOLECULE_ENV).toBe(env);
    expect(config.DATABASE_URL).toMatch(/^postgres/);
    // The controllers do not need the API token: it is not handed to them.
    expect(envVars.CP_ADMIN_API_TOKEN).toBeUndefined();
  });

  it.each(OVERLAYS)('%s: the API gets its token and the database, and no cloud credentials', (env) => {
    const envVars = containerStart(apiPod, api, mergedConfigData(env), secretData).env;
    expect(() => loadConfig(envVars, { required: ['CP_ADMIN_API_TOKEN', 'DATABASE_URL'] })).not.toThrow();
    expect(envVars.CLOUDFLARE_API_TOKEN).toBeUndefined();
    expect(envVars.PROVISION_SHARED_SECRET).toBeUndefined();
  });

  it.each(OVERLAYS)('%s: the migration Job reaches the database', (env) => {
    const envVars = containerStart(
      migratePod,
      migratePod.containers[0]!,
      mergedConfigData(env),
      secretData,
    ).env;
    expect(loadConfig(envVars, { required: ['DATABASE_URL'] }).DATABASE_URL).toBeDefined();
  });

  it('listens where the manifests expect: PORT and METRICS_PORT match the container ports', () => {
    const config = loadConfig(baseConfig);
    expect(operator.ports?.map((p) => p.containerPort)).toEqual([config.METRICS_PORT]);
    expect(api.ports?.map((p) => p.containerPort)).toEqual([config.PORT, config.METRICS_PORT]);
  });

  it('reports orphans by default, with the grace period the alert assumes', () => {
    const config = loadConfig(baseConfig);
    expect(config.ORPHAN_POLICY).toBe('report');
    expect(config.ORPHAN_GRACE).toBe(3_600_000);
  });
});
