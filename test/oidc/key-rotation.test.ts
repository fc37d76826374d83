/** The provider rotates or replaces its signing key: our JWKS cache follows at once, and hostile `kid`s cannot make it hammer the provider. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SignJWT, decodeProtectedHeader, generateKeyPair } from 'jose';
import { BearerAuthenticator } from '../../src/authz/bearer-authenticator.ts';
import { BearerRevocations } from '../../src/authz/bearer-revocations.ts';
import { IdpUnavailableError, TokenInvalidError } from '../../src/errors.ts';
import { verifyIdToken } from '../../src/oidc/id-token.ts';
import { JWKS_CACHE } from '../../src/oidc/provider.ts';
import { GrantLimiter, RefreshCoordinator } from '../../src/oidc/refresh-coordinator.ts';
import type { Session } from '../../src/session/session.ts';
import { createAppKeyspaces } from '../../src/store/keyspaces.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import { waitFor } from '../support/redis-servers.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { testApp, testConfig } from '../support/test-server.ts';
import {
  basicClient,
  freePort,
  loginAndExchange,
  readyClient,
  startProvider,
} from './oidc-fixtures.ts';
import type { StandaloneClient } from './oidc-fixtures.ts';
import type { TestProvider } from '../../dev/test-provider.ts';

const API = 'https://api.example.com/';
const WINDOW_MS = JWKS_CACHE.forcedRefetchIntervalMs;

/** A provider issuing JWT access tokens for {@link API}, and a client on a clock the test moves. */
async function rig() {
  const provider = await startProvider({
    defaultResource: API,
    clients: [basicClient({ grantTypes: ['authorization_code', 'refresh_token'] })],
  });
  // Real time plus an offset: tokens stay valid, the forced-refetch rate limit can be passed.
  const clock = { offset: 0 };
  const now = () => Date.now() + clock.offset;
  const client = await readyClient(provider, {}, { now });
  return { provider, client, clock, now };
}

function bearerFor(client: StandaloneClient, issuer: string, now: () => number) {
  const config = testConfig({
    apps: [
      testApp(
        'api',
        {
          oidc: { issuer, clientId: 'web', clientSecret: 's' },
          bearer: { enabled: true, audiences: [API] },
        },
        issuer,
      ),
    ],
  });
  const keyspaces = createAppKeyspaces(createMemoryBackend({ now }), {
    app: 'api',
    sessionMaxAge: 86_400_000,
    loginTimeout: 600_000,
    refreshLockTtl: 10_000,
    refreshResultTtl: 60_000,
    now,
  });
  return new BearerAuthenticator(config.apps[0]!, {
    getKey: client.getKey,
    revocations: new BearerRevocations(keyspaces.revokedTokens),
    metrics: { verification: () => undefined, cache: () => undefined, throttled: () => undefined },
    now,
  });
}

function refresherFor(client: StandaloneClient, now: () => number) {
  const grants: string[] = [];
  const keyspaces = createAppKeyspaces(createMemoryBackend({ now }), {
    app: 'web',
    sessionMaxAge: 86_400_000,
    loginTimeout: 600_000,
    refreshLockTtl: 10_000,
    refreshResultTtl: 60_000,
    now,
  });
  const refresher = new RefreshCoordinator(
    {
      appName: 'web',
      lockTtl: 10_000,
      waitTimeout: 5_000,
      maxAttempts: 3,
      cooldown: 30_000,
      resultTtl: 60_000,
      storeRecovery: 0,
      outageGrace: 0,
    },
    {
      oidc: client,
      locks: keyspaces.refreshLocks,
      results: keyspaces.refreshResults,
      metrics: {
        grant: (outcome) => grants.push(outcome),
        follower: () => undefined,
        lockWait: () => undefined,
        gated: () => undefined,
      },
      grants: new GrantLimiter(10),
      now,
    },
  );
  return { refresher, grants };
}

function sessionOf(tokens: {
  accessToken: string;
  refreshToken?: string;
  idToken: string;
  expiresAt: number;
}): Session {
  return {
    v: 1,
    id: randomBytes(12).toString('base64url'),
    sub: 'alice',
    claims: {},
    tokens,
    createdAt: Date.now(),
    lastSeenAt: Date.now(),
  };
}

