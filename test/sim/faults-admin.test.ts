import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetResourcesCommand } from '@aws-sdk/client-resource-groups-tagging-api';
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
} from '@aws-sdk/client-secrets-manager';
import Cloudflare from 'cloudflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLOUDFLARE_BUCKET,
  EC2_BUCKETS,
  type FaultSettings,
  runSimCommand,
  STRICT_FIDELITY,
  startSimulator,
} from '../../src/sim/index.js';
import { AMI, eventually, failure, type Harness, launch, startHarness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

/** Applies fault settings for the duration of `body`, then restores the previous ones. */
async function withFaults<T>(f: Partial<FaultSettings>, body: () => Promise<T>): Promise<T> {
  const before = h.sim.getFaults();
  h.sim.setFaults(f);
  try {
    return await body();
  } finally {
    // An operation override set to null is removed.
    const added = Object.keys(h.sim.getFaults().operations ?? {}).filter(
      (k) => !(k in (before.operations ?? {})),
    );
    h.sim.setFaults({
      ...before,
      operations: Object.fromEntries(added.map((k) => [k, null])),
    } as unknown as FaultSettings);
  }
}

describe('injected faults', () => {
  it('surfaces throttling as RequestLimitExceeded (503) after the SDK retried', async () => {
    const retrying = await startHarness(
      { faults: { operations: { 'ec2:DescribeInstances': { throttleRate: 1 } } } },
      3,
    );
    try {
      const e = await failure(retrying.ec2.send(new DescribeInstancesCommand({})));
      expect(e.name).toBe('RequestLimitExceeded');
      expect(e.$metadata.httpStatusCode).toBe(503);
      expect(e.$metadata.attempts).toBe(3);
      expect(retrying.sim.calls()).toEqual([
        { service: 'ec2', operation: 'DescribeInstances', status: 503, count: 3 },
      ]);
    } finally {
      await retrying.close();
    }
  });

  it('throttles Secrets Manager (ThrottlingException) and the Tagging API (ThrottledException) with 400', async () => {
    await withFaults({ throttleRate: 1 }, async () => {
      const sm = await failure(h.sm.send(new ListSecretsCommand({})));
      expect(sm.name).toBe('ThrottlingException');
      expect(sm.$metadata.httpStatusCode).toBe(400);
      const tg = await failure(h.tagging.send(new GetResourcesCommand({})));
      expect(tg.name).toBe('ThrottledException');
    });
  });

  it('injects 5xx errors per service', async () => {
    await withFaults({ errorRate: 1, errorAfterCommitRatio: 0 }, async () => {
      const ec2 = await failure(h.ec2.send(new DescribeInstancesCommand({})));
      expect(['InternalError', 'Unavailable']).toContain(ec2.name);
      expect([500, 503]).toContain(ec2.$metadata.httpStatusCode);
      const sm = await failure(h.sm.send(new GetSecretValueCommand({ SecretId: 'x' })));
      expect(sm.name).toBe('InternalServiceError');
      expect(sm.$metadata.httpStatusCode).toBe(500);
      const cf = await failure(h.cf.zones.get({ zone_id: h.sim.seed.cloudflareZoneId }));
      expect(cf).toBeInstanceOf(Cloudflare.InternalServerError);
    });
  });

  it('scopes per-operation overrides to that operation', async () => {
    await withFaults({ operations: { 'secretsmanager:CreateSecret': { errorRate: 1 } } }, async () => {
      const e = await failure(h.sm.send(new CreateSecretCommand({ Name: 'scoped-fail', SecretString: 'x' })));
      expect(e.$metadata.httpStatusCode).toBe(500);
      expect((await h.sm.send(new ListSecretsCommand({}))).$metadata.httpStatusCode).toBe(200);
    });
  });

  it('can fail a mutating call after applying it (ambiguous outcome)', async () => {
    await withFaults(
      { operations: { 'ec2:CreateSecurityGroup': { errorRate: 1 } }, errorAfterCommitRatio: 1 },
      async () => {
        const e = await failure(
          h.ec2.send(
            new CreateSecurityGroupCommand({
              GroupName: 'ambiguous',
              Description: 'x',
              VpcId: h.sim.seed.vpcId,
            }),
          ),
        );
        expect(e.$metadata.httpStatusCode).toBeGreaterThanOrEqual(500);
      },
    );
    const out = await h.ec2.send(
      new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-name', Values: ['ambiguous'] }] }),
    );
    expect(out.SecurityGroups).toHaveLength(1);
  });

  it('adds latency to every request', async () => {
    await withFaults({ latencyMs: 60 }, async () => {
      const started = Date.now();
      await h.ec2.send(new DescribeInstancesCommand({}));
      expect(Date.now() - started).toBeGreaterThanOrEqual(55);
    });
  });

  it('turns a Cloudflare throttle into 429 code 971 with retry-after, retried by the SDK then thrown', async () => {
    await withFaults({ operations: { 'cloudflare:*': { throttleRate: 1 } } }, async () => {
      const raw = await fetch(`${h.sim.cloudflareBaseUrl}/zones/${h.sim.seed.cloudflareZoneId}`, {
        headers: { authorization: 'Bearer t' },
      });
      expect(raw.status).toBe(429);
      expect(raw.headers.get('retry-after')).toBe('1');
      expect(((await raw.json()) as { errors: { code: number }[] }).errors[0]!.code).toBe(971);
      const retrying = new Cloudflare({ apiToken: 't', baseURL: h.sim.cloudflareBaseUrl, maxRetries: 2 });
      h.sim.resetCalls();
      const e = await failure(retrying.zones.get({ zone_id: h.sim.seed.cloudflareZoneId }));
      expect(e).toBeInstanceOf(Cloudflare.RateLimitError);
      expect(h.sim.calls()).toEqual([
        { service: 'cloudflare', operation: 'GET zones/:id', status: 429, count: 3 },
      ]);
    });
  });

  it('validates fault settings', () => {
    expect(() => h.sim.setFaults({ errorRate: 2 })).toThrow(/errorRate/);
    expect(h.sim.getFaults().errorRate).toBe(0);
  });
});

describe('token buckets', () => {
  it('enforces the RunInstances bucket (5, +2/s) in simulated time', async () => {
    const r = await startHarness({ profile: 'realistic', faults: { latencyMs: 0 } });
    try {
      const run = () => r.ec2.send(new RunInstancesCommand({ ImageId: AMI, MinCount: 1, MaxCount: 1 }));
      for (let k = 0; k < EC2_BUCKETS.RunInstances.capacity; k++) await run();
      const e = await failure(run());
      expect(e.name).toBe('RequestLimitExceeded');
      expect(e.$metadata.httpStatusCode).toBe(503);
      r.sim.advance(500);
      await run();
      await failure(run());
      // Describe calls draw from their own bucket and are unaffected.
      await r.ec2.send(new DescribeInstancesCommand({ MaxResults: 5 }));
    } finally {
      await r.close();
    }
  });

  it('answers 429 code 971 once the Cloudflare bucket (1200 / 5 min) is empty, until it refills', async () => {
    // A frozen base clock: only advance() moves simulated time, so no token refills meanwhile.
    const r = await startHarness({
      profile: 'realistic',
      now: () => 1_700_000_000_000,
      faults: { latencyMs: 0 },
    });
    try {
      const url = `${r.sim.cloudflareBaseUrl}/zones/${r.sim.seed.cloudflareZoneId}`;
      const get = () =>
        fetch(url, { headers: { authorization: 'Bearer t' } }).then(async (res) => {
          await res.arrayBuffer();
          return res;
        });
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < CLOUDFLARE_BUCKET.capacity) {
            next++;
            expect((await get()).status).toBe(200);
          }
        }),
      );
      const limited = await failure(r.cf.zones.get({ zone_id: r.sim.seed.cloudflareZoneId }));
      expect(limited).toBeInstanceOf(Cloudflare.RateLimitError);
      expect(limited.errors![0]!.code).toBe(971);
      r.sim.advance(250);
      expect((await get()).status).toBe(200);
      expect((await get()).status).toBe(429);
    } finally {
      await r.close();
    }
  });

  it('refills Cloudflare tokens according to the time scale', async () => {
    const r = await startHarness({ profile: 'realistic', timeScale: 1, faults: { latencyMs: 0 } });
    try {
      const res = await fetch(`${r.sim.cloudflareBaseUrl}/zones/${r.sim.seed.cloudflareZoneId}`, {
        headers: { authorization: 'Bearer t' },
      });
      expect(res.headers.get('ratelimit-policy')).toBe('"burst";q=1200;w=300');
      expect(res.headers.get('ratelimit')).toMatch(/^"default";r=1199;t=\d+$/);
    } finally {
      await r.close();
    }
  });
});

