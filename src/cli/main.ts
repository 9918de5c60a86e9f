import { readFileSync } from 'node:fs';
import { commands } from './commands.js';
import { type CliContext, CliError, type Command, UsageError } from './types.js';

const HELP_FLAGS = new Set(['--help', '-h']);

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
    'Run `molecule-operator help <command>` (or `<command> --help`) for its options, and',
    '`molecule-operator --version` for the version. Configuration comes from environment',
    'variables (DATABASE_URL, CP_ADMIN_API_TOKEN, …; see README).',
    '',
  ].join('\n');
}

/** A command's help: what it does first, then how to call it and its options. */
export function commandHelp(name: string, command: Command): string {
  return `molecule-operator ${name}: ${command.summary}\n\nUsage: ${command.usage}\n`;
}

/** The package's version, read only when asked for. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/**
 * Dispatches to a command and returns the process exit code: the command's own, 2 for usage
 * and configuration errors, 1 for anything else that escapes a command. Every error is printed
 * the same way: `molecule-operator <command>: <what went wrong>`, then `hint: <what to do>`.
 */
export async function runCli(argv: string[], ctx: CliContext): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === 'version') {
    ctx.stdout(`molecule-operator ${version()}\n`);
    return 0;
  }
  if (name === 'help' && rest.length > 0) return runCli([rest[0]!, '--help'], ctx);
  if (name === undefined || name === 'help' || HELP_FLAGS.has(name)) {
    (name === undefined ? ctx.stderr : ctx.stdout)(helpText());
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    ctx.stderr(
      `molecule-operator: unknown command ${JSON.stringify(name)}\nhint: run \`molecule-operator --help\` for the list\n`,
    );
    return 2;
  }
  const fail = (message: string, hint?: string) =>
    ctx.stderr(`molecule-operator ${name}: ${message}\n${hint ? `hint: ${hint}\n` : ''}`);
  if (rest.some((a) => HELP_FLAGS.has(a))) {
    ctx.stdout(commandHelp(name, command));
    return 0;
  }
  let run: Awaited<ReturnType<typeof command.load>>;
  try {
    run = await command.load();
  } catch (e) {
    const missing = (e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND';
    if (!missing || !String((e as Error).message).includes(`/cli/${name}.js`)) throw e;
    // The production image ships run, api and migrate only (tsconfig.build.json).
    fail('not part of this build', 'run it from a checkout of the repository');
    return 1;
  }
  try {
    return await run(rest, ctx);
  } catch (e) {
    // By name: importing config.ts here would load zod for `--help` too.
    if ((e as Error)?.name === 'ConfigError') {
      fail((e as Error).message);
      return 2;
    }
    if (e instanceof CliError) {
      fail(e.message, e.hint);
      return e.exitCode;
    }
    if (e instanceof UsageError) {
      fail(e.message, `molecule-operator help ${name}`);
      ctx.stderr(`\nUsage: ${command.usage.split('\n')[0]}\n`);
      return 2;
    }
    const listen = portClash(e);
    if (listen) {
      fail(listen.message, listen.hint);
      return 1;
    }
    fail(describe(e), hintFor(e));
    return 1;
  }
}

/** A port in use, named by the setting it came from (see {@link PortInUse}). */
function portClash(e: unknown): { message: string; hint: string } | undefined {
  const err = e as { code?: string; port?: number; setting?: string };
  if (err?.code !== 'EADDRINUSE') return undefined;
  const setting = err.setting ?? 'the port setting';
  return {
    message: `port ${err.port ?? '?'} (${setting}) is already in use`,
    hint: `stop what listens there, or choose another with ${setting} (0 picks a free one)`,
  };
}

/** What to do about the failures a newcomer meets first. */
function hintFor(e: unknown): string | undefined {
  for (let c: unknown = e; c; c = (c as { cause?: unknown }).cause) {
    if ((c as Error).name === 'CredentialsProviderError')
      return 'no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; for the demo, start it (plan, status and orphans ask it) or paste its export lines';
  }
  return undefined;
}

/** An unexpected error: its message and its causes, one line, without a stack trace. */
function describe(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e; c && parts.length < 5; c = (c as { cause?: unknown }).cause) {
    const m = String((c as Error).message ?? c).split('\n')[0]!;
    if (m && !parts.includes(m)) parts.push(m);
  }
  return parts.join(': ') || String(e);
}
