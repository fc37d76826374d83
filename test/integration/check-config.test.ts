import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cliPath } from '../support/server-process.ts';

// Fixtures stay in the source tree; from dist/test/integration that is three levels up.
const fixtures = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'test',
  'fixtures',
);

describe('check-config', () => {
  it('prints five errors with their paths for five mistakes and exits 3 (invalid config)', () => {
    const result = spawnSync(
      process.execPath,
      [cliPath, 'check-config', '--config', join(fixtures, 'cli', 'five-mistakes.yaml')],
      {
        encoding: 'utf8',
        timeout: 10_000,
      },
    );
    assert.equal(result.status, 3, result.stdout + result.stderr);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 5, result.stderr);
    assert.ok(
      lines.some((l) => l.startsWith('apps[0].oidc.issuer:')),
      result.stderr,
    );
    assert.ok(
      lines.some((l) => l.startsWith('apps[0].session.secrets[0]:')),
      result.stderr,
    );
    assert.ok(
      lines.some((l) => l.startsWith('apps[0].session.maxAge:')),
      result.stderr,
    );
    assert.ok(
      lines.some((l) => l.startsWith('apps[1].name:')),
      result.stderr,
    );
    assert.ok(
      lines.some((l) => l.startsWith('apps[1]') && /colour/.test(l)),
      result.stderr,
    );
  });

  it('exits 0 and says so for a valid file', () => {
    const result = spawnSync(
      process.execPath,
      [cliPath, 'check-config', '--config', join(fixtures, 'config', 'valid', 'full.yaml')],
      {
        encoding: 'utf8',
        timeout: 10_000,
        env: {
          ...process.env,
          REDIS_PASSWORD: 'redis-password',
          SESSION_KEY: 'a-session-key-of-at-least-32-bytes-long',
          GRAFANA_SECRET: 'grafana-secret',
          INTROSPECTION_SECRET: 'introspection-secret',
        },
      },
    );
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /config OK/);
  });

  it('says what an API-only app accepts, and that it has no browser login', () => {
    const result = spawnSync(
      process.execPath,
      [cliPath, 'check-config', join(fixtures, 'config', 'valid', 'api-only.yaml')],
      { encoding: 'utf8', timeout: 10_000 },
    );
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.deepEqual(result.stdout.trim().split('\n'), [
      'config OK: 1 app',
      'app api: accepts bearer tokens from https://idp.example.com/realms/main (audience https://api.example.com/); https://token.actions.githubusercontent.com (audience https://github.com/acme); no browser login',
    ]);
  });

  it('reads the path from EOA_CONFIG', () => {
    const result = spawnSync(process.execPath, [cliPath, 'check-config'], {
      encoding: 'utf8',
      timeout: 10_000,
      env: { ...process.env, EOA_CONFIG: join(fixtures, 'cli', 'five-mistakes.yaml') },
    });
    assert.equal(result.status, 3);
  });
});
