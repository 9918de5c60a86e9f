/**
 * The simulator in a process of its own, so its CPU and memory are not counted as the
 * operator's. Started by {@link ../remote-sim.ts}; options arrive as one JSON argument, the
 * listening URL leaves as one JSON line on stdout. Stops on SIGTERM (saving its state file).
 */
import { type SimOptions, startSimulator } from '../../../src/sim/index.js';

const options = JSON.parse(process.argv[2] ?? '{}') as SimOptions;
const sim = await startSimulator({ port: 0, ...options });
process.stdout.write(`${JSON.stringify({ url: sim.url, pid: process.pid })}\n`);
const stop = () => {
  void sim.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
