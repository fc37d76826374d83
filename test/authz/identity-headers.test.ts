import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { headersToScrub, type AppRuntime } from '../../src/authz/app-runtime.ts';
import { compileIdentityHeaders } from '../../src/authz/identity-headers.ts';

const headers = compileIdentityHeaders({
  appName: 'app',
  templates: {
    'x-auth-request-user': '{{ claims.sub }}',
    'x-auth-request-email': '{{ claims.email }}',
  },
  passAccessToken: false,
  passIdToken: true,
});

describe('identity headers', () => {
  it('leaves out headers that render empty or unsafe, and an absent ID token', () => {
    const rendered = headers.render({
      claims: { sub: 'alice', email: 'a\r\nset-cookie: x=1' },
      accessToken: 'at',
      idToken: undefined,
    });
    assert.deepEqual(rendered, [['x-auth-request-user', 'alice']]);
  });

  it('scrubs a forged copy of every header it did not set, and only those present', () => {
    const app = { scrubHeaders: ['x-auth-request-user', 'x-auth-request-email', 'x-id-token'] };
    const incoming = new Map([
      ['x-auth-request-email', 'forged@example.com'],
      ['x-auth-request-user', 'root'],
      ['accept', '*/*'],
    ]);
    const set = new Set(['x-auth-request-user']);
    assert.deepEqual(headersToScrub(app as unknown as AppRuntime, incoming, set), [
      'x-auth-request-email',
    ]);
    assert.deepEqual(headersToScrub(app as unknown as AppRuntime, new Map(), set), []);
  });
});
