/**
 * The npm package as a user gets it: `npm pack`, the tarball installed with production
 * dependencies only, and every command the CLI advertises run from the installed bin. Also: the
 * tarball ships no test tooling, and nothing in `src/` or the tarball imports a devDependency.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { renderConfigReference } from '../../src/config/reference.ts';
import { protoFiles, ServingStatus } from '../../src/server/protos.ts';
import { freePort, healthClient, serverConfigFile } from '../support/server-process.ts';
import { importProblems, type Manifest } from './module-imports.ts';
import { repoPath, repoRoot } from './repo-path.ts';

interface PackageJson extends Manifest {
  readonly name: string;
  readonly bin: Readonly<Record<string, string>>;
}

const manifest = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as PackageJson;
const binName = Object.keys(manifest.bin)[0]!;

/** The environment of a user's shell: none of what `npm run` adds, no extra module paths. */
const userEnv: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key) && key !== 'NODE_PATH'),
);

interface Finished {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function collect(child: ChildProcess): {
  readonly output: () => string;
  readonly stdout: () => string;
  readonly stderr: () => string;
} {
  let stdout = '';
  let stderr = '';
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    output += chunk.toString();
  });
  return { output: () => output, stdout: () => stdout, stderr: () => stderr };
}

async function run(command: string, args: readonly string[], cwd: string): Promise<Finished> {
  const child = spawn(command, args, { cwd, env: userEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const streams = collect(child);
  const [status] = (await once(child, 'close')) as [number | null];
  return { status, stdout: streams.stdout(), stderr: streams.stderr() };
}

/** Paths a package may hold: the compiled server, its protos and what npm always adds. */
const shipped =
  /^(dist\/src\/|proto\/|package\.json$|(README|LICEN[CS]E|NOTICE|CHANGELOG)(\.md|\.txt)?$)/i;
const testTooling = /^(dist\/)?(dev|test|bench)\//;

const distRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let workDir: string;
let installDir: string;
let bin: string;
let packed: readonly string[];
const timings: Record<string, number> = {};

before(
  async () => {
    // npm packs the repository's dist/: it must be the build this test runs from.
    assert.equal(distRoot, join(repoRoot, 'dist'), 'run from the repository dist/ (npm packs it)');
    workDir = mkdtempSync(join(tmpdir(), 'eoa-package-'));
    installDir = join(workDir, 'app');
    mkdirSync(installDir);

    let started = performance.now();
    // No scripts: a `prepare` build would replace the dist/ this test runs from.
    const pack = await run(
      'npm',
      ['pack', '--json', '--ignore-scripts', '--pack-destination', workDir],
      repoRoot,
    );
    timings['npm pack'] = performance.now() - started;
    assert.equal(pack.status, 0, pack.stderr);
    const [result] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    assert.ok(result);
    packed = result.files.map((f) => f.path);

    writeFileSync(
      join(installDir, 'package.json'),
      JSON.stringify({ name: 'package-test', private: true }),
    );
    started = performance.now();
    const install = await run(
      'npm',
      [
        'install',
        '--omit=dev',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        join(workDir, result.filename),
      ],
      installDir,
    );
    timings['production install'] = performance.now() - started;
    assert.equal(install.status, 0, install.stdout + install.stderr);
    bin = join(installDir, 'node_modules', '.bin', binName);
    process.stdout.write(
      `# ${Object.entries(timings)
        .map(([what, ms]) => `${what}: ${Math.round(ms)} ms`)
        .join(', ')}; ${packed.length} files packed\n`,
    );
  },
  { timeout: 240_000 },
);

after(() => {
  if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
});

async function cli(args: readonly string[]): Promise<Finished> {
  return run(bin, args, installDir);
}

const unreachableIssuerApp = async () => ({
  name: 'app',
  match: { hosts: ['app.example.com'] },
  // Nothing listens there: serve must start all the same and wait for discovery.
  oidc: { issuer: `http://127.0.0.1:${await freePort()}`, clientId: 'app', clientSecret: 's' },
  session: { secrets: ['ROt26nSb8ogBqFsm6UcnlMhFS57+O1yQCb+z3HXmCN2T'] },
});

/** One test per command the CLI advertises; `--help` must list exactly these. */
const commandTests: ReadonlyMap<string, () => Promise<void>> = new Map([
  [
    'serve',
    async () => {
      const config = await serverConfigFile({
        log: { level: 'info' },
        apps: [await unreachableIssuerApp()],
      });
      const child = spawn(bin, ['serve', '--config', config.configPath], {
        cwd: installDir,
        env: userEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const streams = collect(child);
      const exited = once(child, 'exit').then(([code]) => code as number | null);
      try {
        // The server logs `serving` once every listener is bound.
        await new Promise<void>((resolve, reject) => {
          const check = (): void => {
            if (/"msg":"serving"/.test(streams.stdout())) resolve();
          };
          child.stdout.on('data', check);
          void exited.then((code) =>
            reject(new Error(`serve exited with ${code}:\n${streams.output()}`)),
          );
          setTimeout(
            () => reject(new Error(`serve not serving in 20 s:\n${streams.output()}`)),
            20_000,
          ).unref();
          check();
        });
        const admin = `http://127.0.0.1:${config.ports.admin}`;
        const healthz = await fetch(`${admin}/healthz`);
        assert.equal(healthz.status, 200, streams.output());
        const readyz = await fetch(`${admin}/readyz`);
        assert.equal(readyz.status, 503, 'not ready while the issuer is unreachable');
        assert.match(await readyz.text(), /app:app/);
        // gRPC answers, on the protos loaded from the installed package's proto/ folder.
        const health = healthClient(`127.0.0.1:${config.ports.grpc}`);
        try {
          assert.equal((await health.check('')).status, ServingStatus.NOT_SERVING);
        } finally {
          health.close();
        }
      } finally {
        if (child.exitCode === null) child.kill('SIGTERM');
      }
      assert.equal(await exited, 0, streams.output());
      assert.match(streams.stdout(), /"msg":"stopped"/);
    },
  ],
  [
    'check-config',
    async () => {
      const valid = await serverConfigFile({ apps: [await unreachableIssuerApp()] });
      const ok = await cli(['check-config', '--config', valid.configPath]);
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /config OK/);

      const invalid = await cli([
        'check-config',
        '--config',
        repoPath('test/fixtures/cli/five-mistakes.yaml'),
      ]);
      assert.equal(invalid.status, 3, invalid.stdout + invalid.stderr);
      const lines = invalid.stderr.trim().split('\n');
      assert.equal(lines.length, 5, invalid.stderr);
      assert.ok(
        lines.includes('apps[0].session.secrets[0]: must be at least 32 bytes long'),
        invalid.stderr,
      );
    },
  ],
  [
    'config-reference',
    async () => {
      const result = await cli(['config-reference']);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, renderConfigReference());
      assert.match(result.stdout, /^# Configuration reference\n/);
    },
  ],
]);

/** The commands a usage text names: in its `[a|b|c]` synopsis and as indented entries. */
function advertisedCommands(usage: string): { synopsis: string[]; described: string[] } {
  const [first = '', ...rest] = usage.split('\n');
  const alternatives = /\[([a-z][\w|-]*)\]/.exec(first)?.[1];
  assert.ok(alternatives !== undefined, `no [command|…] synopsis in: ${first}`);
  const described = rest.flatMap((line) => /^ {2}([a-z][\w-]*)\s/.exec(line)?.[1] ?? []);
  return { synopsis: alternatives.split('|').sort(), described: described.sort() };
}

describe('the npm package, installed with production dependencies only', () => {
  it('ships the compiled server, its protos and no test tooling', () => {
    const tooling = packed.filter((path) => testTooling.test(path));
    assert.deepEqual(tooling, [], 'test tooling in the package');
    const unexpected = packed.filter((path) => !shipped.test(path));
    assert.deepEqual(unexpected, [], 'files outside dist/src and proto/');
    assert.ok(packed.includes(manifest.bin[binName]!), 'the bin is packed');
    for (const proto of protoFiles) assert.ok(packed.includes(`proto/${proto}`), proto);
  });

  it('imports only its dependencies, Node built-ins and its own packed files', () => {
    const root = join(installDir, 'node_modules', ...manifest.name.split('/'));
    const installed = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Manifest;
    const files = new Set(packed);
    const scripts = packed.filter((path) => /\.[cm]?js$/.test(path));
    assert.ok(scripts.length > 0);
    const problems = scripts.flatMap((path) =>
      importProblems(path, readFileSync(join(root, path), 'utf8'), installed, (resolved) =>
        files.has(resolved),
      ),
    );
    assert.deepEqual(problems, []);
  });

  it('resolves no package from outside the install', () => {
    // A node_modules above the install would hide a missing dependency.
    for (let dir = workDir; ; dir = dirname(dir)) {
      assert.equal(existsSync(join(dir, 'node_modules')), false, `${dir}/node_modules`);
      if (dirname(dir) === dir) break;
    }
  });

  it('--help lists exactly the commands tested here', async () => {
    const result = await cli(['--help']);
    assert.equal(result.status, 0, result.stderr);
    const { synopsis, described } = advertisedCommands(result.stdout);
    const tested = [...commandTests.keys()].sort();
    assert.deepEqual(synopsis, tested, result.stdout);
    assert.deepEqual(described, tested, result.stdout);
  });

  for (const [command, test] of commandTests) it(command, { timeout: 60_000 }, test);
});

describe('src/', () => {
  it('imports only runtime dependencies, Node built-ins and other files of src/', () => {
    const sources = readdirSync(repoPath('src'), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts'))
      .map((file) =>
        relative(repoRoot, join(repoRoot, 'src', file))
          .split(sep)
          .join('/'),
      );
    assert.ok(sources.includes('src/cli.ts'));
    const problems = sources.flatMap((path) =>
      importProblems(path, readFileSync(repoPath(path), 'utf8'), manifest, (resolved) =>
        resolved.startsWith('src/'),
      ),
    );
    assert.deepEqual(problems, []);
  });
});
