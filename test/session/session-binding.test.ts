/**
 * Sessions, login states and server records bound to their app and deployment: a value sealed
 * under any other binding (deployment, key prefix, app, issuer, client id) is refused exactly
 * like a tampered one, with the same secret.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bindingLabel, type SessionBinding } from '../../src/session/session-keys.ts';
import { CookieSessions, type CookieSessionsDeps } from '../../src/session/cookie-sessions.ts';
import { ServerSessions } from '../../src/session/server-sessions.ts';
import type { SessionLoad, SessionOptions, Sessions } from '../../src/session/sessions.ts';
import type { NewSession } from '../../src/session/session.ts';
import { createAppKeyspaces, type AppKeyspaces } from '../../src/store/keyspaces.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import { applySetCookie, nameOf } from './browser-cookies.ts';
import { sessionCodec } from './session-codec.ts';

const SECRET = 'one-session-secret-shared-by-everyone-here';
const MINUTE = 60_000;
const NOW = 1_700_000_000_000;

const binding: SessionBinding = {
  deployment: 'prod',
  keyPrefix: 'eoa:',
  app: 'grafana',
  issuer: 'https://idp.example.com/realms/main',
  clientId: 'grafana',
};

/** Each element of the binding changed on its own, everything else (the secret too) the same. */
const changed: readonly (readonly [string, SessionBinding])[] = [
  ['deployment', { ...binding, deployment: 'staging' }],
  ['keyPrefix', { ...binding, keyPrefix: 'eoa-staging:' }],
  ['app', { ...binding, app: 'wiki' }],
  ['issuer', { ...binding, issuer: 'https://weak-idp.example.com' }],
  ['clientId', { ...binding, clientId: 'grafana-dev' }],
];

const login: NewSession = {
  sub: 'alice',
  claims: { sub: 'alice', groups: ['admins'] },
  tokens: { accessToken: 'access-1', refreshToken: 'refresh-1', expiresAt: NOW + 300_000 },
};

function options(overrides: Partial<SessionOptions> = {}): SessionOptions {
  return {
    secrets: [SECRET],
    cookieName: '_eoa_grafana',
    binding,
    maxAge: 24 * 60 * MINUTE,
    sameSite: 'lax',
    maxPendingLogins: 5,
    loginTimeout: 10 * MINUTE,
    ...overrides,
  };
}

function manager(
  overrides: Partial<SessionOptions> = {},
  deps: CookieSessionsDeps = {},
): CookieSessions {
  return new CookieSessions(options(overrides), { now: () => NOW, ...deps });
}

/** Server sessions in `keyspaces`. */
function server(overrides: Partial<SessionOptions>, keyspaces: AppKeyspaces): ServerSessions {
  return new ServerSessions(options(overrides), { now: () => NOW, serverSessions: keyspaces });
}

/** One store that every server sessions instance here shares, keyed alike: only the binding differs. */
function sharedKeyspaces(): AppKeyspaces {
  const backend = createMemoryBackend({ now: () => NOW, sweepIntervalMs: 0 });
  return createAppKeyspaces(backend, {
    app: 'grafana',
    sessionMaxAge: 24 * 60 * MINUTE,
    loginTimeout: 10 * MINUTE,
    refreshLockTtl: 10_000,
    refreshResultTtl: 60_000,
    now: () => NOW,
  });
}

async function loggedIn(m: Sessions): Promise<Map<string, string>> {
  return applySetCookie(new Map(), (await m.create(login, new Map(), true)).setCookie);
}

/** Flips one bit in the middle of the session cookie's ciphertext. */
function tampered(jar: Map<string, string>): Map<string, string> {
  const out = new Map(jar);
  const value = out.get('__Host-_eoa_grafana')!;
  const parts = value.split('.');
  const ciphertext = Buffer.from(parts[3]!, 'base64url');
  ciphertext[Math.floor(ciphertext.length / 2)]! ^= 1;
  parts[3] = ciphertext.toString('base64url');
  out.set('__Host-_eoa_grafana', parts.join('.'));
  return out;
}

