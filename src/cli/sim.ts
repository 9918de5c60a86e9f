import { runSimCommand } from '../sim/index.js';
import type { Command } from './types.js';

export const simCommand: Command = {
  summary: 'serve the AWS and Cloudflare simulator (default port 4566)',
  usage: [
    'molecule-operator sim [--port 4566] [--host 127.0.0.1] [--profile fast|realistic] [--state-file F] [--time-scale N] [--seed N]',
    '',
    'The AWS (EC2, Secrets Manager, Tagging API) and Cloudflare v4 simulator the tests and the demo',
    'use, for the real SDKs and the AWS CLI. It prints how to point them at it.',
  ].join('\n'),
  run: (argv, ctx) => runSimCommand(argv, { log: (line) => ctx.stdout(`${line}\n`) }),
};
