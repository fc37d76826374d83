/** The identity memo: what it hands out again, and what it never keeps. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AllowMemo, allowFor, type RenderedIdentity } from '../../src/authz/allow-memo.ts';
import type { AppRuntime } from '../../src/authz/app-runtime.ts';
import { compileIdentityHeaders } from '../../src/authz/identity-headers.ts';
import { IdentityRemovals } from '../../src/authz/identity-removals.ts';
import { CheckResponseEncoder } from '../../src/server/check-response.ts';
import type { HeaderPair } from '../../src/authz/verdict.ts';

/** The memo compares apps by identity only. */
const identityRemovals = new IdentityRemovals(['x-auth-request-user']);
const web = { name: 'web', identityRemovals } as unknown as AppRuntime;
const admin = { name: 'admin', identityRemovals } as unknown as AppRuntime;

function counting(headers: HeaderPair[], renewAfter = Infinity) {
  let renders = 0;
  return {
    render: (): RenderedIdentity => {
      renders += 1;
      return {
        headers: headers.map(([n, v]) => [n, v] as const),
        metadata: [['user', String(renders)]],
        renewAt: renewAfter,
      };
    },
    renders: () => renders,
  };
}

describe('AllowMemo', () => {
  it('renders an identity once per app and hands the same allow to the same request', () => {
    const memo = new AllowMemo<object>();
    const identity = {};
    const { render, renders } = counting([['x-auth-request-user', 'alice']]);
    const entry = memo.entryFor(identity, web, 0, render);
    assert.equal(memo.entryFor(identity, web, 0, render), entry);
    assert.equal(renders(), 1);
    assert.notEqual(memo.entryFor(identity, admin, 0, render), entry, 'another app renders anew');

    const first = allowFor(entry, 'session', [], undefined, 'a=1');
    const again = allowFor(entry, 'session', [], undefined, 'a=1');
    assert.equal(again, first);
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.upstreamHeaders));
    assert.deepEqual(first.upstreamHeaders, [
      ['x-auth-request-user', 'alice'],
      ['cookie', 'a=1'],
    ]);
  });

  it('builds a new allow whenever the request differs', () => {
    const entry = new AllowMemo<object>().entryFor({}, web, 0, counting([['x-u', 'a']]).render);
    const base = allowFor(entry, 'bearer', [], 'authorization', undefined);
    assert.deepEqual(base.removeHeaders, ['authorization']);
    const scrubbed = allowFor(entry, 'bearer', ['x-forged'], 'authorization', undefined);
    assert.deepEqual(scrubbed.removeHeaders, ['x-forged', 'authorization']);
    const cookieGone = allowFor(entry, 'bearer', ['x-forged'], 'authorization', '');
    assert.deepEqual(cookieGone.removeHeaders, ['x-forged', 'authorization', 'cookie']);
    assert.deepEqual(cookieGone.upstreamHeaders, [['x-u', 'a']]);
    const cookieKept = allowFor(entry, 'bearer', ['x-forged'], 'authorization', 'b=2');
    assert.deepEqual(cookieKept.upstreamHeaders, [
      ['x-u', 'a'],
      ['cookie', 'b=2'],
    ]);
    assert.equal(allowFor(entry, 'bearer', [], 'authorization', undefined).removeHeaders.length, 1);
  });

  it('never keeps an allow carrying response headers', () => {
    const entry = new AllowMemo<object>().entryFor({}, web, 0, counting([['x-u', 'a']]).render);
    const plain = allowFor(entry, 'session', [], undefined, undefined);
    const touched = allowFor(entry, 'session', [], undefined, undefined, [['set-cookie', 's=1']]);
    assert.deepEqual(touched.responseHeaders, [['set-cookie', 's=1']]);
    assert.ok(!Object.isFrozen(touched));
    const next = allowFor(entry, 'session', [], undefined, undefined);
    assert.equal(next, plain, 'the kept allow is still the one without response headers');
    assert.deepEqual(next.responseHeaders, []);
  });

  it('keeps no entry whose headers it may not keep, and forgets the oldest first', () => {
    const memo = new AllowMemo<object>(2);
    const identity = {};
    const secret = counting([['authorization', 'Bearer t']]);
    const refused = memo.entryFor(identity, web, 0, secret.render, () => false);
    allowFor(refused, 'bearer', [], undefined, undefined);
    assert.equal(refused.last, undefined, 'nothing kept on it either');
    memo.entryFor(identity, web, 0, secret.render, () => false);
    assert.equal(secret.renders(), 2, 'rendered again: not kept');

    const [a, b, c] = [{}, {}, {}];
    const { render, renders } = counting([['x-u', 'a']]);
    for (const key of [a, b, c]) memo.entryFor(key, web, 0, render);
    memo.entryFor(c, web, 0, render);
    memo.entryFor(b, web, 0, render);
    assert.equal(renders(), 3);
    memo.entryFor(a, web, 0, render);
    assert.equal(renders(), 4, 'the oldest went to make room');
  });

  it('renders an identity again once its renewal time has come, and not before', () => {
    const memo = new AllowMemo<object>();
    const identity = {};
    const { render, renders } = counting([['x-u', 'a']], 1_000);
    const entry = memo.entryFor(identity, web, 0, render);
    assert.equal(memo.entryFor(identity, web, 999, render), entry);
    const first = allowFor(entry, 'session', [], undefined, undefined);
    assert.deepEqual(first.metadata, [['user', '1']]);
    const renewed = memo.entryFor(identity, web, 1_000, render);
    assert.notEqual(renewed, entry);
    assert.equal(renders(), 2);
    const next = allowFor(renewed, 'session', [], undefined, undefined);
    assert.notEqual(next, first, 'the renewed entry builds its own allow');
    assert.deepEqual(next.metadata, [['user', '2']]);
  });

  it('gives two sessions of one sub their own headers, names and removals, and encodes each', () => {
    const upstreamHeaders = {
      'x-auth-request-user': '{{ claims.sub }}',
      'x-auth-request-email': '{{ claims.email }}',
      'x-auth-request-preferred-username': '{{ claims.preferred_username }}',
    };
    const headers = compileIdentityHeaders({
      name: 'web',
      upstreamHeaders,
      passAccessToken: false,
      passIdToken: false,
    });
    const removals = new IdentityRemovals(headers.names);
    const app = { name: 'web', identityRemovals: removals } as unknown as AppRuntime;
    const memo = new AllowMemo<object>();
    const entryOf = (claims: Record<string, unknown>) =>
      memo.entryFor({ claims }, app, 0, () => ({
        headers: headers.render({ claims, accessToken: 'at', idToken: undefined }),
        metadata: [],
        renewAt: Infinity,
      }));
    const zoe = entryOf({ sub: 'u1', email: 'zoë@example.com', preferred_username: 'Zoë' });
    // The same sub after a refresh, with an email that would split the header: left out.
    const split = entryOf({
      sub: 'u1',
      email: 'a@example.com\r\nx-admin: 1',
      preferred_username: 'Zoë',
    });
    const other = entryOf({ sub: 'u2', email: 'b@example.com', preferred_username: 'Bø' });

    assert.deepEqual(zoe.headers, [
      ['x-auth-request-user', 'u1'],
      ['x-auth-request-email', 'zoë@example.com'],
      ['x-auth-request-preferred-username', 'Zoë'],
    ]);
    assert.deepEqual(split.headers, [
      ['x-auth-request-user', 'u1'],
      ['x-auth-request-preferred-username', 'Zoë'],
    ]);
    assert.equal(split.names.has('x-auth-request-email'), false);
    assert.ok(split.identityRemovals.names.includes('x-auth-request-email'), 'a forged one goes');
    assert.equal(zoe.identityRemovals.names.includes('x-auth-request-email'), false);
    assert.equal(other.names, zoe.names, 'the same headers set: one shared set of names');
    assert.notEqual(split.names, zoe.names);

    const encoder = new CheckResponseEncoder();
    const bytesOf = (entry: typeof zoe) => {
      const verdict = allowFor(entry, 'session', [], undefined, undefined);
      return Buffer.from(encoder.encode(verdict, 'web')).toString('utf8');
    };
    assert.ok(bytesOf(zoe).includes('zoë@example.com'));
    assert.ok(bytesOf(zoe).includes('Zoë'));
    assert.equal(bytesOf(split).includes('a@example.com'), false);
    assert.ok(bytesOf(other).includes('Bø'));
    assert.equal(bytesOf(other).includes('Zoë'), false);
  });
});
