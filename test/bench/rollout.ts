/**
 * Benchmark 5 — an image rollout across the fleet (DESIGN §9, §11).
 *
 * N tenants (orgs without workspaces; P % of them canaries in the canary target's account and
 * region) are converged on the `realistic` simulator at time scale S, the operator's limits,
 * poll interval, backoff and soak scaled by the same S (as convergence.ts does). Then the
 * `tenant` image pin is set to a new image as `PUT /cp/admin/pins/runtime-images/tenant` sets
 * it (its NOTIFY wakes the operator); the clock runs until every tenant instance's
 * `Image` tag is the new image.
 *
 * Figures, in simulated time: rollout time against its lower bound (canary waves × command
 * duration + soak + other waves × command duration; waves = ceil(count / max in flight),
 * command duration = the simulator's SSM delivery + run), SSM and all cloud calls per
 * instance, duplicates (instances with more than one command for the new image) and
 * destructive calls (stop, reboot, terminate, run: must be 0).
 *
 *   npx tsx test/bench/rollout.ts [--orgs 1000] [--canary-percent 10] [--soak 30] \
 *     [--max-in-flight 20] [--time-scale 5] [--smoke] [--out DIR]
 */

import { createWriteStream } from 'node:fs';
import { PinRepository } from '../../src/db/pins.js';
import { createLogger } from '../../src/observability/logger.js';
import { DURATIONS } from '../../src/sim/index.js';
import { CANARY_ACCOUNT, CANARY_REGION, canaryEnv } from '../fixtures/sim.js';
import { benchArgs, log, runMain } from './lib/cli.js';
import { createBenchDatabase } from './lib/db.js';
import { createFleet, expectedStatusRows, readyRows } from './lib/fleet.js';
import { callDelta, cpuSeconds, round, total, until } from './lib/measure.js';
import { startRemoteSim } from './lib/remote-sim.js';
import { type BenchResult, publish } from './lib/results.js';
import {
  type BenchOperator,
  benchConfig,
  scaledBuckets,
  settleLeader,
  startBenchOperator,
} from './lib/stack.js';

const BENCH = 'rollout';
const IMAGE_1 = 'ghcr.io/molecule-ai/platform-tenant:bench-1';
const IMAGE_2 = 'ghcr.io/molecule-ai/platform-tenant:bench-2';
const SSM_OPS = new Set(['SendCommand', 'ListCommands', 'GetCommandInvocation', 'ListCommandInvocations']);
const DESTRUCTIVE = new Set(['StopInstances', 'RebootInstances', 'TerminateInstances', 'RunInstances']);

interface Inst {
  InstanceId?: string;
  instanceId?: string;
  state: string | { Name?: string };
  tags: Record<string, string>;
}