/** ID-token-shaped JWTs for the client, each under a random `kid`, signed by a key the provider never had. */
async function hostileTokens(issuer: string, count: number): Promise<string[]> {
  const { privateKey } = await generateKeyPair('RS256');
  const seconds = Math.floor(Date.now() / 1000);
  return Promise.all(
    Array.from({ length: count }, () =>
      new SignJWT({ sub: 'mallory', iss: issuer, aud: 'web', iat: seconds, exp: seconds + 300 })
        .setProtectedHeader({ alg: 'RS256', kid: randomBytes(8).toString('hex') })
        .sign(privateKey),
    ),
  );
}

const policyOf = (issuer: string, now: () => number) => ({
  issuer,
  clientId: 'web',
  algorithms: ['RS256'],
  clockSkewMs: 30_000,
  now,
});

describe('provider key rotation', () => {
  it('follows a new key under a new kid right after our JWKS fetch: login and refresh succeed at once', async () => {
    const { provider, client } = await rig();
    try {
      const { result } = await loginAndExchange(client);
      const fetched = provider.counters().jwks;
      assert.equal(fetched, 1, 'the first ID token fetched the JWKS');
      const rotated = await provider.rotateSigningKey();

      // Inside jose's 30 s unknown-kid cooldown: only the forced refetch can find the new kid.
      const refreshed = await client.refresh(result.tokens.refreshToken!, {
        expectedSubject: 'alice',
      });
      assert.equal(refreshed.claims?.sub, 'alice');
      const again = await loginAndExchange(client);
      assert.equal(again.result.claims.sub, 'alice');
      assert.equal(provider.counters().jwks - fetched, 1, 'one refetch for the new kid');
      assert.equal(decodeProtectedHeader(again.result.tokens.idToken).kid, rotated.kid);
    } finally {
      client.close();
      await provider.close();
    }
  });

  it('follows a key replaced under the same kid: refresh and bearer verification succeed after one refetch', async () => {
    const { provider, client, now } = await rig();
    const bearer = bearerFor(client, provider.issuer, now);
    try {
      const { result } = await loginAndExchange(client);
      const before = await bearer.authenticate(result.tokens.accessToken);
      assert.equal(before.kind, 'valid', JSON.stringify(before));
      const oldKid = provider.keys.RS256.kid;
      const replaced = await provider.rotateSigningKey({ keepKid: true });
      assert.equal(replaced.kid, oldKid);
      const fetched = provider.counters().jwks;

      const refreshed = await client.refresh(result.tokens.refreshToken!, {
        expectedSubject: 'alice',
      });
      assert.equal(refreshed.claims?.sub, 'alice');
      const after = await bearer.authenticate(refreshed.tokens.accessToken);
      assert.equal(after.kind, 'valid', JSON.stringify(after));
      assert.equal(provider.counters().jwks - fetched, 1, 'one refetch for the replaced key');
    } finally {
      client.close();
      await provider.close();
    }
  });

  it('keeps the session when a refreshed ID token was signed with the key the provider just replaced', async () => {
    const { provider, proxy, client } = await proxiedRig();
    try {
      const { result } = await loginAndExchange(client);
      const { pending, grantsSince } = await refreshAcrossReplacement(provider, proxy, client, {
        refreshToken: result.tokens.refreshToken!,
        replaceAgain: false,
      });
      const refreshed = await pending;
      assert.equal(refreshed.claims?.sub, 'alice');
      assert.equal(
        grantsSince(),
        1,
        'one more grant, with the rotated refresh token of the held answer',
      );
      assert.notEqual(refreshed.tokens.refreshToken, result.tokens.refreshToken);
    } finally {
      await closeAll(provider, proxy, client);
    }
  });

  it('keeps the session and its claims when the one extra grant answers without an ID token (OIDC Core 12.2)', async () => {
    const { provider, proxy, client } = await proxiedRig();
    const { refresher, grants } = refresherFor(client, () => Date.now());
    try {
      const { result } = await loginAndExchange(client);
      const claims = { sub: 'alice', name: 'Alice Example' };
      const session = { ...sessionOf({ ...result.tokens }), claims };
      const { pending, grantsSince } = await refreshAcrossReplacement(provider, proxy, client, {
        refreshToken: result.tokens.refreshToken!,
        replaceAgain: false,
        beforeRelease: () => provider.withholdRefreshIdTokens(1),
        refresh: () => refresher.refresh(session),
      });
      const outcome = await pending;
      assert.equal(outcome.kind, 'refreshed', JSON.stringify(outcome));
      assert.ok(outcome.kind === 'refreshed');
      assert.equal(grantsSince(), 1, 'one more grant, with the rotated refresh token');
      assert.deepEqual(outcome.claims ?? claims, claims, 'the session keeps its claims');
      assert.equal(outcome.tokens.idToken, result.tokens.idToken, 'the previous ID token kept');
      assert.notEqual(outcome.tokens.refreshToken, result.tokens.refreshToken);
      assert.notEqual(outcome.tokens.accessToken, result.tokens.accessToken);
      assert.deepEqual(grants, ['ok']);
      assert.equal(provider.counters().grants['refresh_token']?.['invalid_grant'], undefined);
    } finally {
      await closeAll(provider, proxy, client);
    }
  });

  it('a refreshed ID token that fails again after the one extra grant ends the refresh: never accepted unverified', async () => {
    const { provider, proxy, client } = await proxiedRig();
    try {
      const { result } = await loginAndExchange(client);
      const { pending, grantsSince } = await refreshAcrossReplacement(provider, proxy, client, {
        refreshToken: result.tokens.refreshToken!,
        replaceAgain: true,
      });
      await assert.rejects(pending, (err) => err instanceof TokenInvalidError);
      assert.equal(grantsSince(), 1, 'exactly one extra grant, however the keys fail');
    } finally {
      await closeAll(provider, proxy, client);
    }
  });

  it('refetches at most once per rate-limit window for 100 tokens with unknown kids', async (t) => {
    const { provider, client, clock, now } = await rig();
    try {
      await loginAndExchange(client);
      const fetched = provider.counters().jwks;
      const policy = policyOf(provider.issuer, now);
      const hostile = await hostileTokens(provider.issuer, 100);
      const outcomes = await Promise.allSettled(
        hostile.map((token) => verifyIdToken(token, client.getKey, policy)),
      );
      assert.ok(
        outcomes.every((o) => o.status === 'rejected' && o.reason instanceof TokenInvalidError),
      );
      const firstWindow = provider.counters().jwks - fetched;
      for (const token of await hostileTokens(provider.issuer, 100)) {
        await assert.rejects(verifyIdToken(token, client.getKey, policy), TokenInvalidError);
      }
      const sameWindow = provider.counters().jwks - fetched;
      clock.offset += WINDOW_MS;
      for (const token of await hostileTokens(provider.issuer, 100)) {
        await assert.rejects(verifyIdToken(token, client.getKey, policy), TokenInvalidError);
      }
      const nextWindow = provider.counters().jwks - fetched;
      t.diagnostic(`JWKS fetches for 300 hostile tokens over two windows: ${nextWindow}`);
      assert.equal(firstWindow, 1, '100 concurrent hostile tokens: one refetch');
      assert.equal(sameWindow, 1, '100 more in the same window: none');
      assert.equal(nextWindow, 2, 'next window: one more');
    } finally {
      client.close();
      await provider.close();
    }
  });

  it('while the provider is down: an unknown kid is unavailable, a bad signature under a known kid invalid', async () => {
    const { provider, client, clock, now } = await rig();
    try {
      await loginAndExchange(client);
      const policy = policyOf(provider.issuer, now);
      const [unknownKid] = await hostileTokens(provider.issuer, 1);
      const { privateKey } = await generateKeyPair('RS256');
      const seconds = Math.floor(Date.now() / 1000);
      const badSignature = await new SignJWT({
        sub: 'mallory',
        iss: provider.issuer,
        aud: 'web',
        iat: seconds,
        exp: seconds + 300,
      })
        .setProtectedHeader({ alg: 'RS256', kid: provider.keys.RS256.kid })
        .sign(privateKey);
      await provider.stop();
      await assert.rejects(
        verifyIdToken(unknownKid!, client.getKey, policy),
        (err) => err instanceof IdpUnavailableError,
      );
      const [anotherUnknownKid] = await hostileTokens(provider.issuer, 1);
      await assert.rejects(
        verifyIdToken(anotherUnknownKid!, client.getKey, policy),
        (err) => err instanceof IdpUnavailableError,
        'inside the rate-limit window the provider is still unreachable: unavailable, not invalid',
      );
      clock.offset += WINDOW_MS;
      await assert.rejects(verifyIdToken(badSignature, client.getKey, policy), TokenInvalidError);
    } finally {
      client.close();
      await provider.close();
    }
  });

  it('a JWKS answered with an HTML page is an outage: an unknown kid is unavailable, known keys still verify', async () => {
    const { provider, client, now } = await rig();
    try {
      const { result } = await loginAndExchange(client);
      const policy = policyOf(provider.issuer, now);
      const [unknownKid] = await hostileTokens(provider.issuer, 1);
      provider.injectFault({ target: 'jwks', status: 200, body: 'html', count: 1 });
      await assert.rejects(
        verifyIdToken(unknownKid!, client.getKey, policy),
        (err) => err instanceof IdpUnavailableError && err.reason === 'invalid_response',
      );
      await verifyIdToken(result.tokens.idToken, client.getKey, policy);
    } finally {
      client.close();
      await provider.close();
    }
  });

  it('does not count a refreshed ID token that fails verification as invalid_grant', async () => {
    const { provider, client, now } = await rig();
    const { refresher, grants } = refresherFor(client, now);
    try {
      const { result } = await loginAndExchange(client);
      // Hostile tokens spend this window's forced refetch; then the key is replaced, so the
      // refreshed ID token cannot verify until the next window.
      const [hostile] = await hostileTokens(provider.issuer, 1);
      await assert.rejects(
        verifyIdToken(hostile!, client.getKey, policyOf(provider.issuer, now)),
        TokenInvalidError,
      );
      await provider.rotateSigningKey({ keepKid: true });
      const outcome = await refresher.refresh(sessionOf({ ...result.tokens }));
      assert.equal(outcome.kind, 'ended');
      assert.deepEqual(grants, ['id_token_invalid']);
      // The answer's rotated refresh token bought one more grant; its ID token failed as well.
      assert.equal(provider.counters().grants['refresh_token']?.['success'], 2);
      assert.equal(provider.counters().grants['refresh_token']?.['invalid_grant'], undefined);
    } finally {
      client.close();
      await provider.close();
    }
  });
});

