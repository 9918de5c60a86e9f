import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from './types.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses a command's flags strictly; unknown flags and stray arguments are usage errors. */
export function parseFlags<T extends Options>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** LOG_FORMAT when set; otherwise pretty for a person at a terminal, JSON for a collector. */
export function logFormat(config: { LOG_FORMAT?: 'json' | 'pretty' | undefined }): 'json' | 'pretty' {
  return config.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json');
}
