/** Login-state cookies: one per flow, capped, redeemed once by matching state. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCookieCodec } from '../../src/session/cookie-codec.ts';
import {
  LOGIN_ANSWER_TTL_MS,
  LOGIN_CLAIM_TTL_MS,
  LoginStates,
  type LoginStatesOptions,
} from '../../src/session/login-state.ts';
import { deriveKeyRing } from '../../src/session/session-keys.ts';
import { testBinding } from './test-binding.ts';
import { createAppKeyspaces } from '../../src/store/keyspaces.ts';
import { sha256Base64url } from '../../src/digest.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import { applySetCookie, attributesOf, nameOf } from './browser-cookies.ts';

const SECRET = 'login-state-secret-of-at-least-32-bytes';

function setup(overrides: Partial<LoginStatesOptions> = {}) {
  let t = 1_700_000_000_000;
  const clock = {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
  const backend = createMemoryBackend({ now: clock.now, sweepIntervalMs: 0 });
  const keyspaces = createAppKeyspaces(backend, {
    app: 'a',
    sessionMaxAge: 86_400_000,
    loginTimeout: 600_000,
    refreshLockTtl: 10_000,
    refreshResultTtl: 60_000,
    now: clock.now,
  });
  const states = new LoginStates(
    createCookieCodec(deriveKeyRing([SECRET], 'login-state', testBinding)),
    {
      cookieName: '_eoa',
      sameSite: 'lax',
      loginTimeout: 600_000,
      maxPendingLogins: 3,
      now: clock.now,
      ...overrides,
    },
    keyspaces.loginReplayMarks,
  );
  return { states, clock, backend, keyspaces };
}

const flow = (n: number) => ({
  state: `state-${n}`,
  nonce: `nonce-${n}`,
  codeVerifier: `verifier-${n}`,
  returnTo: `/page/${n}`,
});

describe('login state', () => {
  it('one encrypted, Lax, short-lived cookie per flow', () => {
    const { states } = setup({ sameSite: 'strict' });
    const [line] = states.start(flow(1), new Map(), true);
    assert.match(nameOf(line!), /^__Host-_eoa_login_[A-Za-z0-9_-]{8}$/);
    const attributes = attributesOf(line!);
    assert.equal(attributes.get('max-age'), '600');
    assert.equal(attributes.get('samesite'), 'Lax', 'Strict would miss the IdP redirect back');
    assert.ok(attributes.has('httponly') && attributes.has('secure'));
    assert.doesNotMatch(line!, /state-1|verifier-1|nonce-1/);
  });

  it('several flows at once: each tab redeems its own', async () => {
    const { states, clock } = setup();
    const browser = new Map<string, string>();
    for (const n of [1, 2, 3]) {
      applySetCookie(browser, states.start(flow(n), browser, true));
      clock.advance(1_000);
    }
    assert.equal(browser.size, 3);
    const second = await states.take(browser, 'state-2', true);
    assert.equal(second.kind, 'ok');
    assert.deepEqual(second.kind === 'ok' ? second.login : undefined, {
      ...flow(2),
      createdAt: 1_700_000_001_000,
    });
    applySetCookie(browser, second.setCookie);
    assert.equal(browser.size, 2, 'only the redeemed flow cookie is expired');
    const first = await states.take(browser, 'state-1', true);
    assert.equal(first.kind, 'ok');
  });

  it('the cap evicts the oldest flows', async () => {
    const { states, clock } = setup();
    const browser = new Map<string, string>();
    for (const n of [1, 2, 3, 4, 5]) {
      applySetCookie(browser, states.start(flow(n), browser, true));
      clock.advance(1_000);
    }
    assert.equal(browser.size, 3);
    assert.equal((await states.take(browser, 'state-1', true)).kind, 'missing');
    assert.equal((await states.take(browser, 'state-2', true)).kind, 'missing');
    for (const n of [3, 4, 5]) {
      assert.equal((await states.take(browser, `state-${n}`, true)).kind, 'ok');
    }
  });

  it('a wrong or forged state is refused, and does not consume other flows', async () => {
    const { states } = setup();
    const browser = applySetCookie(new Map(), states.start(flow(1), new Map(), true));
    for (const wrong of ['state-2', 'state-', 'state-1x', '', 'x'.repeat(5000)]) {
      const result = await states.take(browser, wrong, true);
      assert.equal(result.kind, 'missing');
      assert.deepEqual(result.setCookie, []);
    }
    assert.equal((await states.take(browser, 'state-1', true)).kind, 'ok');
  });

  it('a login cookie copied from elsewhere with another key is refused and cleared', async () => {
    const { states } = setup();
    const other = new LoginStates(
      createCookieCodec(
        deriveKeyRing(['another-secret-of-at-least-32-bytes!!'], 'login-state', testBinding),
      ),
      { cookieName: '_eoa', sameSite: 'lax', loginTimeout: 600_000, maxPendingLogins: 3 },
    );
    const browser = applySetCookie(new Map(), other.start(flow(1), new Map(), true));
    const result = await states.take(browser, 'state-1', true);
    assert.equal(result.kind, 'missing');
    assert.deepEqual(result.setCookie.map(nameOf), [...browser.keys()]);
  });

  it('a flow past loginTimeout is refused as expired', async () => {
    const { states, clock } = setup();
    const browser = applySetCookie(new Map(), states.start(flow(1), new Map(), true));
    clock.advance(600_000);
    const result = await states.take(browser, 'state-1', true);
    assert.equal(result.kind, 'expired');
    assert.equal(result.setCookie.length, 1);
  });

  it('a state is redeemed once, even with the cookie replayed (another replica)', async () => {
    const { states } = setup();
    const browser = applySetCookie(new Map(), states.start(flow(1), new Map(), true));
    const results = await Promise.all(
      Array.from({ length: 10 }, () => states.take(new Map(browser), 'state-1', true)),
    );
    const claimed = results.filter((r) => r.kind === 'ok');
    assert.equal(claimed.length, 1, 'one callback exchanges');
    assert.equal(results.filter((r) => r.kind === 'in_progress').length, 9);
    await states.complete(claimed[0]!);
    for (let i = 0; i < 3; i++) {
      assert.equal((await states.take(new Map(browser), 'state-1', true)).kind, 'replayed');
    }
  });

  it('a released claim lets the retry redeem the state; a completed one never again', async () => {
    const { states } = setup();
    const browser = applySetCookie(new Map(), states.start(flow(1), new Map(), true));
    const first = await states.take(browser, 'state-1', true);
    assert.ok(first.kind === 'ok');
    const concurrent = await states.take(browser, 'state-1', true);
    assert.equal(concurrent.kind, 'in_progress');
    assert.deepEqual(concurrent.setCookie, [], 'the cookie is kept for the reload');
    await states.release(first);
    const retry = await states.take(browser, 'state-1', true);
    assert.ok(retry.kind === 'ok', 'the exchange failed: the retry may try again');
    // A late release of the first claim does not free the retry's.
    await states.release(first);
    assert.equal((await states.take(browser, 'state-1', true)).kind, 'in_progress');
    await states.complete(retry);
    assert.equal((await states.take(browser, 'state-1', true)).kind, 'replayed');
    await states.release(retry);
    assert.equal((await states.take(browser, 'state-1', true)).kind, 'replayed');
  });

  it('a completed login gives its answer again to the browser that made it, for a while, and to nobody else', async () => {
    const { states, clock, keyspaces } = setup();
    const browser = applySetCookie(new Map(), states.start(flow(1), new Map(), true));
    const other = applySetCookie(new Map(), states.start(flow(2), new Map(), true));
    const taken = await states.take(browser, 'state-1', true, 'code-1');
    assert.ok(taken.kind === 'ok');
    const answer = { location: 'https://a.example/page/1', setCookie: ['_eoa=sealed; Path=/'] };
    await states.complete(taken, { code: 'code-1', answer });
    // Sealed in the store: neither the location nor a cookie is readable there.
    const mark = await keyspaces.loginReplayMarks.get(sha256Base64url('state-1'));
    assert.equal(typeof mark?.answer, 'string');
    assert.doesNotMatch(mark?.answer ?? '', /page|sealed|eoa/);

    const again = await states.take(new Map(browser), 'state-1', true, 'code-1');
    assert.ok(again.kind === 'completed');
    assert.deepEqual(again.answer, answer);
    // Another code, no code, or another flow's cookie: used, nothing more.
    assert.equal((await states.take(new Map(browser), 'state-1', true, 'code-2')).kind, 'replayed');
    assert.equal((await states.take(new Map(browser), 'state-1', true)).kind, 'replayed');
    // An attacker's code: CR/LF, non-ASCII, a prefix of the real one, very long.
    for (const forged of ['code-1\r\nx-evil: 1', 'cödé-1', 'code-', 'c'.repeat(10_000), '']) {
      const refused = await states.take(new Map(browser), 'state-1', true, forged);
      assert.equal(refused.kind, 'replayed', JSON.stringify(forged.slice(0, 20)));
    }
    assert.equal((await states.take(other, 'state-1', true, 'code-1')).kind, 'missing');
    // Past LOGIN_ANSWER_TTL_MS the answer is no longer given.
    clock.advance(LOGIN_ANSWER_TTL_MS + 1);
    assert.equal((await states.take(new Map(browser), 'state-1', true, 'code-1')).kind, 'replayed');
  });

  it('a used mark written by an older release (no phase) is refused as replayed', async () => {
    const { states, backend, keyspaces } = setup();
    const browser = applySetCookie(new Map(), states.start(flow(1), new Map(), true));
    const key = keyspaces.loginReplayMarks.keyFor(sha256Base64url('state-1'));
    await backend.set(key, '1:{"at":1700000000000}', 60_000);
    assert.equal((await states.take(browser, 'state-1', true)).kind, 'replayed');
  });

  it('an abandoned state (code spent, no session) is never exchanged again', async () => {
    const { states } = setup();
    const browser = applySetCookie(new Map(), states.start(flow(1), new Map(), true));
    const first = await states.take(browser, 'state-1', true);
    assert.ok(first.kind === 'ok');
    await states.abandon(first);
    const retry = await states.take(browser, 'state-1', true);
    assert.equal(retry.kind, 'unfinished');
    assert.equal(retry.setCookie.length, 1, 'its cookie is expired');
  });

  it('a claim whose holder died expires, and the state may be tried again', async () => {
    const { states, clock } = setup();
    const browser = applySetCookie(new Map(), states.start(flow(1), new Map(), true));
    assert.equal((await states.take(browser, 'state-1', true)).kind, 'ok');
    clock.advance(LOGIN_CLAIM_TTL_MS - 1);
    assert.equal((await states.take(browser, 'state-1', true)).kind, 'in_progress');
    clock.advance(1);
    assert.equal((await states.take(browser, 'state-1', true)).kind, 'ok');
  });

  it('a flow from a replica whose clock is ahead within clockSkew is redeemed', async () => {
    const ahead = setup({ clockSkew: 180_000 });
    const behind = setup({ clockSkew: 180_000 });
    ahead.clock.advance(120_000);
    const browser = applySetCookie(new Map(), ahead.states.start(flow(1), new Map(), true));
    assert.equal((await behind.states.take(browser, 'state-1', true)).kind, 'ok');
  });

  it('a flow from a replica whose clock is ahead beyond clockSkew is refused as future', async () => {
    const ahead = setup({ clockSkew: 30_000 });
    const behind = setup({ clockSkew: 30_000 });
    ahead.clock.advance(120_000);
    const browser = applySetCookie(new Map(), ahead.states.start(flow(1), new Map(), true));
    const result = await behind.states.take(browser, 'state-1', true);
    assert.equal(result.kind, 'future');
    assert.equal(result.kind === 'future' && result.createdAt, 1_700_000_120_000);
    assert.equal(result.setCookie.length, 1, 'its cookie is expired');
  });

  it('a flow from a replica whose clock is behind lives loginTimeout plus clockSkew', async () => {
    const behind = setup({ clockSkew: 180_000 });
    const ahead = setup({ clockSkew: 180_000 });
    ahead.clock.advance(120_000);
    const browser = applySetCookie(new Map(), behind.states.start(flow(1), new Map(), true));
    ahead.clock.advance(600_000 - 1_000);
    assert.equal((await ahead.states.take(browser, 'state-1', true)).kind, 'ok');
    const late = setup({ clockSkew: 180_000 });
    late.clock.advance(600_000 + 180_000);
    const other = applySetCookie(new Map(), behind.states.start(flow(2), new Map(), true));
    assert.equal((await late.states.take(other, 'state-2', true)).kind, 'expired');
  });

  it('a used state stays refused as long as a skewed replica could take its flow as live', async () => {
    // A skew beyond half the login timeout: the flow lives loginTimeout + clockSkew here.
    const { states, clock } = setup({ clockSkew: 900_000 });
    const browser = applySetCookie(new Map(), states.start(flow(1), new Map(), true));
    const first = await states.take(browser, 'state-1', true);
    assert.ok(first.kind === 'ok');
    await states.complete(first);
    clock.advance(1_500_000 - 1);
    assert.equal((await states.take(browser, 'state-1', true)).kind, 'replayed');
  });

  it('names its cookies for stripping upstream', () => {
    const { states } = setup();
    const browser = applySetCookie(
      new Map([['other', '1']]),
      states.start(flow(1), new Map(), true),
    );
    assert.deepEqual(
      states.cookieNames(browser),
      [...browser.keys()].filter((n) => n !== 'other'),
    );
  });
});
