import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/main.js';
import { createTestDatabase, type TestDatabase, usingServer } from '../helpers/db.js';
import { snapshotTables } from '../helpers/tables.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'molecule-operator.js');

let tdb: TestDatabase;

beforeAll(async () => {
  tdb = await createTestDatabase();
});
afterAll(async () => {
  await tdb?.drop();
});

/** The real bin as a process, with only the database and a region in its environment. */
function pins(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, 'pins', ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      DATABASE_URL: tdb.url!,
      AWS_REGION: 'eu-west-1',
      LOG_LEVEL: 'silent',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** The same dispatcher the bin runs, in this process (the refusal table is long; a process costs seconds). */
async function inProcess(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    env: { DATABASE_URL: tdb.url!, AWS_REGION: 'eu-west-1', LOG_LEVEL: 'silent' },
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
  });
  return { code, stdout, stderr };
}

const IMAGE = 'ghcr.io/molecule-ai/claude-code:3.1.0';
const AMI = 'ami-0123456789abcdef0';

// The CLI talks to PostgreSQL at DATABASE_URL, a file database of its own per test file.
describe.skipIf(!usingServer())('molecule-operator pins', () => {
  it('sets, lists, audits and unsets pins, with exit codes a script can use', {
    timeout: 180_000,
  }, async () => {
    const set = await pins('set', 'image', 'claude-code', IMAGE);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe(`image pin of claude-code: (none) → ${IMAGE}\n`);

    // The region defaults to AWS_REGION.
    const ami = await pins('set', 'ami', 'tenant', AMI, '-o', 'json');
    expect(ami.code, ami.stderr).toBe(0);
    expect(JSON.parse(ami.stdout)).toMatchObject({
      runtime: 'tenant',
      region: 'eu-west-1',
      amiId: AMI,
      changed: true,
      previous: null,
    });

    const table = await pins('list');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^KIND +RUNTIME +REGION +VALUE +UPDATED$/);
    expect(table.stdout).toMatch(new RegExp(`^image +claude-code +- +${IMAGE.replace(/\./g, '\\.')} `, 'm'));
    expect(table.stdout).toMatch(/^ami +tenant +eu-west-1 +ami-0123456789abcdef0 /m);

    const unset = await pins('unset', 'ami', 'tenant');
    expect(unset.code, unset.stderr).toBe(0);
    expect(unset.stdout).toBe(`AMI pin of tenant in eu-west-1: ${AMI} → (default)\n`);
    const missing = await pins('unset', 'ami', 'tenant');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('pins: AMI pin of tenant in eu-west-1 is not set\n');

    // Rows as the CLI left them, and their audit, with the CLI's actor.
    expect(await tdb.database.query('SELECT runtime, image FROM runtime_image_pins')).toEqual([
      { runtime: 'claude-code', image: IMAGE },
    ]);
    expect(await tdb.database.query('SELECT * FROM ami_pins')).toEqual([]);
    const audit = await pins('audit', '--json');
    expect(audit.code, audit.stderr).toBe(0);
    const rows = JSON.parse(audit.stdout);
    expect(rows.map((r: { action: string; newValue: string | null }) => [r.action, r.newValue])).toEqual([
      ['unset', null],
      ['set', AMI],
      ['set', IMAGE],
    ]);
    expect(rows.every((r: { actor: string }) => /^cli(:.+)?$/.test(r.actor))).toBe(true);

    const bad = await pins('set', 'image', 'hermes', 'hermes:latest');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^molecule-operator pins: image "hermes:latest": must name its registry/);
    expect(bad.stdout).toBe('');
  });

  it.each([
    {
      reason: 'a bad image reference',
      args: ['set', 'image', 'hermes', 'hermes:latest'],
      want: /must name its registry/,
    },
    {
      reason: 'an image without a version',
      args: ['set', 'image', 'hermes', 'ghcr.io/a/hermes'],
      want: /version/,
    },
    { reason: 'a bad AMI id', args: ['set', 'ami', 'hermes', 'ami-123'], want: /8 or 17/ },
    {
      reason: 'an unknown runtime',
      args: ['set', 'image', 'python', IMAGE],
      want: /must be one of tenant, hermes/,
    },
    { reason: 'a bad region', args: ['set', 'ami', 'hermes', AMI, '--region', 'moon'], want: /AWS region/ },
    { reason: 'an unknown kind', args: ['set', 'container', 'hermes', IMAGE], want: /expected image or ami/ },
    { reason: 'a missing value', args: ['set', 'image', 'hermes'], want: /takes image\|ami RUNTIME VALUE/ },
    { reason: 'an unknown subcommand', args: ['pin'], want: /unknown subcommand "pin"/ },
    { reason: 'an unknown output', args: ['list', '-o', 'yaml'], want: /expected json or table/ },
    { reason: 'an unknown flag', args: ['list', '--all'], want: /Unknown option/ },
    { reason: 'a bad limit', args: ['audit', '--limit', '0'], want: /--limit 0/ },
  ])('refuses $reason with exit 2 and writes nothing', async ({ args, want }) => {
    const before = await snapshotTables(tdb.database);
    const res = await inProcess('pins', ...args);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(want);
    expect(res.stderr).toContain('molecule-operator pins list');
    expect(res.stdout).toBe('');
    expect(await snapshotTables(tdb.database)).toEqual(before);
  });
});

describe.skipIf(!usingServer())('molecule-operator pins, in process', () => {
  it('says so when a value is already set, and lists nothing when nothing is pinned', async () => {
    await tdb.database.query('TRUNCATE runtime_image_pins, ami_pins, pin_changes');
    expect((await inProcess('pins', 'list')).stdout).toMatch(/^no pins/);
    expect((await inProcess('pins', 'set', 'image', 'crewai', IMAGE)).code).toBe(0);
    const again = await inProcess('pins', 'set', 'image', 'crewai', IMAGE, '--json');
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ changed: false, previous: IMAGE });
    expect((await inProcess('pins', 'set', 'image', 'crewai', IMAGE)).stdout).toMatch(
      /already .*nothing changed/,
    );
    expect(await tdb.database.query('SELECT count(*)::int AS n FROM pin_changes')).toEqual([{ n: 1 }]);
    expect((await inProcess('pins', 'audit', '--limit', '1')).stdout.trim().split('\n')).toHaveLength(2);
  });
});
