import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startTestProvider } from '../../dev/test-provider.ts';
import type { IdpCallGuard, IdpCallKind } from '../../src/oidc/idp-call-guard.ts';
import { IdpError, IdpUnavailableError } from '../../src/errors.ts';
import {
  basicClient,
  clientDeps,
  clientOptions,
  createStandaloneClient,
  freePort,
  loginAndExchange,
  readyClient,
  startProvider,
  timed,
} from './oidc-fixtures.ts';

describe('provider faults', () => {
  it('waits for discovery until the provider starts, then becomes ready', async (t) => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const client = createStandaloneClient(clientOptions({ issuer }), clientDeps());
    try {
      await new Promise((resolve) => setTimeout(resolve, 150));
      const waiting = client.status();
      assert.equal(waiting.state, 'waiting');
      assert.ok(waiting.attempts >= 2, `retried ${waiting.attempts} times`);
      assert.match(waiting.lastError ?? '', /discovery: network/);
      assert.throws(
        () =>
          client.authorizationLocation({
            redirectUri: 'http://127.0.0.1/cb',
            state: 's',
            nonce: 'n',
            codeChallenge: 'c',
          }),
        (err) => err instanceof IdpUnavailableError && err.reason === 'discovery_pending',
      );
      await assert.rejects(client.refresh('rt'), (err) => err instanceof IdpUnavailableError);

      const provider = await startTestProvider({ port, clients: [basicClient()] });
      try {
        const [, readyMs] = await timed(() => client.ready);
        t.diagnostic(`ready ${readyMs}ms after the provider started`);
        const ready = client.status();
        assert.equal(ready.state, 'ready');
        assert.equal(ready.lastError, undefined);
        assert.equal(provider.counters().discovery, 1);
      } finally {
        await provider.close();
      }
    } finally {
      client.close();
    }
  });

  it('reports a stopped provider as IDP_UNAVAILABLE, never IDP_ERROR, and recovers after restart', async (t) => {
    const provider = await startProvider();
    const client = await readyClient(provider);
    try {
      const { result } = await loginAndExchange(client);
      await provider.stop();
      const [, failMs] = await timed(() =>
        assert.rejects(
          client.refresh(result.tokens.refreshToken!),
          (err) =>
            err instanceof IdpUnavailableError &&
            err.code === 'IDP_UNAVAILABLE' &&
            err.reason === 'network' &&
            !(err instanceof IdpError),
        ),
      );
      t.diagnostic(`refresh against a stopped provider failed in ${failMs}ms`);
      // Keys fetched before the outage still verify tokens during it.
      const logoutToken = await provider.signJwt({
        aud: 'web',
        jti: 'during-outage',
        sub: 'alice',
        events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
      });
      assert.equal((await client.verifyLogoutToken(logoutToken)).sub, 'alice');

      await provider.start();
      const refreshed = await client.refresh(result.tokens.refreshToken!);
      assert.ok(refreshed.tokens.refreshToken !== undefined);
      const again = await loginAndExchange(client);
      assert.equal(again.result.claims.sub, 'alice');
    } finally {
      client.close();
      await provider.close();
    }
  });

  it('treats a 5xx and a too-slow token endpoint as IDP_UNAVAILABLE', async () => {
    const provider = await startProvider();
    // A refresh grant has a deadline of its own, far longer than other calls' by default.
    const client = await readyClient(provider, {}, { fetchTimeoutMs: 300, grantTimeoutMs: 300 });
    try {
      const { result } = await loginAndExchange(client);
      provider.injectFault({ target: 'token', status: 503, count: 1 });
      await assert.rejects(
        client.refresh(result.tokens.refreshToken!),
        (err) => err instanceof IdpUnavailableError && err.httpStatus === 503,
      );
      provider.injectFault({ target: 'token', latencyMs: 600, count: 1 });
      const [, ms] = await timed(() =>
        assert.rejects(
          client.refresh(result.tokens.refreshToken!),
          (err) => err instanceof IdpUnavailableError && err.reason === 'timeout',
        ),
      );
      assert.ok(ms < 550, `gave up after ${ms}ms`);
      assert.equal(provider.counters().faultsInjected, 2);
      // The refresh token was never spent: the provider never handled those requests.
      await new Promise((resolve) => setTimeout(resolve, 400));
      const refreshed = await client.refresh(result.tokens.refreshToken!);
      assert.ok(refreshed.tokens.accessToken.length > 0);
    } finally {
      client.close();
      await provider.close();
    }
  });

  it('treats a token-endpoint 4xx without a JSON error body as a refusal, never an outage', async () => {
    const provider = await startProvider();
    const client = await readyClient(provider);
    try {
      const { result } = await loginAndExchange(client);
      for (const [status, body] of [
        [400, 'empty'],
        [401, 'html'],
        [403, 'empty'],
      ] as const) {
        provider.injectFault({ target: 'token', status, body, count: 1 });
        await assert.rejects(
          client.refresh(result.tokens.refreshToken!),
          (err) => err instanceof IdpError && err.httpStatus === status && err.endpoint === 'token',
          `${status} ${body}`,
        );
      }
      // Statuses that say the server is failing stay outages, whatever the body.
      for (const status of [429, 408]) {
        provider.injectFault({ target: 'token', status, body: 'empty', count: 1 });
        await assert.rejects(
          client.refresh(result.tokens.refreshToken!),
          (err) => err instanceof IdpUnavailableError && !(err instanceof IdpError),
          `${status}`,
        );
      }
    } finally {
      client.close();
      await provider.close();
    }
  });

  it('runs every provider call through the guard, which sees only classified errors', async () => {
    const provider = await startProvider();
    const seen: { kind: IdpCallKind; outcome: string }[] = [];
    const guard: IdpCallGuard = async (kind, call) => {
      try {
        const value = await call();
        seen.push({ kind, outcome: 'ok' });
        return value;
      } catch (err) {
        seen.push({ kind, outcome: (err as { code?: string }).code ?? 'unclassified' });
        throw err;
      }
    };
    const client = await readyClient(provider, {}, { guard });
    try {
      const { result } = await loginAndExchange(client);
      await client.refresh(result.tokens.refreshToken!);
      await assert.rejects(client.refresh(result.tokens.refreshToken!));
      await client.revoke(result.tokens.accessToken, 'access_token');
      assert.deepEqual(seen, [
        { kind: 'discovery', outcome: 'ok' },
        { kind: 'token', outcome: 'ok' },
        { kind: 'jwks', outcome: 'ok' },
        { kind: 'token', outcome: 'ok' },
        { kind: 'token', outcome: 'IDP_ERROR' },
        { kind: 'revocation', outcome: 'ok' },
      ]);
      // A guard that refuses (breaker open) surfaces as IDP_UNAVAILABLE.
      const refusing = await readyClient(
        provider,
        {},
        {
          guard: (kind, call) =>
            kind === 'token'
              ? Promise.reject(
                  Object.assign(new Error('Breaker is open'), { code: 'EOPENBREAKER' }),
                )
              : call(),
        },
      );
      try {
        await assert.rejects(
          refusing.refresh('whatever'),
          (err) => err instanceof IdpUnavailableError && err.reason === 'circuit_open',
        );
      } finally {
        refusing.close();
      }
    } finally {
      client.close();
      await provider.close();
    }
  });
});