function refusal(result: SessionLoad): { kind: string; reason: string; expired: string[] } {
  assert.notEqual(result.kind, 'valid', 'refused');
  assert.notEqual(result.kind, 'none', 'seen as a session cookie');
  if (result.kind === 'valid' || result.kind === 'none') throw new Error('unreachable');
  return { kind: result.kind, reason: result.reason, expired: result.setCookie.map(nameOf) };
}

describe('session cookies bound to their app and deployment', () => {
  it('a cookie sealed under the same binding opens on another replica', async () => {
    const browser = await loggedIn(manager());
    const result = await manager().load(browser, true);
    assert.equal(result.kind, 'valid');
  });

  for (const [element, other] of changed) {
    it(`a cookie sealed with the same secret but another ${element} is refused`, async () => {
      const browser = await loggedIn(manager({ binding: other }));
      const codec = sessionCodec(options());
      const reader = manager({}, { codec });
      assert.deepEqual(refusal(await reader.load(browser, true)), {
        kind: 'invalid',
        reason: 'undecodable',
        expired: ['__Host-_eoa_grafana'],
      });
      assert.equal(codec.decrypts(), 0, 'refused by its kid, before any decryption');
    });
  }

  it('a foreign cookie is refused exactly as a tampered one is', async () => {
    const own = await loggedIn(manager());
    const foreign = await loggedIn(manager({ binding: changed[2]![1] }));
    const asTampered = refusal(await manager().load(tampered(own), true));
    const asForeign = refusal(await manager().load(foreign, true));
    assert.deepEqual(asForeign, asTampered);
  });

  it('keys still rotate within one binding (an older secret listed second)', async () => {
    const browser = await loggedIn(manager());
    const rotated = manager({ secrets: ['a-newer-session-secret-of-32-bytes-plus', SECRET] });
    assert.equal((await rotated.load(browser, true)).kind, 'valid');
  });
});

describe('login-state cookies bound to their app and deployment', () => {
  const flow = { state: 'state-1', nonce: 'nonce-1', codeVerifier: 'verifier', returnTo: '/' };

  it('a login state started under the same binding is redeemed', async () => {
    const jar = applySetCookie(new Map(), manager().loginStates.start(flow, new Map(), true));
    const taken = await manager().loginStates.take(jar, 'state-1', true);
    assert.equal(taken.kind, 'ok');
  });

  for (const [element, other] of changed) {
    it(`a login state started under another ${element} is missing, and expired`, async () => {
      const lines = manager({ binding: other }).loginStates.start(flow, new Map(), true);
      const jar = applySetCookie(new Map(), lines);
      const taken = await manager().loginStates.take(jar, 'state-1', true);
      assert.equal(taken.kind, 'missing');
      assert.deepEqual(taken.setCookie.map(nameOf), [...jar.keys()]);
    });
  }
});

describe('server-session records bound to their app and deployment', () => {
  it('a record written under the same binding is read back', async () => {
    const keyspaces = sharedKeyspaces();
    const browser = await loggedIn(server({ binding }, keyspaces));
    assert.equal((await server({ binding }, keyspaces).load(browser, true)).kind, 'valid');
  });

  for (const [element, other] of changed) {
    it(`a record written under another ${element} is unknown, though its ticket's key opens it`, async () => {
      const keyspaces = sharedKeyspaces();
      const browser = await loggedIn(server({ binding: other }, keyspaces));
      const reader = server({}, keyspaces);
      assert.deepEqual(refusal(await reader.load(browser, true)), {
        kind: 'invalid',
        reason: 'unknown',
        expired: ['__Host-_eoa_grafana'],
      });
    });
  }

  it("a record's protected header names its id and the binding label", async () => {
    const keyspaces = sharedKeyspaces();
    const browser = await loggedIn(server({}, keyspaces));
    const [id] = browser.get('__Host-_eoa_grafana')!.split('.');
    const sealed = await keyspaces.serverSessions.get(id!);
    const header = JSON.parse(
      Buffer.from(sealed!.split('.')[0]!, 'base64url').toString('utf8'),
    ) as Record<string, unknown>;
    assert.deepEqual(header, { alg: 'dir', enc: 'A256GCM', kid: `${id}.${bindingLabel(binding)}` });
    const labels = new Set([binding, ...changed.map(([, b]) => b)].map(bindingLabel));
    assert.equal(labels.size, changed.length + 1, 'every element changes the label');
  });
});

