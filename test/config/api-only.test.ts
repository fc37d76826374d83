import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import { checkConfigFile } from '../../src/config/check.ts';
import { loadConfig } from '../../src/config/load.ts';
import { testSessionSecret } from '../support/test-server.ts';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/config/', import.meta.url));
const ISSUER = 'https://idp.example.com/realms/main';
const API = 'https://api.example.com/';

function problemsOf(apps: Record<string, unknown>[]): string[] {
  const result = loadConfig({ text: JSON.stringify({ apps }), format: 'json' }, {});
  return result.ok ? [] : result.problems.map((p) => `${p.path}: ${p.message}`);
}

const apiOnly = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  name: 'api',
  oidc: { issuer: ISSUER },
  bearer: { enabled: true, audiences: [API] },
  ...extra,
});

describe('API-only apps (bearer tokens, no client)', () => {
  it('needs neither a client id, a client secret nor a session secret', () => {
    const result = loadConfig({ text: JSON.stringify({ apps: [apiOnly()] }), format: 'json' }, {});
    assert.ok(result.ok, JSON.stringify(!result.ok && result.problems));
    const [app] = result.config.apps;
    assert.equal(app?.browserLogin, false);
    assert.equal(app?.oidc.clientId, undefined);
    assert.deepEqual(app?.session.secrets, []);
  });

  it('an app with a client keeps browser login, and still needs a session secret', () => {
    const withClient = {
      name: 'web',
      oidc: { issuer: ISSUER, clientId: 'web', clientSecret: 's' },
    };
    assert.deepEqual(problemsOf([withClient]), [
      'apps[0].session.secrets: must have at least one secret',
    ]);
    const result = loadConfig(
      {
        text: JSON.stringify({
          apps: [{ ...withClient, session: { secrets: [testSessionSecret] } }],
        }),
        format: 'json',
      },
      {},
    );
    assert.ok(result.ok);
    assert.equal(result.config.apps[0]?.browserLogin, true);
  });

  it('an app with neither a client nor bearer tokens is refused, saying what to set', () => {
    const problems = problemsOf([{ name: 'web', oidc: { issuer: ISSUER } }]);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /^apps\[0\]\.oidc\.clientId: is required: /);
    assert.match(problems[0]!, /bearer\.enabled/);
    // bearer present but off is the same mistake.
    assert.match(
      problemsOf([apiOnly({ bearer: { enabled: false, audiences: [API] } })]).join('\n'),
      /^apps\[0\]\.oidc\.clientId: is required/,
    );
  });

  it('refuses login-only keys on an API-only app, each at its path', () => {
    const problems = problemsOf([
      apiOnly({
        oidc: {
          issuer: ISSUER,
          clientSecret: 'a-client-secret',
          backchannelLogoutPath: '/bcl',
          postLogoutRedirectUri: 'https://api.example.com/bye',
        },
      }),
    ]);
    assert.deepEqual(problems.sort(), [
      'apps[0].oidc.backchannelLogoutPath: applies only to an app with browser login (oidc.clientId)',
      'apps[0].oidc.clientSecret: applies only to an app with browser login (oidc.clientId)',
      'apps[0].oidc.postLogoutRedirectUri: applies only to an app with browser login (oidc.clientId)',
    ]);
  });

  it('still needs an audience', () => {
    assert.deepEqual(problemsOf([apiOnly({ bearer: { enabled: true } })]), [
      'apps[0].bearer.audiences: must list at least one audience when bearer is enabled',
    ]);
  });

  it('an empty client id is an error, not an API-only app', () => {
    assert.deepEqual(problemsOf([apiOnly({ oidc: { issuer: ISSUER, clientId: '' } })]), [
      'apps[0].oidc.clientId: must not be empty',
    ]);
  });

  it('sets no cookie, so its default cookie name meets no other app on the same host', () => {
    const web = {
      name: 'web',
      oidc: { issuer: ISSUER, clientId: 'web', clientSecret: 's' },
      session: { secrets: [testSessionSecret], cookieName: '_eoa_api' },
      match: { hosts: ['api.example.com'], pathPrefix: '/ui/' },
    };
    assert.deepEqual(problemsOf([web, apiOnly({ match: { hosts: ['api.example.com'] } })]), []);
  });

  it('check-config says what it accepts, from every issuer, and that there is no login', () => {
    const result = checkConfigFile(FIXTURES + 'valid/api-only.yaml', {});
    assert.deepEqual(result, {
      ok: true,
      output: [
        'config OK: 1 app',
        'app api: accepts bearer tokens from https://idp.example.com/realms/main (audience https://api.example.com/); https://token.actions.githubusercontent.com (audience https://github.com/acme); no browser login',
      ].join('\n'),
    });
  });
});
