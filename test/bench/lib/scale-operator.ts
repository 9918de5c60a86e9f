/**
 * The operator under measurement in benchmark 4, alone in its process (the simulator and the
 * seeding live elsewhere), so its RSS and CPU are its own. Driven by its parent over IPC:
 * `{cmd: 'resync'}` runs one full resync and reports; `{cmd: 'stop'}` reports the peak RSS and
 * exits. Production settings: default client buckets, concurrency, pool size, poll interval.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { openDatabase } from '../../../src/db/client.js';
import type { SeedInfo } from '../../../src/sim/index.js';
import { cpuSeconds, peakRssMb, round, threadCpuSeconds } from './measure.js';
import { type CpuProfile, cpuByPhase, splitCpu } from './phases.js';
import { benchConfig, settleLeader, startBenchOperator } from './stack.js';

interface Options {
  databaseUrl: string;
  /** Write a CPU profile of each measured resync here (`--cpu-prof-dir`). */
  cpuProfileDir?: string;
  /** Write a sampled profile of every allocation (collected or not) of a measured resync here (`--alloc-prof`). */
  allocationProfile?: string;
  sim: { awsEndpoint: string; cloudflareBaseUrl: string; seed: SeedInfo };
}

/** The thread V8's CPU profiler samples from (its name as /proc shows it). */
const PROFILER_THREAD = 'v8:ProfEvntProc';

const send = (m: unknown) => process.send!(m);
const options = JSON.parse(process.argv[2]!) as Options;

async function main() {
  const cpuStart = process.cpuUsage();
  const t0 = performance.now();
  const database = await openDatabase({ DATABASE_URL: options.databaseUrl, PGLITE_DIR: '' });
  const config = benchConfig(options.sim);
  const op = await startBenchOperator({ config, database });
  await settleLeader(op.operator);
  send({
    phase: 'first',
    cpuS: round(cpuSeconds(cpuStart)),
    wallS: round((performance.now() - t0) / 1000),
    rssMb: round(process.memoryUsage.rss() / 2 ** 20, 1),
    peakRssMb: round(peakRssMb(), 1),
  });
  process.on('message', async (m: { cmd: string }) => {
    try {
      if (m.cmd === 'resync') {
        global.gc?.();
        // Always profiled (1 ms samples): the profile splits the resync's CPU by phase.
        const session = new Session();
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.setSamplingInterval', { interval: 1000 });
        await session.post('Profiler.start');
        let heapSession: Session | undefined;
        if (options.allocationProfile) {
          heapSession = new Session();
          heapSession.connect();
          await heapSession.post('HeapProfiler.enable');
          await heapSession.post('HeapProfiler.startSampling', {
            samplingInterval: 16384,
            includeObjectsCollectedByMajorGC: true,
            includeObjectsCollectedByMinorGC: true,
          } as never);
        }
        const profiler0 = threadCpuSeconds(PROFILER_THREAD);
        const cpu0 = process.cpuUsage();
        const w0 = performance.now();
        await op.operator.manager.resync('bench');
        await op.operator.manager.idle();
        // The profiler's sampling thread is the bench's, not the operator's: left out (it cost
        // 0.1-0.2 s per resync at 1 ms samples). Its in-thread cost (taking each sample) stays in.
        const processCpuS = cpuSeconds(cpu0);
        const profilerCpuS = threadCpuSeconds(PROFILER_THREAD) - profiler0;
        const cpuS = Math.max(0, processCpuS - profilerCpuS);
        const { profile } = await session.post('Profiler.stop');
        session.disconnect();
        if (options.cpuProfileDir) {
          mkdirSync(options.cpuProfileDir, { recursive: true });
          writeFileSync(
            join(options.cpuProfileDir, `resync-${Date.now()}.cpuprofile`),
            JSON.stringify(profile),
          );
        }
        const phases = splitCpu(cpuS, cpuByPhase(profile as CpuProfile));
        if (heapSession) {
          const { profile } = await heapSession.post('HeapProfiler.stopSampling');
          writeFileSync(options.allocationProfile!, JSON.stringify(profile));
        }
        send({
          phase: 'resync',
          cpuS: round(cpuS, 3),
          profilerCpuS: round(profilerCpuS, 3),
          phases,
          wallS: round((performance.now() - w0) / 1000),
          rssMb: round(process.memoryUsage.rss() / 2 ** 20, 1),
          peakRssMb: round(peakRssMb(), 1),
          heapUsedMb: round(process.memoryUsage().heapUsed / 2 ** 20, 1),
        });
      } else if (m.cmd === 'rollout-refresh') {
        // The once-a-minute refresh of the rollout gauges: not part of a resync, but a steady
        // cost of the operator at this scale (it reads every owner's redeploy row).
        global.gc?.();
        const cpu0 = process.cpuUsage();
        const w0 = performance.now();
        await op.operator.rollouts.refresh();
        send({
          phase: 'rollout-refresh',
          cpuS: round(cpuSeconds(cpu0), 3),
          wallS: round((performance.now() - w0) / 1000),
          rssMb: round(process.memoryUsage.rss() / 2 ** 20, 1),
          peakRssMb: round(peakRssMb(), 1),
        });
      } else if (m.cmd === 'stop') {
        await op.stop();
        await database.close();
        send({
          phase: 'stopped',
          peakRssMb: round(peakRssMb(), 1),
          cpuS: round(cpuSeconds(cpuStart)),
        });
        process.exit(0);
      }
    } catch (e) {
      send({ phase: 'error', error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      process.exit(1);
    }
  });
}

main().catch((e) => {
  send({ phase: 'error', error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  process.exit(1);
});