describe('the legacy shared cookie name', () => {
  const legacy = { legacyCookieName: '_eoa' };
  const legacyJar = () =>
    new Map([
      ['__Host-_eoa', 'an-old-session'],
      ['__Host-_eoa.1', 'an-old-chunk'],
      ['__Host-_eoa_login_AbCdEf12', 'an-old-login'],
      ['theme', 'dark'],
    ]);

  it('alone, it is expired and the browser logs in again (no loop)', async () => {
    const result = await manager(legacy).load(legacyJar(), true);
    assert.deepEqual(refusal(result), {
      kind: 'invalid',
      reason: 'legacy',
      expired: ['__Host-_eoa', '__Host-_eoa.1', '__Host-_eoa_login_AbCdEf12'],
    });
    const after = applySetCookie(legacyJar(), result.kind === 'invalid' ? result.setCookie : []);
    assert.deepEqual([...after.keys()], ['theme']);
    assert.deepEqual(await manager(legacy).load(after, true), { kind: 'none' });
  });

  it('beside a valid session, it is expired and stripped upstream; the session is served', async () => {
    const m = manager(legacy);
    const jar = await loggedIn(m);
    for (const [name, value] of legacyJar()) jar.set(name, value);
    const result = await m.load(jar, true);
    assert.equal(result.kind, 'valid');
    if (result.kind !== 'valid') return;
    assert.deepEqual(result.setCookie.map(nameOf), [
      '__Host-_eoa',
      '__Host-_eoa.1',
      '__Host-_eoa_login_AbCdEf12',
    ]);
    assert.deepEqual([...result.cookieNames].sort(), [
      '__Host-_eoa',
      '__Host-_eoa.1',
      '__Host-_eoa_grafana',
      '__Host-_eoa_login_AbCdEf12',
    ]);
  });

  it('a session re-issued on this request still expires the legacy cookies', async () => {
    let now = NOW;
    const m = manager({ ...legacy, idleTimeout: 10 * MINUTE }, { now: () => now });
    const jar = await loggedIn(m);
    for (const [name, value] of legacyJar()) jar.set(name, value);
    now += 2 * MINUTE; // past the touch interval: the cookie is written again
    const result = await m.load(jar, true);
    assert.equal(result.kind, 'valid');
    if (result.kind !== 'valid') return;
    assert.deepEqual(result.setCookie.map(nameOf).sort(), [
      '__Host-_eoa',
      '__Host-_eoa.1',
      '__Host-_eoa_grafana',
      '__Host-_eoa_login_AbCdEf12',
    ]);
  });

  it("leaves alone another app's cookies that only resemble the legacy names", async () => {
    const lookalikes = new Map([
      ['__Host-_eoa_wiki', 'another-app'],
      ['__Host-_eoa.x', 'not-a-chunk'],
      ['__Host-_eoa.123', 'not-a-chunk'],
      ['__Host-_eoa_login_short', 'not-a-flow-id'],
      ['__Host-_eoa_login_AbCdEf12x', 'not-a-flow-id'],
      ['__Host-_eoa_login_AbCd%f12', 'not-a-flow-id'],
      ['_EOA', 'other-case'],
    ]);
    assert.deepEqual(await manager(legacy).load(lookalikes, true), { kind: 'none' });
    assert.deepEqual(manager(legacy).cookieNames(lookalikes), []);
  });

  it('is left alone when the app is not told to sweep it', async () => {
    assert.deepEqual(await manager().load(legacyJar(), true), { kind: 'none' });
  });
});
