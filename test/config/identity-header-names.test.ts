/** Identity header names HTTP mode can list for removal in every spelling (`_` for `-`). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { testSessionSecret } from '../support/test-server.ts';

function problems(upstreamHeaders: Record<string, string>): string[] {
  const result = loadConfig(
    {
      text: JSON.stringify({
        apps: [
          {
            name: 'web',
            oidc: { issuer: 'http://127.0.0.1:1/issuer', clientId: 'web', clientSecret: 's' },
            session: { secrets: [testSessionSecret] },
            upstreamHeaders,
          },
        ],
      }),
      format: 'json',
    },
    {},
  );
  return result.ok ? [] : result.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('identity header names', () => {
  it('accepts the defaults and a few templates', () => {
    assert.deepEqual(problems({ 'x-auth-request-role': '{{ claims.role }}' }), []);
  });

  it('refuses a name with more than 8 - or _', () => {
    const found = problems({ 'x-a-b-c-d-e-f-g-h-i': '{{ claims.sub }}' });
    assert.ok(
      found.some((p) => /at most 8/.test(p)),
      found.join('\n'),
    );
  });

  it('refuses names whose spellings would overflow the removal header', () => {
    const many = Object.fromEntries(
      Array.from({ length: 20 }, (_, i) => [`x-auth-request-team-role-${i}`, '{{ claims.sub }}']),
    );
    const found = problems(many);
    assert.ok(
      found.some((p) => /^apps\[0\]\.upstreamHeaders: HTTP mode would list \d+ bytes/.test(p)),
      found.join('\n'),
    );
  });
});
