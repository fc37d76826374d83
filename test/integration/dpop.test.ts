/**
 * DPoP (RFC 9449) against a real provider: oidc-provider issues DPoP-bound tokens (JWT and
 * opaque) by client credentials with a proof; two replicas share one real redis-server, so a
 * proof used on one is refused on the other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { calculateJwkThumbprint, decodeJwt } from 'jose';
import type { TestProvider } from '../../dev/test-provider.ts';
import {
  bearerAppConfigs,
  clientCredentialsToken,
  startBearerProviders,
} from '../support/bearer-providers.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import { deniedHeader as header, statusOf } from '../support/browser.ts';
import type { EnvoyClient, Outcome } from '../support/envoy-client.ts';
import { startRedis, type RedisProcess } from '../support/redis-servers.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { clientKey, dpopBoundToken, dpopProof, type ClientKey } from '../support/dpop-client.ts';

const API = 'https://api.example.com/';
const apiOrigin = 'https://api.example.com';
const ordersOrigin = 'https://orders.example.com';
const strictOrigin = 'https://strict.example.com';
const secrets = {
  machine: 'machine-client-secret-long-enough',
  gateway: 'gateway-client-secret-long-enough',
  introspector: 'introspector-secret-long-enough',
};

/** A DPoP-bound token of the `machine` client for the API, bound to `key`. */
function boundToken(provider: TestProvider, key: ClientKey): Promise<string> {
  return dpopBoundToken(provider, { id: 'machine', secret: secrets.machine }, key, {
    resource: API,
    scope: 'api:read',
  });
}

const proof = dpopProof;

let nextAddress = 1;
function freshAddress(): string {
  nextAddress += 1;
  return `10.91.${(nextAddress >> 8) & 255}.${nextAddress & 255}`;
}

function dpopChallenge(outcome: Outcome): string {
  return header(outcome, 'www-authenticate') ?? '';
}

