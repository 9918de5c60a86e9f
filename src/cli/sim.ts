import { runSimCommand } from '../sim/index.js';
import type { CliContext } from './types.js';

export const run = (argv: string[], ctx: CliContext): Promise<number> =>
  runSimCommand(argv, { log: (line) => ctx.stdout(`${line}\n`) });
