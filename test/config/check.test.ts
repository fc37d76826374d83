import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { checkConfigFile } from '../../src/config/check.ts';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/config/', import.meta.url));

test('a valid file reports the number of apps', () => {
  assert.deepEqual(checkConfigFile(FIXTURES + 'valid/minimal.yaml', {}), {
    ok: true,
    output: 'config OK: 1 app',
  });
  const full = checkConfigFile(FIXTURES + 'valid/full.yaml', {
    REDIS_PASSWORD: 'p',
    SESSION_KEY: '1h3rZdfe8h1YM2elLkgixuZ/cRE8MiLKhFnRnP/4VZBE',
    GRAFANA_SECRET: 'g',
    INTROSPECTION_SECRET: 'i',
  });
  assert.deepEqual(full, { ok: true, output: 'config OK: 3 apps' });
});

test('an invalid file reports every problem as "path: message", one per line', () => {
  const result = checkConfigFile(FIXTURES + 'invalid/five-mistakes.yaml', {});
  assert.equal(result.ok, false);
  const lines = result.output.split('\n');
  assert.equal(lines.length, 5);
  assert.ok(
    lines.includes('log.level: must be one of: trace, debug, info, warn, error, fatal, silent'),
  );
  assert.ok(
    lines.includes(
      'apps[0].oidc.clientSecret: environment variable EOA_TEST_UNSET_SECRET is not set',
    ),
  );
  for (const line of lines) assert.match(line, /^[^\s:]+(?:\["[^"]+"\])?[^\s:]*: \S/);
});

test('the environment is the one passed in', () => {
  const result = checkConfigFile(FIXTURES + 'invalid/unset-env.yaml', {
    EOA_TEST_UNSET_SECRET: 'now-set',
  });
  assert.deepEqual(result, { ok: true, output: 'config OK: 1 app' });
});
