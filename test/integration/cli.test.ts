/** The command line: version, help per command, the config path as an argument, exit codes. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cliPath } from '../support/server-process.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const fiveMistakes = join(repo, 'test', 'fixtures', 'cli', 'five-mistakes.yaml');
const valid = join(repo, 'test', 'fixtures', 'config', 'valid', 'full.yaml');
const validEnv = {
  REDIS_PASSWORD: 'redis-password',
  SESSION_KEY: 'a-session-key-of-at-least-32-bytes-long',
  GRAFANA_SECRET: 'grafana-secret',
  INTROSPECTION_SECRET: 'introspection-secret',
};

/** Runs the CLI without EOA_CONFIG (unless `env` sets it). */
function cli(args: readonly string[], env: Record<string, string> = {}) {
  const inherited = { ...process.env };
  delete inherited['EOA_CONFIG'];
  const result = spawnSync(process.execPath, [cliPath, ...args], {
    encoding: 'utf8',
    timeout: 10_000,
    env: { ...inherited, ...env },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const EXIT = { ok: 0, failure: 1, usage: 2, invalidConfig: 3 };

describe('the command line', () => {
  it('--version and -V print the version of package.json', () => {
    const { version } = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
      version: string;
    };
    for (const flag of ['--version', '-V']) {
      const result = cli([flag]);
      assert.equal(result.status, EXIT.ok, result.stderr);
      assert.equal(result.stdout, `envoy-oidc-authz ${version}\n`);
    }
    assert.equal(cli(['--version', 'serve']).status, EXIT.usage);
  });

  it('--help lists every command and the exit codes', () => {
    const result = cli(['--help']);
    assert.equal(result.status, EXIT.ok);
    for (const command of ['serve', 'check-config', 'config-reference']) {
      assert.match(result.stdout, new RegExp(`^  ${command} `, 'm'));
    }
    assert.match(
      result.stdout,
      /Exit codes: 0 ok, 1 failure at run time, 2 usage error, 3 invalid/,
    );
  });

  for (const command of ['serve', 'check-config', 'config-reference']) {
    it(`${command} --help prints that command's usage, as does help ${command}`, () => {
      const result = cli([command, '--help']);
      assert.equal(result.status, EXIT.ok, result.stderr);
      assert.match(result.stdout, new RegExp(`^usage: envoy-oidc-authz ${command}\\b`));
      assert.equal(cli([command, '-h']).stdout, result.stdout);
      assert.equal(cli(['help', command]).stdout, result.stdout);
      // Help wins over a missing or even invalid config: nothing is loaded.
      assert.equal(cli([command, fiveMistakes, '--help']).status, EXIT.ok);
    });
  }

  it('every command has its own help', () => {
    const texts = ['serve', 'check-config', 'config-reference'].map(
      (c) => cli([c, '--help']).stdout,
    );
    assert.equal(new Set(texts).size, 3);
  });

  it('check-config takes the path as a positional argument', () => {
    const ok = cli(['check-config', valid], validEnv);
    assert.equal(ok.status, EXIT.ok, ok.stderr);
    assert.match(ok.stdout, /^config OK: /);
    const bad = cli(['check-config', fiveMistakes]);
    assert.equal(bad.status, EXIT.invalidConfig, bad.stderr);
    assert.equal(bad.stderr.trim().split('\n').length, 5, bad.stderr);
    // The same file both ways is one file.
    assert.equal(cli(['check-config', valid, '--config', valid], validEnv).status, EXIT.ok);
  });

  it('serve takes the path as a positional argument: an invalid one exits 3', () => {
    const result = cli(['serve', fiveMistakes]);
    assert.equal(result.status, EXIT.invalidConfig);
    assert.match(result.stderr, /^apps\[0\]/m);
  });

  it('an unreadable config file is an invalid configuration, named by its path (non-ASCII too)', () => {
    const missing = join(repo, 'test', 'fixtures', 'no-such-dir', 'réglages-設定.yaml');
    const result = cli(['check-config', missing]);
    assert.equal(result.status, EXIT.invalidConfig, result.stderr);
    assert.ok(result.stderr.includes('réglages-設定.yaml'), result.stderr);
  });

  const usageErrors: [string, string[], RegExp][] = [
    ['an unknown command', ['frobnicate'], /unknown command: "frobnicate"/],
    ['an unknown option', ['check-config', '--cofnig', valid], /Unknown option '--cofnig'/],
    ['a missing config path', ['check-config'], /no configuration: give CONFIG/],
    ['an empty EOA_CONFIG', ['serve'], /no configuration/],
    [
      'two different config files',
      ['check-config', valid, '--config', fiveMistakes],
      /two configuration files given/,
    ],
    ['a second positional', ['check-config', valid, valid], /unexpected argument for check-config/],
    ['a positional where none is taken', ['config-reference', 'x'], /unexpected argument/],
    ['--config without a value', ['check-config', '--config'], /argument missing/],
    ['help for an unknown command', ['help', 'nope'], /unknown command: "nope"/],
  ];
  for (const [what, args, message] of usageErrors) {
    it(`${what}: exit 2, the reason and a usage on stderr, nothing on stdout`, () => {
      const result = cli(args, what === 'an empty EOA_CONFIG' ? { EOA_CONFIG: '' } : {});
      assert.equal(result.status, EXIT.usage, result.stdout + result.stderr);
      assert.match(result.stderr, message);
      assert.match(result.stderr, /usage: envoy-oidc-authz/);
      assert.equal(result.stdout, '');
    });
  }

  it('an attacker-chosen command name is echoed escaped: no CR/LF or control bytes reach the terminal', () => {
    const result = cli(['evil\r\nforged line\u001b[2J']);
    assert.equal(result.status, EXIT.usage);
    assert.ok(result.stderr.includes('"evil\\r\\nforged line\\u001b[2J"'), result.stderr);
    assert.equal(result.stderr.includes('\r') || result.stderr.includes('\u001b'), false);
  });

  it('a huge argument is a usage error, not a crash', () => {
    const result = cli(['x'.repeat(100_000)]);
    assert.equal(result.status, EXIT.usage);
    const empty = cli(['']);
    assert.equal(empty.status, EXIT.usage);
  });

  it('config-reference prints the reference', () => {
    const result = cli(['config-reference']);
    assert.equal(result.status, EXIT.ok);
    assert.match(result.stdout, /store\.redis\.sentinelPassword/);
  });
});
