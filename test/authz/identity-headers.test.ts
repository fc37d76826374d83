import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { headersToScrub, type AppRuntime } from '../../src/authz/app-runtime.ts';
import { compileIdentityHeaders, fits } from '../../src/authz/identity-headers.ts';
import { IdentityRemovals } from '../../src/authz/identity-removals.ts';

const headers = compileIdentityHeaders({
  name: 'app',
  upstreamHeaders: {
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

  it('reads the ID token only when it is forwarded: passIdToken, or a template using it', () => {
    const compile = (templates: Record<string, string>, passIdToken: boolean) =>
      compileIdentityHeaders({
        name: 'app',
        upstreamHeaders: templates,
        passAccessToken: true,
        passIdToken,
      });
    const claimsOnly = { 'x-auth-request-user': '{{ claims.sub }}' };
    assert.equal(compile(claimsOnly, false).readsIdToken, false);
    assert.equal(compile(claimsOnly, true).readsIdToken, true);
    assert.equal(
      compile({ ...claimsOnly, 'x-id': 'jwt {{ tokens.id_token }}' }, false).readsIdToken,
      true,
    );
    assert.equal(compile({ 'x-at': '{{ tokens.access_token }}' }, false).readsIdToken, false);
  });

  it('scrubs a forged copy of every header it did not set, and only those present', () => {
    const app = {
      identityRemovals: new IdentityRemovals([
        'x-auth-request-user',
        'x-auth-request-email',
        'x-id-token',
      ]),
    };
    const incoming = new Map([
      ['x-auth-request-email', 'forged@example.com'],
      ['x-auth-request-user', 'root'],
      ['accept', '*/*'],
    ]);
    const set = new Set(['x-auth-request-user']);
    assert.deepEqual(
      headersToScrub(
        app as unknown as AppRuntime,
        { headers: incoming, underscoredHeaders: [] },
        set,
      ),
      ['x-auth-request-email'],
    );
    assert.deepEqual(
      headersToScrub(
        app as unknown as AppRuntime,
        { headers: new Map(), underscoredHeaders: [] },
        set,
      ),
      [],
    );
  });

  it('fits: at most 8 KiB as UTF-8, counted exactly once a value could exceed it', () => {
    // 3-byte characters: 2,730 of them fit without counting, 2,731 are 8,193 bytes.
    assert.equal(fits('€'.repeat(2730)), true);
    assert.equal(fits('€'.repeat(2731)), false);
    // 2-byte and 4-byte (a surrogate pair, two UTF-16 units) at the boundary.
    assert.equal(fits('ł'.repeat(4096)), true);
    assert.equal(fits('ł'.repeat(4097)), false);
    assert.equal(fits('😀'.repeat(2048)), true);
    assert.equal(fits('😀'.repeat(2049)), false);
    // A lone surrogate is sent as U+FFFD, three bytes.
    assert.equal(fits('\ud800'.repeat(2731)), false);
    assert.equal(fits('x'.repeat(8192)), true);
    assert.equal(fits('x'.repeat(8193)), false);
    assert.equal(fits(''), false);
  });
});
