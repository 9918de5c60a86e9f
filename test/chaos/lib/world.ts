import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import {
  type FaultSettings,
  type NetworkInfo,
  type Simulator,
  startSimulator,
} from '../../../src/sim/index.js';
import { CANARY_ACCOUNT, CANARY_REGION, canaryEnv, simAt, simEnv } from '../../fixtures/sim.js';
import { callApi, listenApi } from '../../helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js';
import { killAll, OperatorProcess } from './process.js';

export const ENV = 'chaos';
/** The simulator's seeded zone. */
export const APP_DOMAIN = 'moleculesai.app';

/** Long runs (`npm run chaos`) scale every scenario up. */
export const LONG = process.env.CHAOS_LONG === '1';

const secret = (prefix: string) => `${prefix}-${randomBytes(18).toString('base64url')}`;

/** Credentials configured for the operator and the API: none of them may appear anywhere else. */
export interface ConfiguredSecrets {
  CP_ADMIN_API_TOKEN: string;
  PROVISION_SHARED_SECRET: string;
  GHCR_PULL_TOKEN: string;
  CLOUDFLARE_API_TOKEN: string;
  AWS_SECRET_ACCESS_KEY: string;
}

export interface ApiCall {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: responses are asserted field by field
  body: any;
  text: string;
}

/** The HTTP API in the test process, over the test database, its log lines kept. */
export interface ChaosApi {
  app: FastifyInstance;
  url: string;
  logs: string[];
  /** Every response body the API sent through {@link ChaosApi.call}. */
  responses: string[];
  call(method: string, path: string, body?: unknown): Promise<ApiCall>;
}

export interface World {
  sim: Simulator;
  tdb: TestDatabase;
  api: ChaosApi;
  secrets: ConfiguredSecrets;
  /** The canary target's network (another account and region), when the world has one. */
  canary?: NetworkInfo;
  operators: OperatorProcess[];
  /** Environment for `molecule-operator run`, pointed at the simulator (or a proxy in front of it). */
  operatorEnv(overrides?: {
    cloudUrl?: string;
    databaseUrl?: string;
    env?: Record<string, string>;
  }): Record<string, string>;
  /** Starts `molecule-operator run` and waits until it is up. */
  startOperator(
    label: string,
    overrides?: Parameters<World['operatorEnv']>[0],
    opts?: { wait?: boolean },
  ): Promise<OperatorProcess>;
  close(): Promise<void>;
}