async function main() {
  const args = benchArgs(['orgs', 'canary-percent', 'soak', 'max-in-flight', 'time-scale']);
  const orgs = args.num('orgs', 1000, 20);
  const canaryPercent = args.num('canary-percent', 10, 10);
  const soakS = args.num('soak', 30, 10);
  const maxInFlight = args.num('max-in-flight', 20, 5);
  const scale = args.num('time-scale', 5, 20);
  const started = new Date();
  const t0 = performance.now();
  const sim = await startRemoteSim({ profile: 'realistic', timeScale: scale });
  const bdb = await createBenchDatabase(BENCH);
  let op: BenchOperator | undefined;
  try {
    const { database } = bdb;
    const ms = (simMs: number) => `${Math.max(1, Math.round(simMs / scale))}ms`;
    const canaryNet = await sim.network(CANARY_ACCOUNT, CANARY_REGION);
    const config = benchConfig(sim, {
      ...canaryEnv(canaryNet),
      TENANT_IMAGE: IMAGE_1,
      CREATE_GRACE: ms(30_000),
      ROLLOUT_CANARY_SOAK: ms(soakS * 1000),
      ROLLOUT_MAX_IN_FLIGHT: String(maxInFlight),
    });
    op = await startBenchOperator({
      config,
      database,
      ...(process.env.BENCH_LOG
        ? { logger: createLogger({ level: 'debug' }, createWriteStream(process.env.BENCH_LOG)) }
        : {}),
      buckets: scaledBuckets(scale),
      manager: {
        pollIntervalMs: Math.max(1, Math.round(2_000 / scale)),
        backoff: {
          baseDelayMs: Math.max(1, Math.round(500 / scale)),
          maxDelayMs: Math.round(300_000 / scale),
        },
      },
    });
    await settleLeader(op.operator);

    const canaryEvery = Math.round(100 / canaryPercent);
    const fleet = await createFleet(database, orgs, { workspacesPerOrg: 0, canaryEvery });
    const canaries = Math.floor(orgs / canaryEvery);
    const expected = expectedStatusRows(fleet.orgIds.length, 0);
    log(BENCH, `${orgs} tenants (${canaries} canary), realistic simulator at ×${scale}: converging`);
    const convergeT0 = performance.now();
    await until(async () => (await readyRows(database)).ready === expected, 3_600_000, 200);
    await op.operator.manager.idle();
    const convergeS = (performance.now() - convergeT0) / 1000;

    const instances = async () => {
      const d = await sim.dump();
      const all = [...d.instances, ...d.partitions.flatMap((p) => p.instances)] as unknown as Inst[];
      const live = all.filter((i) => {
        const s = typeof i.state === 'string' ? i.state : i.state?.Name;
        return i.tags.Role === 'tenant' && s !== 'terminated' && s !== 'shutting-down';
      });
      const commands = [...(d.commands ?? []), ...d.partitions.flatMap((p) => p.commands ?? [])];
      return { live, commands };
    };
    const before = await instances();
    if (before.live.length !== orgs)
      throw new Error(`${before.live.length} tenant instances for ${orgs} orgs`);

    // The rollout: the pin as the API sets it (PinRepository; the table's trigger NOTIFYs the
    // operator on commit, which wakes the owners the pin governs).
    await sim.resetCalls();
    const simStart = await sim.now();
    const cpu0 = process.cpuUsage();
    const rt0 = performance.now();
    await new PinRepository(database.db).set({ pin: 'runtime_image', runtime: 'tenant' }, IMAGE_2, 'bench');
    let lastLog = 0;
    await until(
      async () => {
        const { live } = await instances();
        const done = live.filter((i) => i.tags.Image === IMAGE_2).length;
        if (Date.now() - lastLog > 15_000) {
          lastLog = Date.now();
          log(BENCH, `${done}/${orgs} instances on the new image`);
        }
        return done === orgs;
      },
      // A rollout that stalls must fail the smoke run, not hang it.
      args.smoke ? 180_000 : 3_600_000,
      // The end is read from the simulator's call log (the last Image tag update), so this
      // poll's period does not count; each poll reads the whole simulator state in this process.
      1_000,
    );
    const realS = (performance.now() - rt0) / 1000;
    const cpuS = cpuSeconds(cpu0);
    await op.operator.manager.idle();
    const calls = callDelta([], await sim.calls());
    const logRecs = await sim.callLog(simStart);
    const tagged = logRecs.filter((r) => r.operation === 'CreateTags' && r.status < 300).map((r) => r.at);
    const simEnd = tagged.length > 0 ? Math.max(...tagged) : await sim.now();
    const simS = (simEnd - simStart) / 1000;
    await op.stop();
    op = undefined;

    const after = await instances();
    const perInstance = new Map<string, number>();
    for (const c of after.commands)
      if (c.comment.endsWith(IMAGE_2))
        for (const id of c.instanceIds) perInstance.set(id, (perInstance.get(id) ?? 0) + 1);
    const duplicates = [...perInstance.values()].filter((n) => n > 1).length;
    const missing = orgs - perInstance.size;
    const mutatingNonSsm: Record<string, number> = {};
    for (const r of logRecs)
      if (r.mutating && !SSM_OPS.has(r.operation))
        mutatingNonSsm[r.operation] = (mutatingNonSsm[r.operation] ?? 0) + 1;
    const destructive = Object.entries(mutatingNonSsm)
      .filter(([o]) => DESTRUCTIVE.has(o))
      .reduce((a, [, n]) => a + n, 0);

    const d = DURATIONS.realistic;
    const commandS = (d.ssmDelivery + d.ssmRun) / 1000;
    const canaryWaves = Math.ceil(canaries / maxInFlight);
    const otherWaves = Math.ceil((orgs - canaries) / maxInFlight);
    const lowerS = canaryWaves * commandS + (canaries > 0 ? soakS : 0) + otherWaves * commandS;
    const ratio = simS / lowerS;
    const ssmCalls = Object.entries(calls)
      .filter(([k]) => k.startsWith('ssm:'))
      .reduce((a, [, n]) => a + n, 0);
    const allCalls = total(calls);
    const perOp = (o: string) => round((calls[`ssm:${o}`] ?? 0) / orgs, 2);
    const timeline = (o: string) => {
      const ts = logRecs.filter((r) => r.operation === o && r.status < 300).map((r) => r.at);
      return ts.length
        ? {
            first: round((Math.min(...ts) - simStart) / 1000, 1),
            last: round((Math.max(...ts) - simStart) / 1000, 1),
          }
        : undefined;
    };

    const result: BenchResult = {
      name: BENCH,
      title: `Image rollout (${orgs} tenants, ${canaries} canary)`,
      command: `npx tsx test/bench/rollout.ts --orgs ${orgs} --canary-percent ${canaryPercent} --soak ${soakS} --max-in-flight ${maxInFlight} --time-scale ${scale}`,
      startedAt: started.toISOString(),
      durationS: round((performance.now() - t0) / 1000, 1),
      params: {
        orgs,
        canaries,
        canaryPercent,
        soakS,
        maxInFlight,
        timeScale: scale,
        simProfile: 'realistic',
        commandS,
      },
      figures: [
        { figure: 'rollout time (simulated)', value: round(simS, 1), unit: 's' },
        { figure: 'lower bound (waves × command + soak)', value: round(lowerS, 1), unit: 's' },
        { figure: 'time / lower bound', value: `${round(ratio, 3)}×` },
        { figure: 'SSM calls per instance', value: round(ssmCalls / orgs, 2) },
        {
          figure: '  SendCommand / ListCommands / GetCommandInvocation per instance',
          value: `${perOp('SendCommand')} / ${perOp('ListCommands')} / ${perOp('GetCommandInvocation')}`,
        },
        { figure: 'cloud calls per instance', value: round(allCalls / orgs, 2) },
        { figure: 'duplicate commands', value: duplicates, target: '0', met: duplicates === 0 },
        {
          figure: 'destructive calls (stop, reboot, terminate, run)',
          value: destructive,
          target: '0',
          met: destructive === 0,
        },
      ],
      details: {
        simulatedSeconds: round(simS, 1),
        realSeconds: round(realS, 2),
        // The operator and this benchmark's polls of the simulator state share the process.
        processCpuS: round(cpuS, 2),
        convergeRealSeconds: round(convergeS, 1),
        waves: { canary: canaryWaves, others: otherWaves },
        instancesWithoutCommand: missing,
        mutatingNonSsm,
        callsByOperation: calls,
        timeline: { SendCommand: timeline('SendCommand'), CreateTags: timeline('CreateTags') },
      },
      notes: [
        `Simulator \`realistic\` at time scale ${scale} (${round(realS, 1)} s of wall time for the rollout); the operator's ` +
          `client buckets, poll interval, backoff and the soak (ROLLOUT_CANARY_SOAK = ${soakS} s simulated) are scaled by ${scale}; ` +
          `ROLLOUT_MAX_IN_FLIGHT = ${maxInFlight}. The redeploy controller's command polling (500 ms – 30 s by the command's age) ` +
          `is not scaled: each real ms of it is ${scale} simulated ms. Held owners are woken by the rollout gate, not polled.`,
        `Lower bound: ${canaryWaves} canary wave(s) × ${commandS} s + ${soakS} s soak + ${otherWaves} wave(s) × ${commandS} s ` +
          `(command = SSM delivery ${d.ssmDelivery / 1000} s + run ${d.ssmRun / 1000} s). The rollout ends at the last Image tag update.`,
        `Mutating non-SSM calls: ${JSON.stringify(mutatingNonSsm)} (the Image tag update is CreateTags).` +
          ` Instances without a command for the new image: ${missing}.`,
      ],
    };
    await publish(result, args.out);
    log(BENCH, JSON.stringify(result.figures.map((f) => [f.figure, f.value, f.met ?? ''])));
  } finally {
    await op?.stop().catch(() => {});
    await bdb.drop();
    await sim.close();
  }
}

runMain(BENCH, main);
