import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import {
  presentAmiPinSet,
  presentImagePinSet,
  presentPinChange,
  presentPinList,
} from '../api/present-pins.js';
import { loadConfig } from '../config.js';
import { type PinKey, PinRepository } from '../db/pins.js';
import { amiRefusal, imageRefusal, regionRefusal, runtimeRefusal } from '../provisioning/pins.js';
import { openForCommand } from './database.js';
import { formatTable } from './table.js';
import { type CliContext, UsageError } from './types.js';

/*
 * `molecule-operator pins list|set|unset|audit`: the pins API's operations on the database
 * directly, through the same repository (validation, audit row and notification alike), for an
 * operator with DATABASE_URL and no API token at hand.
 */

const KINDS = ['image', 'ami'] as const;

/** Who changed a pin from here, for the audit trail. */
function actor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli'; // no passwd entry for this uid (a container)
  }
}

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        json: { type: 'boolean' },
        output: { type: 'string', short: 'o' },
        region: { type: 'string' },
        limit: { type: 'string' },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export async function run(argv: string[], ctx: CliContext): Promise<number> {
  const { values: flags, positionals } = parse(argv);
  const [verb, ...args] = positionals;
  if (flags.output !== undefined && flags.output !== 'json' && flags.output !== 'table')
    throw new UsageError(`-o ${flags.output}: expected json or table`);
  const json = flags.json === true || flags.output === 'json';
  const config = loadConfig(ctx.env);
  const region = flags.region ?? config.AWS_REGION;

  // Every argument is checked before the database is opened: a bad one writes nothing.
  let action: (pins: PinRepository) => Promise<number>;
  switch (verb) {
    case 'list':
      expectArgs(args, 0, 'list');
      action = async (pins) => {
        const view = presentPinList(await pins.list());
        ctx.stdout(json ? `${JSON.stringify(view, null, 2)}\n` : formatPins(view));
        return 0;
      };
      break;
    case 'audit': {
      expectArgs(args, 0, 'audit');
      const limit = flags.limit === undefined ? 50 : Number(flags.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
        throw new UsageError(`--limit ${flags.limit}: expected an integer between 1 and 10000`);
      action = async (pins) => {
        const rows = (await pins.audit(limit)).map(presentPinChange);
        ctx.stdout(json ? `${JSON.stringify(rows, null, 2)}\n` : formatAudit(rows));
        return 0;
      };
      break;
    }
    case 'set': {
      const [kind, runtime, value] = expectArgs(args, 3, 'set');
      const key = pinKey(kind!, runtime!, region);
      const refusal = key.pin === 'ami' ? amiRefusal(value!) : imageRefusal(value!);
      if (refusal)
        throw new UsageError(
          `${key.pin === 'ami' ? 'AMI id' : 'image'} ${JSON.stringify(value)}: ${refusal}`,
        );
      action = async (pins) => {
        const change = await pins.set(key, value!, actor());
        const view =
          key.pin === 'ami'
            ? presentAmiPinSet(key.runtime, key.region, change)
            : presentImagePinSet(key.runtime, change);
        if (json) ctx.stdout(`${JSON.stringify(view, null, 2)}\n`);
        else if (!change.changed) ctx.stdout(`${describe(key)} already ${value}: nothing changed\n`);
        else ctx.stdout(`${describe(key)}: ${change.before ?? '(none)'} → ${value}\n`);
        return 0;
      };
      break;
    }
    case 'unset': {
      const [kind, runtime] = expectArgs(args, 2, 'unset');
      const key = pinKey(kind!, runtime!, region);
      action = async (pins) => {
        const change = await pins.unset(key, actor());
        if (!change.changed) {
          ctx.stderr(`pins: ${describe(key)} is not set\n`);
          return 1;
        }
        const view = {
          runtime: key.runtime,
          ...(key.pin === 'ami' ? { region: key.region } : {}),
          previous: change.before!,
        };
        ctx.stdout(
          json ? `${JSON.stringify(view, null, 2)}\n` : `${describe(key)}: ${change.before} → (default)\n`,
        );
        return 0;
      };
      break;
    }
    default:
      throw new UsageError(
        verb === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(verb)}`,
      );
  }

  // A live demo's folder is refused (its database is open in the demo), as is a database
  // without the schema: the same checks and messages as every other command.
  const database = await openForCommand(config);
  try {
    return await action(new PinRepository(database.db));
  } finally {
    await database.close();
  }
}

function expectArgs(args: string[], n: number, verb: string): string[] {
  if (args.length !== n) {
    const want = {
      list: 'no arguments',
      audit: 'no arguments',
      set: 'image|ami RUNTIME VALUE',
      unset: 'image|ami RUNTIME',
    }[verb];
    throw new UsageError(`pins ${verb} takes ${want}`);
  }
  return args;
}

function pinKey(kind: string, runtime: string, region: string): PinKey {
  if (!(KINDS as readonly string[]).includes(kind))
    throw new UsageError(`unknown pin kind ${JSON.stringify(kind)}: expected image or ami`);
  const bad = runtimeRefusal(runtime);
  if (bad) throw new UsageError(`runtime ${JSON.stringify(runtime)}: ${bad}`);
  if (kind === 'image') return { pin: 'runtime_image', runtime };
  const badRegion = regionRefusal(region);
  if (badRegion) throw new UsageError(`--region ${JSON.stringify(region)}: ${badRegion}`);
  return { pin: 'ami', runtime, region };
}

const describe = (key: PinKey) =>
  key.pin === 'ami' ? `AMI pin of ${key.runtime} in ${key.region}` : `image pin of ${key.runtime}`;

export function formatPins(view: ReturnType<typeof presentPinList>): string {
  if (view.runtimeImages.length === 0 && view.amis.length === 0)
    return 'no pins: every runtime uses the configured image and EC2_AMI\n';
  const rows = [
    ...view.runtimeImages.map((p) => ['image', p.runtime, '-', p.image, p.updatedAt]),
    ...view.amis.map((p) => ['ami', p.runtime, p.region, p.amiId, p.updatedAt]),
  ];
  return formatTable(['KIND', 'RUNTIME', 'REGION', 'VALUE', 'UPDATED'], rows);
}

export function formatAudit(rows: readonly ReturnType<typeof presentPinChange>[]): string {
  if (rows.length === 0) return 'no pin changes recorded\n';
  return formatTable(
    ['AT', 'ACTOR', 'KIND', 'RUNTIME', 'REGION', 'CHANGE'],
    rows.map((r) => [
      r.at,
      r.actor,
      r.pin === 'ami' ? 'ami' : 'image',
      r.runtime,
      r.region ?? '-',
      `${r.oldValue ?? '(none)'} → ${r.newValue ?? '(default)'}`,
    ]),
  );
}