describe('time scale', () => {
  it('runs realistic transitions faster under a large time scale', async () => {
    const r = await startHarness({
      profile: 'realistic',
      timeScale: 1000,
      faults: { buckets: false, latencyMs: 0 },
    });
    try {
      const i = await launch(r);
      await eventually(async () => {
        const out = await r.ec2.send(new DescribeInstancesCommand({ InstanceIds: [i.InstanceId!] }));
        return out.Reservations![0]!.Instances![0]!.State?.Name === 'running';
      });
    } finally {
      await r.close();
    }
  });
});

describe('admin API', () => {
  it('dumps state, counts and logs calls with targets, resets calls', async () => {
    h.sim.resetCalls();
    const since = h.sim.now();
    await launch(h, { OrgID: 'org-admin', WorkspaceID: 'ws-admin' });
    await h.ec2.send(new DescribeInstancesCommand({}));
    const log = h.sim.callLog(since);
    expect(log.map((c) => [c.operation, c.mutating, c.target])).toEqual([
      ['RunInstances', true, 'ws-admin'],
      ['DescribeInstances', false, undefined],
    ]);
    const calls = (await (await fetch(`${h.sim.url}/_sim/calls`)).json()) as {
      operation: string;
      count: number;
    }[];
    expect(calls.map((c) => c.operation).sort()).toEqual(['DescribeInstances', 'RunInstances']);
    const httpLog = (await (await fetch(`${h.sim.url}/_sim/log?since=${since}`)).json()) as unknown[];
    expect(httpLog).toHaveLength(2);
    const state = (await (await fetch(`${h.sim.url}/_sim/state`)).json()) as {
      instances: { tags: Record<string, string> }[];
      seed: { vpcId: string };
    };
    expect(state.seed.vpcId).toBe(h.sim.seed.vpcId);
    expect(state.instances.some((i) => i.tags.OrgID === 'org-admin')).toBe(true);
    expect((await fetch(`${h.sim.url}/_sim/calls`, { method: 'DELETE' })).status).toBe(200);
    expect(h.sim.calls()).toEqual([]);
  });

  it('merges fault settings over HTTP, never faults admin calls, and does not log them', async () => {
    const put = await fetch(`${h.sim.url}/_sim/faults`, {
      method: 'PUT',
      body: JSON.stringify({ errorRate: 1 }),
    });
    try {
      expect(((await put.json()) as { errorRate: number; buckets: boolean }).errorRate).toBe(1);
      const got = await fetch(`${h.sim.url}/_sim/faults`);
      expect(got.status).toBe(200);
      expect(((await got.json()) as { latencyMs: number }).latencyMs).toBe(0);
      expect(h.sim.callLog().filter((c) => c.at >= h.sim.now() - 1000)).toEqual([]);
      const bad = await fetch(`${h.sim.url}/_sim/faults`, {
        method: 'PUT',
        body: JSON.stringify({ throttleRate: -1 }),
      });
      expect(bad.status).toBe(400);
    } finally {
      h.sim.setFaults({ errorRate: 0 });
    }
  });

  it('advances time and resets to the seeded objects over HTTP', async () => {
    await launch(h);
    const before = h.sim.now();
    const adv = await fetch(`${h.sim.url}/_sim/advance`, {
      method: 'POST',
      body: JSON.stringify({ ms: 60_000 }),
    });
    expect(((await adv.json()) as { now: number }).now).toBeGreaterThanOrEqual(before + 60_000);
    await fetch(`${h.sim.url}/_sim/reset`, { method: 'POST' });
    const dump = h.sim.dump();
    expect(dump.instances).toEqual([]);
    // The seeded EIC endpoint group and the seeded VPC's default group.
    expect(dump.securityGroups.map((g) => g.id)).toEqual([
      h.sim.seed.eicSecurityGroupId,
      h.sim.network(h.sim.seed.accountId).defaultSecurityGroupId,
    ]);
  });
});