describe('DPoP-bound tokens from a real provider, two replicas on Redis', () => {
  let redis: RedisProcess;
  let provider: TestProvider;
  let opaqueProvider: TestProvider;
  const servers: TestServer[] = [];
  const clients: EnvoyClient[] = [];
  let key: ClientKey;
  let token: string;
  /** Both replicas' clock runs this far ahead of the real one (nonce windows). */
  let clockOffset = 0;

  before(async () => {
    redis = await startRedis();
    const providers = await startBearerProviders(secrets, {
      jwt: { dpop: true },
      opaque: { dpop: true },
    });
    ({ jwt: provider, opaque: opaqueProvider } = providers);
    const apps = bearerAppConfigs(providers, secrets, {
      bearer: { dpop: { enabled: true, algs: ['ES256', 'EdDSA'] } },
    });
    const orders = apps[1] as { bearer: Record<string, unknown> };
    orders.bearer = { ...orders.bearer, dpop: { enabled: true } };
    const api = apps[0] as Record<string, unknown>;
    apps.push({
      ...api,
      name: 'strict',
      match: { hosts: ['strict.example.com'] },
      bearer: {
        ...(api['bearer'] as Record<string, unknown>),
        dpop: { enabled: true, required: true, nonce: { enabled: true, lifetime: '10s' } },
      },
    });
    for (let i = 0; i < 2; i++) {
      const server = await startTestServer(
        { store: { type: 'redis', redis: { url: redis.url } }, apps },
        { now: () => Date.now() + clockOffset },
      );
      servers.push(server);
      clients.push(grpcModeEnvoy(server));
    }
    key = await clientKey();
    token = await boundToken(provider, key);
    assert.equal(
      (decodeJwt(token)['cnf'] as { jkt: string }).jkt,
      await calculateJwkThumbprint(key.jwk),
    );
  });

  after(async () => {
    for (const client of clients) client.close();
    for (const server of servers) await server.close();
    await provider.close();
    await opaqueProvider.close();
    await redis.stop();
  });

  const call = (
    dpop: string | readonly string[] | undefined,
    options: {
      token?: string;
      scheme?: string;
      replica?: number;
      url?: string;
      method?: string;
    } = {},
  ): Promise<Outcome> => {
    const proofs = dpop === undefined ? [] : typeof dpop === 'string' ? [dpop] : dpop;
    return clients[options.replica ?? 0]!.check({
      method: options.method ?? 'GET',
      url: options.url ?? `${apiOrigin}/v1/items`,
      headers: [
        ['authorization', `${options.scheme ?? 'DPoP'} ${options.token ?? token}`],
        ...proofs.map((p) => ['dpop', p] as const),
      ],
      sourceAddress: freshAddress(),
    });
  };

  const assertRefused = (outcome: Outcome, error: string, description?: RegExp) => {
    assert.equal(statusOf(outcome), 401, JSON.stringify(outcome));
    const challenge = dpopChallenge(outcome);
    assert.match(
      challenge,
      /^DPoP realm="[^"]+", error="[a-z_]+", error_description="[^"]*", algs="[^"]+"$/,
    );
    assert.match(challenge, new RegExp(`error="${error}"`));
    if (description !== undefined) assert.match(challenge, description);
  };

  it('allows a DPoP-bound JWT with a valid proof, identity headers set', async () => {
    const outcome = await call(
      await proof(key, { method: 'GET', url: `${apiOrigin}/v1/items`, token }),
    );
    assert.equal(outcome.kind, 'allow', JSON.stringify(outcome));
    assert.ok(outcome.kind === 'allow');
    assert.equal(outcome.upstream.headers.get('x-auth-request-user'), 'machine');
    assert.equal(outcome.upstream.headers.has('authorization'), false);
  });

  it('refuses the same proof replayed on the same replica and on the other one', async () => {
    const once = await proof(key, { method: 'GET', url: `${apiOrigin}/v1/items`, token });
    assert.equal((await call(once)).kind, 'allow');
    assertRefused(await call(once), 'invalid_dpop_proof', /replayed/);
    assertRefused(await call(once, { replica: 1 }), 'invalid_dpop_proof', /replayed/);
    // A proof used first on replica 1 is refused on replica 0.
    const other = await proof(key, { method: 'GET', url: `${apiOrigin}/v1/items`, token });
    assert.equal((await call(other, { replica: 1 })).kind, 'allow');
    assertRefused(await call(other), 'invalid_dpop_proof', /replayed/);
  });

  it('refuses a proof for another URL, another method, a stale one and one from the future', async () => {
    const url = `${apiOrigin}/v1/items`;
    assertRefused(
      await call(await proof(key, { method: 'GET', url: `${apiOrigin}/v1/other`, token })),
      'invalid_dpop_proof',
      /htu/,
    );
    assertRefused(
      await call(await proof(key, { method: 'GET', url: `${ordersOrigin}/v1/items`, token })),
      'invalid_dpop_proof',
      /htu/,
    );
    assertRefused(
      await call(await proof(key, { method: 'POST', url, token })),
      'invalid_dpop_proof',
      /htm/,
    );
    const now = Math.floor(Date.now() / 1000);
    assertRefused(
      await call(await proof(key, { method: 'GET', url, token }, { iat: now - 120 })),
      'invalid_dpop_proof',
      /too old/,
    );
    assertRefused(
      await call(await proof(key, { method: 'GET', url, token }, { iat: now + 3600 })),
      'invalid_dpop_proof',
      /future/,
    );
  });

  it('refuses a proof signed with another key, and one without ath', async () => {
    const stranger = await clientKey();
    const url = `${apiOrigin}/v1/items`;
    assertRefused(
      await call(await proof(stranger, { method: 'GET', url, token })),
      'invalid_dpop_proof',
      /not signed by the key the token is bound to/,
    );
    assertRefused(
      await call(await proof(key, { method: 'GET', url })),
      'invalid_dpop_proof',
      /ath/,
    );
  });

  it('refuses the bound token sent as plain Bearer, with or without a proof', async () => {
    const url = `${apiOrigin}/v1/items`;
    assertRefused(await call(undefined, { scheme: 'Bearer' }), 'invalid_token', /DPoP scheme/);
    assertRefused(
      await call(await proof(key, { method: 'GET', url, token }), { scheme: 'Bearer' }),
      'invalid_token',
    );
  });

  it('refuses an unbound token under the DPoP scheme, and a DPoP token without its proof', async () => {
    const url = `${apiOrigin}/v1/items`;
    const unbound = await clientCredentialsToken(
      provider,
      { id: 'machine', secret: secrets.machine },
      { resource: API, scope: 'api:read' },
    );
    assertRefused(
      await call(await proof(key, { method: 'GET', url, token: unbound }), { token: unbound }),
      'invalid_token',
      /needs a DPoP-bound token/,
    );
    assertRefused(await call(undefined), 'invalid_dpop_proof', /missing/);
    const [one, two] = [
      await proof(key, { method: 'GET', url, token }),
      await proof(key, { method: 'GET', url, token }),
    ];
    assertRefused(await call([one, two]), 'invalid_dpop_proof', /more than one/);
  });

  it('verifies a DPoP-bound opaque token through introspection (cnf.jkt, token_type DPoP)', async () => {
    const opaque = await boundToken(opaqueProvider, key);
    const url = `${ordersOrigin}/v1/orders`;
    const allowed = await call(await proof(key, { method: 'GET', url, token: opaque }), {
      token: opaque,
      url,
    });
    assert.equal(allowed.kind, 'allow', JSON.stringify(allowed));
    const stranger = await clientKey();
    assertRefused(
      await call(await proof(stranger, { method: 'GET', url, token: opaque }), {
        token: opaque,
        url,
      }),
      'invalid_dpop_proof',
    );
    assertRefused(await call(undefined, { token: opaque, url, scheme: 'Bearer' }), 'invalid_token');
  });

  it('with required, refuses plain Bearer; with nonces, asks for one and accepts it on any replica', async () => {
    const url = `${strictOrigin}/v1/items`;
    const plain = await call(undefined, { url, scheme: 'Bearer' });
    assertRefused(plain, 'invalid_token', /required/);

    const first = await call(await proof(key, { method: 'GET', url, token }), { url });
    assertRefused(first, 'use_dpop_nonce');
    const nonce = header(first, 'dpop-nonce');
    assert.match(nonce ?? '', /^[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
    const allowed = await call(await proof(key, { method: 'GET', url, token }, { nonce }), {
      url,
      replica: 1,
    });
    assert.equal(allowed.kind, 'allow', JSON.stringify(allowed));
    assertRefused(
      await call(await proof(key, { method: 'GET', url, token }, { nonce: `${nonce!}x` }), { url }),
      'use_dpop_nonce',
    );
    assert.ok(allowed.kind === 'allow');
    assert.equal(
      allowed.responseHeaders.find(([name]) => name === 'dpop-nonce'),
      undefined,
      'a current nonce needs no new one',
    );
    // One window later the nonce is still accepted, and the allow hands out the next one. The
    // clock is set to the middle of a window, counted from the nonce's own.
    const window = parseInt(nonce!.split('.')[0]!, 36);
    const middleOf = (w: number) => w * 10_000 + 5_000 - Date.now();
    clockOffset = middleOf(window + 1);
    const later = await call(
      await proof(
        key,
        { method: 'GET', url, token },
        { nonce, iat: Math.floor((Date.now() + clockOffset) / 1000) },
      ),
      { url },
    );
    assert.equal(later.kind, 'allow', JSON.stringify(later));
    assert.ok(later.kind === 'allow');
    const next = later.responseHeaders.find(([name]) => name === 'dpop-nonce')?.[1];
    assert.match(next ?? '', /^[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
    assert.notEqual(next, nonce);
    // Two windows later it is not.
    clockOffset = middleOf(window + 2);
    const stale = await call(
      await proof(
        key,
        { method: 'GET', url, token },
        { nonce, iat: Math.floor((Date.now() + clockOffset) / 1000) },
      ),
      { url },
    );
    assertRefused(stale, 'use_dpop_nonce');
    clockOffset = 0;
  });

  it('refuses with 503 while the store cannot record a proof, and never accepts it', async () => {
    const url = `${apiOrigin}/v1/items`;
    await redis.kill();
    const outcome = await call(await proof(key, { method: 'GET', url, token }));
    assert.equal(statusOf(outcome), 503, JSON.stringify(outcome));
    assert.ok(Number(header(outcome, 'retry-after')) >= 1);
  });
});
