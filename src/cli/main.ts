import { commands } from './commands.js';
import { type CliContext, CliError, UsageError } from './types.js';

const HELP_FLAGS = new Set(['--help', '-h', 'help']);

export function helpText(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  return [
    'molecule-operator: converges AWS and Cloudflare resources to the desired orgs and workspaces in Postgres',
    '',
    'Usage: molecule-operator <command> [options]',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `molecule-operator <command> --help` for its options. Configuration comes from environment',
    'variables (DATABASE_URL, CP_ADMIN_API_TOKEN, …; see README).',
    '',
  ].join('\n');
}

/**
 * Dispatches to a command and returns the process exit code: the command's own, 2 for usage
 * and configuration errors, 1 for anything else that escapes a command.
 */
export async function runCli(argv: string[], ctx: CliContext): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || HELP_FLAGS.has(name)) {
    (name === undefined ? ctx.stderr : ctx.stdout)(helpText());
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    ctx.stderr(`molecule-operator: unknown command ${JSON.stringify(name)}\n\n${helpText()}`);
    return 2;
  }
  if (rest.some((a) => a === '--help' || a === '-h')) {
    ctx.stdout(`${command.usage}\n\n${command.summary}\n`);
    return 0;
  }
  let run: Awaited<ReturnType<typeof command.load>>;
  try {
    run = await command.load();
  } catch (e) {
    const missing = (e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND';
    if (!missing || !String((e as Error).message).includes(`/cli/${name}.js`)) throw e;
    // The production image ships run, api and migrate only (tsconfig.build.json).
    ctx.stderr(`${name}: not part of this build; run it from a checkout of the repository\n`);
    return 1;
  }
  try {
    return await run(rest, ctx);
  } catch (e) {
    // By name: importing config.ts here would load zod for `--help` too.
    if ((e as Error)?.name === 'ConfigError') {
      ctx.stderr(`${(e as Error).message}\n`);
      return 2;
    }
    if (e instanceof CliError) {
      ctx.stderr(`${name}: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ''}`);
      return e.exitCode;
    }
    if (e instanceof UsageError) {
      ctx.stderr(`${name}: ${e.message}\n\n${command.usage}\n`);
      return 2;
    }
    ctx.stderr(`${name}: ${(e as Error)?.message ?? String(e)}\n`);
    return 1;
  }
}