/** A provider behind a TCP proxy that can hold the token endpoint's answers, and a client of it. */
async function proxiedRig() {
  const proxyPort = await freePort();
  const provider = await startProvider({
    issuerPort: proxyPort,
    clients: [basicClient({ grantTypes: ['authorization_code', 'refresh_token'] })],
  });
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: provider.port }, proxyPort);
  const client = await readyClient(provider);
  return { provider, proxy, client };
}

async function closeAll(provider: TestProvider, proxy: TcpProxy, client: StandaloneClient) {
  client.close();
  await proxy.close();
  await provider.close();
}

/**
 * Starts a refresh whose answer the provider signs with its current key, then, while the answer
 * is held on the way, replaces that key under the same kid and lets the client fetch the new one
 * (by verifying a token signed with it: the forced refetch of this rate-limit window is spent).
 * With `replaceAgain`, the key is replaced once more, so the client's key matches no answer.
 */
async function refreshAcrossReplacement<T = Awaited<ReturnType<StandaloneClient['refresh']>>>(
  provider: TestProvider,
  proxy: TcpProxy,
  client: StandaloneClient,
  options: {
    refreshToken: string;
    replaceAgain: boolean;
    /** Runs once the key is replaced, before the held answer goes on. */
    beforeRelease?: () => void;
    /** The refresh to start instead of the client's own. */
    refresh?: () => Promise<T>;
  },
) {
  const grants = () => provider.counters().grants['refresh_token']?.['success'] ?? 0;
  proxy.hold('responses', 'POST /token ');
  const pending: Promise<T> =
    options.refresh?.() ??
    (client.refresh(options.refreshToken, { expectedSubject: 'alice' }) as Promise<T>);
  await waitFor('the token answer held', () => proxy.heldConnections() === 1);
  const before = grants();
  await provider.rotateSigningKey({ keepKid: true });
  const seconds = Math.floor(Date.now() / 1000);
  const signedWithNewKey = await provider.signJwt({ sub: 'bob', aud: 'web', exp: seconds + 60 });
  const policy = policyOf(provider.issuer, () => Date.now());
  assert.equal((await verifyIdToken(signedWithNewKey, client.getKey, policy)).sub, 'bob');
  if (options.replaceAgain) await provider.rotateSigningKey({ keepKid: true });
  options.beforeRelease?.();
  proxy.release();
  return { pending, grantsSince: () => grants() - before };
}
