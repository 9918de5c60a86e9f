import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from './types.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses a command's flags strictly; unknown flags and stray arguments are usage errors. */
export function parseFlags<T extends Options>(argv: string[], options: T) {
  return parseCommand(argv, options, []).values;
}

/** Flags and up to `names.length` positional arguments (named for the error message). */
export function parseCommand<T extends Options>(argv: string[], options: T, names: readonly string[]) {
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: true }>
  >;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (parsed.positionals.length > names.length) {
    const extra = parsed.positionals.slice(names.length);
    throw new UsageError(
      `unexpected argument${extra.length === 1 ? '' : 's'} ${extra.map((a) => JSON.stringify(a)).join(' ')}` +
        (names.length ? ` (takes ${names.join(', ')})` : ' (takes none)'),
    );
  }
  return parsed;
}

/** `--json`, and `-o json` / `--output json|table` as kubectl has them. */
export const OUTPUT_OPTIONS = {
  json: { type: 'boolean' },
  output: { type: 'string', short: 'o' },
} as const;

/** True when JSON was asked for in any of the spellings; a usage error for an unknown format. */
export function wantsJson(flags: { json?: boolean | undefined; output?: string | undefined }): boolean {
  if (flags.output === undefined) return !!flags.json;
  if (flags.output === 'json') return true;
  if (flags.output === 'table' && !flags.json) return false;
  if (flags.output === 'table') throw new UsageError('--json and --output table contradict each other');
  throw new UsageError(`--output ${JSON.stringify(flags.output)}: expected json or table`);
}

/** LOG_FORMAT when set; otherwise pretty for a person at a terminal, JSON for a collector. */
export function logFormat(config: { LOG_FORMAT?: 'json' | 'pretty' | undefined }): 'json' | 'pretty' {
  return config.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json');
}

/**
 * Names the setting a port came from when it is taken (EADDRINUSE): the dispatcher then says
 * "port 8080 (PORT) is already in use" instead of a bare `listen EADDRINUSE`.
 */
export async function listening<T>(setting: string, port: number, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (e) {
    if ((e as { code?: string }).code === 'EADDRINUSE') Object.assign(e as object, { setting, port });
    throw e;
  }
}