describe('persistence and the sim command', () => {
  it('saves state to the state file on close and loads it on start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'molecule-sim-'));
    const stateFile = join(dir, 'cloud.json');
    try {
      const first = await startHarness({ stateFile });
      const i = await launch(first, { Persist: 'yes' });
      await first.sm.send(new CreateSecretCommand({ Name: 'persisted', SecretString: 's3cret' }));
      await first.close();
      const second = await startHarness({ stateFile, seed: 7 });
      try {
        const out = await second.ec2.send(new DescribeInstancesCommand({ InstanceIds: [i.InstanceId!] }));
        expect(out.Reservations![0]!.Instances![0]!.Tags).toEqual([{ Key: 'Persist', Value: 'yes' }]);
        expect(
          (await second.sm.send(new GetSecretValueCommand({ SecretId: 'persisted' }))).SecretString,
        ).toBe('s3cret');
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs `sim` until stopped, printing the URL, seeded ids and client settings', async () => {
    const lines: string[] = [];
    const stop = new AbortController();
    const exit = runSimCommand(['--port', '0', '--profile', 'realistic', '--time-scale', '10'], {
      log: (l) => lines.push(l),
      signal: stop.signal,
    });
    await eventually(() => lines.some((l) => l.startsWith('molecule-operator sim listening on ')));
    const url = /listening on (\S+)/.exec(lines[0]!)![1]!;
    const text = lines.join('\n');
    expect(text).toContain(`export AWS_ENDPOINT_URL=${url}`);
    expect(text).toContain(`CLOUDFLARE_BASE_URL=${url}/client/v4`);
    expect(text).toContain('vpc-0a1b2c3d4e5f60718');
    expect((await fetch(`${url}/_sim/`)).status).toBe(200);
    stop.abort();
    expect(await exit).toBe(0);
    await expect(fetch(`${url}/_sim/`)).rejects.toThrow();
  });

  it('--strict starts a simulator with every real-cloud behaviour on', async () => {
    const lines: string[] = [];
    const stop = new AbortController();
    const exit = runSimCommand(['--port', '0', '--strict'], {
      log: (l) => lines.push(l),
      signal: stop.signal,
    });
    await eventually(() => lines.some((l) => l.startsWith('molecule-operator sim listening on ')));
    const url = /listening on (\S+)/.exec(lines[0]!)![1]!;
    expect(lines.join('\n')).toContain('strict');
    const faults = (await (await fetch(`${url}/_sim/faults`)).json()) as Record<string, unknown>;
    expect(faults).toMatchObject(STRICT_FIDELITY);
    stop.abort();
    expect(await exit).toBe(0);
  });

  it('exits 2 on bad arguments', async () => {
    const lines: string[] = [];
    expect(await runSimCommand(['--profile', 'slow'], { log: (l) => lines.push(l) })).toBe(2);
    expect(lines[0]).toContain('--profile');
  });

  it('starts on an ephemeral port with the documented seed', async () => {
    const sim = await startSimulator({ port: 0 });
    try {
      expect(sim.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(sim.cloudflareBaseUrl).toBe(`${sim.url}/client/v4`);
      expect(sim.awsEndpoint).toBe(sim.url);
      expect(sim.seed).toMatchObject({
        accountId: '123456789012',
        vpcId: 'vpc-0a1b2c3d4e5f60718',
        zoneName: 'moleculesai.app',
      });
    } finally {
      await sim.close();
    }
  });
});
