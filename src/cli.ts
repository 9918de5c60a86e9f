// Entry point of the `molecule-operator` bin: hands argv and the environment to the command table.
import { runCli } from './cli/main.js';

const code = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
process.exit(code);
