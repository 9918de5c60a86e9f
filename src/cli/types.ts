/** What a command gets from the entry point; tests pass their own. */
export interface CliContext {
  /** Environment variables, read only through loadConfig. */
  env: Record<string, string | undefined>;
  /** Writes text as-is (commands add their own newlines). */
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export interface Command {
  /** One line for `molecule-operator --help`. */
  summary: string;
  /** Shown by `molecule-operator <command> --help`: options and what the command does. */
  usage: string;
  /**
   * Loads the implementation, which runs to completion (or until a signal for long-running
   * commands) and returns the exit code.
   */
  load(): Promise<(argv: string[], ctx: CliContext) => Promise<number>>;
}

/** Bad flags or arguments: the dispatcher prints the message and the command's usage, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * A failure the user can act on: the dispatcher prints `<command>: <message>` and, when given,
 * `hint: <hint>`, with no stack trace.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