export async function startWorld(
  options: {
    faults?: Partial<FaultSettings>;
    logLevel?: string;
    seed?: number;
    /** Configure the canary target too: canary orgs then live in a second account and region. */
    canary?: boolean;
  } = {},
): Promise<World> {
  const sim = await startSimulator({
    port: 0,
    profile: 'fast',
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(options.faults ? { faults: options.faults } : {}),
  });
  const tdb = await createTestDatabase();
  if (!tdb.url) throw new Error('chaos tests need PostgreSQL (DATABASE_URL)');
  const secrets: ConfiguredSecrets = {
    CP_ADMIN_API_TOKEN: secret('cp-admin'),
    PROVISION_SHARED_SECRET: secret('provision'),
    GHCR_PULL_TOKEN: secret('ghcr'),
    CLOUDFLARE_API_TOKEN: secret('cf'),
    AWS_SECRET_ACCESS_KEY: secret('aws'),
  };
  const level = options.logLevel ?? 'info';
  const canary = options.canary ? sim.network(CANARY_ACCOUNT, CANARY_REGION) : undefined;
  const targetEnv = canary ? canaryEnv(canary) : {};
  const api = await startApi(tdb, { CP_ADMIN_API_TOKEN: secrets.CP_ADMIN_API_TOKEN, ...targetEnv }, level);
  const operators: OperatorProcess[] = [];

  const operatorEnv: World['operatorEnv'] = (o = {}) => {
    return {
      DATABASE_URL: o.databaseUrl ?? tdb.url!,
      MOLECULE_ENV: ENV,
      APP_DOMAIN,
      ...simEnv(simAt(o.cloudUrl ?? sim.url, sim.seed)),
      AWS_ACCESS_KEY_ID: 'AKIDCHAOS',
      AWS_SECRET_ACCESS_KEY: secrets.AWS_SECRET_ACCESS_KEY,
      // A token of the run's own (the simulator takes any), so leak checks can search for it.
      CLOUDFLARE_API_TOKEN: secrets.CLOUDFLARE_API_TOKEN,
      CP_ADMIN_API_TOKEN: secrets.CP_ADMIN_API_TOKEN,
      PROVISION_SHARED_SECRET: secrets.PROVISION_SHARED_SECRET,
      GHCR_PULL_TOKEN: secrets.GHCR_PULL_TOKEN,
      SECRET_RECOVERY_DAYS: '0',
      CREATE_GRACE: '4s',
      RESYNC_CRON: '*/10 * * * * *',
      ORPHAN_SCAN_CRON: '0 0 1 1 *',
      LEASE_DURATION: '3s',
      LEASE_RENEW_DEADLINE: '2s',
      LEASE_RETRY_PERIOD: '250ms',
      METRICS_PORT: '0',
      LOG_LEVEL: level,
      ...targetEnv,
      ...o.env,
    };
  };

  const world: World = {
    sim,
    tdb,
    api,
    secrets,
    ...(canary ? { canary } : {}),
    operators,
    operatorEnv,
    async startOperator(label, overrides, opts = {}) {
      const p = new OperatorProcess(label, ['run'], operatorEnv(overrides));
      operators.push(p);
      if (opts.wait !== false) await p.waitFor('operator started', 60_000);
      return p;
    },
    async close() {
      killAll();
      await Promise.all(operators.map((o) => o.exited));
      const base = process.env.CHAOS_KEEP_LOGS;
      if (base) {
        const keep = join(base, `${process.pid}`);
        mkdirSync(keep, { recursive: true });
        for (const o of operators)
          writeFileSync(join(keep, `${o.label}.log`), o.lines.map((l) => l.text).join('\n'));
        writeFileSync(join(keep, 'api.log'), api.logs.join('\n'));
        writeFileSync(join(keep, 'sim.json'), JSON.stringify({ dump: sim.dump(), log: sim.callLog() }));
      }
      await api.app.close();
      await tdb.drop();
      await sim.close();
    },
  };
  return world;
}

async function startApi(
  tdb: TestDatabase,
  env: { CP_ADMIN_API_TOKEN: string } & Record<string, string>,
  level: string,
): Promise<ChaosApi> {
  const token = env.CP_ADMIN_API_TOKEN;
  const { app, url, logs } = await listenApi(
    tdb.database,
    // The fuzzers and the fleet are all 127.0.0.1: the per-client limits are lifted.
    { ...env, MOLECULE_ENV: ENV, API_RATE_LIMIT: '1000000', API_AUTH_FAILURE_LIMIT: '10000' },
    level,
  );
  const responses: string[] = [];
  return {
    app,
    url,
    logs,
    responses,
    async call(method, path, body) {
      const { status, text } = await callApi(url, token, method, path, body);
      responses.push(text);
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = text;
      }
      return { status, body: parsed, text };
    },
  };
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the elapsed ms, or throws `describe()`. */
export async function until(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  describe: () => Promise<string> | string = () => 'condition not met',
  intervalMs = 100,
): Promise<number> {
  const start = Date.now();
  for (;;) {
    let ok = false;
    try {
      ok = await check();
    } catch {
      ok = false;
    }
    if (ok) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`after ${timeoutMs} ms: ${await describe()}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A small seeded PRNG (mulberry32) so a failing chaos run can be replayed with its seed. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    chance: (p: number) => next() < p,
  };
}
export type Rng = ReturnType<typeof rng>;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
