import { apiCommand } from './api.js';
import { demoCommand } from './demo.js';
import { migrateCommand } from './migrate.js';
import { orphansCommand } from './orphans.js';
import { planCommand } from './plan.js';
import { runCommand } from './run.js';
import { simCommand } from './sim.js';
import { statusCommand } from './status.js';
import type { Command } from './types.js';

export type { CliContext, Command } from './types.js';

/** A command whose issue has not landed yet: says so and fails, so scripts notice. */
const notAvailable = (name: string, summary: string): Command => ({
  summary,
  placeholder: true,
  async run(_argv, ctx) {
    ctx.stderr(`${name}: not available yet\n`);
    return 1;
  },
});

/**
 * Every `molecule-operator` subcommand (DESIGN §8). To add one, implement a {@link Command}
 * in its own file and replace its entry here.
 */
export const commands: Record<string, Command> = {
  demo: demoCommand,
  run: runCommand,
  api: apiCommand,
  migrate: migrateCommand,
  plan: planCommand,
  status: statusCommand,
  orphans: orphansCommand,
  sim: simCommand,
};
