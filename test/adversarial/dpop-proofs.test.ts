/**
 * Attack class: forged, malformed and misdirected DPoP proofs (RFC 9449). Each row is what a
 * client or an attacker holding a stolen DPoP-bound token sends with it (a real Check, decoded
 * with Envoy's upstream protos), and its outcome: 401 `invalid_dpop_proof` with the DPoP
 * challenge, or — for the spellings of the same URI RFC 9449 §4.3 says to normalise — allowed.
 * Tokens come from a real OpenID Provider (oidc-provider) issuing DPoP-bound tokens.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT, exportJWK, type JWK } from 'jose';
import type { TestProvider } from '../../dev/test-provider.ts';
import { sha256Base64url } from '../../src/digest.ts';
import { bearerAppConfigs, startBearerProviders } from '../support/bearer-providers.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import { deniedHeader as header, statusOf } from '../support/browser.ts';
import { clientKey, dpopBoundToken, dpopProof, type ClientKey } from '../support/dpop-client.ts';
import type { EnvoyClient } from '../support/envoy-client.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

const API = 'https://api.example.com/';
const origin = 'https://api.example.com';
const secrets = {
  machine: 'hT4kW8nQ2vB6xZ0cR3mL7pJ1sF5dG9yA',
  gateway: 'pL2mK6nB0vC4xZ8aS1dF5gH9jQ3wE7rT',
  introspector: 'zX9cV3bN7mQ1wE5rT2yU6iO0pA4sD8fG',
};

const b64 = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

let nextAddress = 1;
function freshAddress(): string {
  nextAddress += 1;
  return `10.93.${(nextAddress >> 8) & 255}.${nextAddress & 255}`;
}

interface Row {
  readonly attack: string;
  /** The `DPoP` header value(s). */
  readonly proofs: () => Promise<string | readonly string[]>;
  /** The request path, raw; default `/v1/items`. */
  readonly path?: string;
  /** `allow` for an equivalent spelling of the request URI; default refused. */
  readonly expect?: 'allow';
  /** What the refusal's `error_description` says. */
  readonly description?: RegExp;
  /** Which token goes with it; default the ES256 client's. */
  readonly token?: () => string;
}

describe('DPoP proofs: forged, malformed and misdirected proofs are refused with invalid_dpop_proof', () => {
  let provider: TestProvider;
  let opaqueProvider: TestProvider;
  let server: TestServer;
  let client: EnvoyClient;
  let key: ClientKey;
  let edKey: ClientKey;
  let token: string;
  let edToken: string;
  const rows: Row[] = [];

  before(async () => {
    const providers = await startBearerProviders(secrets, { jwt: { dpop: true } });
    ({ jwt: provider, opaque: opaqueProvider } = providers);
    server = await startTestServer({
      apps: bearerAppConfigs(providers, secrets, {
        bearer: { dpop: { enabled: true, algs: ['ES256', 'EdDSA', 'PS256'] } },
      }),
    });
    client = grpcModeEnvoy(server);
    key = await clientKey('ES256');
    edKey = await clientKey('EdDSA');
    const params = { resource: API, scope: 'api:read' };
    const machine = { id: 'machine', secret: secrets.machine };
    token = await dpopBoundToken(provider, machine, key, params);
    edToken = await dpopBoundToken(provider, machine, edKey, params);
  });

  after(async () => {
    client.close();
    await server.close();
    await provider.close();
    await opaqueProvider.close();
  });

  const url = `${origin}/v1/items`;
  /** A proof by the client's key for GET `htu`, with `claims` and `header` overridden. */
  const proofFor = (
    htu: string,
    claims: Record<string, unknown> = {},
    extraHeader: Record<string, unknown> = {},
  ) => dpopProof(key, { method: 'GET', url: htu, token }, claims, extraHeader);
  /** A proof whose parts are written by hand: header and payload as given, any signature. */
  const handmade = (h: unknown, payload: unknown, signature = 'c2ln') =>
    Promise.resolve(`${b64(h)}.${b64(payload)}.${signature}`);
  const claims = () => ({
    htm: 'GET',
    htu: url,
    jti: randomUUID(),
    iat: Math.floor(Date.now() / 1000),
    ath: sha256Base64url(token),
  });

  rows.push(
    {
      attack: 'a proof of 20,000 characters',
      proofs: () => proofFor(url, { pad: 'x'.repeat(20_000) }),
      description: /too large/,
    },
    {
      attack: 'header that is not JSON',
      proofs: () => handmade('{"typ":"dpop+jwt","alg":', claims()),
      description: /malformed proof header/,
    },
    {
      attack: 'payload that is not JSON, signed',
      proofs: async () => {
        const good = await proofFor(url);
        const [h] = good.split('.');
        return `${h!}.${b64('{"htm":')}.${good.split('.')[2]!}`;
      },
      description: /malformed proof payload/,
    },
    {
      attack: 'not a JWS (two segments)',
      proofs: () => Promise.resolve(`${b64({ typ: 'dpop+jwt' })}.${b64(claims())}`),
      description: /not a JWS/,
    },
    {
      attack: 'jwk with the private key (d) in it, signed by that key',
      proofs: async () => {
        const privateJwk = await exportJWK(key.privateKey);
        return proofFor(url, {}, { jwk: privateJwk });
      },
      description: /not a public key/,
    },
    {
      attack: 'alg none, no signature',
      proofs: () =>
        Promise.resolve(`${b64({ typ: 'dpop+jwt', alg: 'none', jwk: key.jwk })}.${b64(claims())}.`),
      description: /unsigned proof|algorithm not allowed/,
    },
    {
      attack: 'alg none with a signature segment',
      proofs: () => handmade({ typ: 'dpop+jwt', alg: 'none', jwk: key.jwk }, claims()),
      description: /algorithm not allowed/,
    },
    {
      attack: 'HS256 with a symmetric jwk (kty oct) the attacker chose',
      proofs: () =>
        new SignJWT(claims())
          .setProtectedHeader({
            alg: 'HS256',
            typ: 'dpop+jwt',
            jwk: { kty: 'oct', k: b64('attacker-chosen-secret-32-bytes!') } as JWK,
          })
          .sign(Buffer.from('attacker-chosen-secret-32-bytes!')),
      description: /algorithm not allowed/,
    },
    {
      attack: 'ES256 header over a symmetric jwk',
      proofs: () =>
        handmade({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'oct', k: 'c2VjcmV0' } }, claims()),
      description: /not a public key/,
    },
    {
      attack: 'RS256 (not in bearer.dpop.algs) over an RSA key',
      proofs: async () => dpopProof(await clientKey('RS256'), { method: 'GET', url, token }),
      description: /algorithm not allowed/,
    },
    {
      attack: 'PS256 header over the EC key (alg and key type disagree)',
      proofs: async () => {
        const good = await proofFor(url);
        const [, payload, signature] = good.split('.');
        return `${b64({ typ: 'dpop+jwt', alg: 'PS256', jwk: key.jwk })}.${payload!}.${signature!}`;
      },
      description: /does not fit the algorithm/,
    },
    {
      attack: 'typ JWT instead of dpop+jwt',
      proofs: () => proofFor(url, {}, { typ: 'JWT' }),
      description: /typ must be dpop\+jwt/,
    },
    {
      attack: 'crit naming an extension',
      proofs: async () => {
        const [, payload, signature] = (await proofFor(url)).split('.');
        const h = { typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk, crit: ['urn:x'], 'urn:x': 1 };
        return `${b64(h)}.${payload!}.${signature!}`;
      },
      description: /critical/,
    },
    {
      attack: 'payload edited after signing (htu changed)',
      proofs: async () => {
        const good = await proofFor(`${origin}/v1/other`);
        const [h, , signature] = good.split('.');
        return `${h!}.${b64(claims())}.${signature!}`;
      },
      description: /signature invalid/,
    },
    {
      attack: 'htu with the same path and a query: the query is ignored (RFC 9449 §4.3)',
      proofs: () => proofFor(`${url}?page=2`),
      expect: 'allow',
    },
    {
      attack: 'htu with a fragment: ignored',
      proofs: () => proofFor(`${url}#top`),
      expect: 'allow',
    },
    {
      attack: 'htu whose query names the request path, another path before it',
      proofs: () => proofFor(`${origin}/v1/other?/v1/items`),
      description: /htu/,
    },
    {
      attack: 'htu on another port',
      proofs: () => proofFor('https://api.example.com:8443/v1/items'),
      description: /htu/,
    },
    {
      attack: 'htu with the default port spelled out, scheme and host in capitals',
      proofs: () => proofFor('HTTPS://API.Example.COM:443/v1/items'),
      expect: 'allow',
    },
    {
      attack: 'htu over http for an https request',
      proofs: () => proofFor('http://api.example.com/v1/items'),
      description: /htu/,
    },
    {
      attack: 'htu with user information',
      proofs: () => proofFor('https://user@api.example.com/v1/items'),
      description: /htu/,
    },
    {
      attack: 'non-ASCII path: htu in Unicode, request percent-encoded',
      path: '/v1/caf%C3%A9/%E6%97%A5%E6%9C%AC',
      proofs: () => proofFor(`${origin}/v1/café/日本`),
      expect: 'allow',
    },
    {
      attack: 'non-ASCII path: lower-case hex and an encoded unreserved character',
      path: '/v1/caf%C3%A9/~x',
      proofs: () => proofFor(`${origin}/v1/caf%c3%a9/%7Ex`),
      expect: 'allow',
    },
    {
      attack: 'non-ASCII path: a look-alike (e without accent)',
      path: '/v1/caf%C3%A9',
      proofs: () => proofFor(`${origin}/v1/cafe`),
      description: /htu/,
    },
    {
      attack: 'iat far in the future',
      proofs: () => proofFor(url, { iat: 9_999_999_999 }),
      description: /future/,
    },
    {
      attack: 'iat as a string',
      proofs: () => proofFor(url, { iat: String(Math.floor(Date.now() / 1000)) }),
      description: /iat missing/,
    },
    {
      attack: 'jti missing',
      proofs: () => proofFor(url, { jti: undefined }),
      description: /jti/,
    },
    {
      attack: 'jti of 10,000 characters',
      proofs: () => proofFor(url, { jti: 'j'.repeat(1_000) }),
      description: /jti/,
    },
    {
      attack: 'ath of another token',
      proofs: () => proofFor(url, { ath: sha256Base64url('another token') }),
      description: /ath/,
    },
    {
      attack: 'htm in lower case',
      proofs: () => proofFor(url, { htm: 'get' }),
      description: /htm/,
    },
    {
      attack: 'two DPoP headers, both valid',
      proofs: async () => [await proofFor(url), await proofFor(url)],
      description: /more than one/,
    },
    {
      attack: 'an EdDSA proof by the key its token is bound to',
      proofs: () => dpopProof(edKey, { method: 'GET', url, token: edToken }),
      token: () => edToken,
      expect: 'allow',
    },
    {
      attack: 'an EdDSA proof for the ES256-bound token',
      proofs: () => dpopProof(edKey, { method: 'GET', url, token }),
      description: /not signed by the key the token is bound to/,
    },
  );

  for (const row of rows) {
    it(`${row.attack}: ${row.expect === 'allow' ? 'allowed' : '401 invalid_dpop_proof'}`, async () => {
      const proofs = await row.proofs();
      const outcome = await client.check({
        url: `${origin}${row.path ?? '/v1/items'}`,
        headers: [
          ['authorization', `DPoP ${row.token?.() ?? token}`],
          ...(typeof proofs === 'string' ? [proofs] : proofs).map((p) => ['dpop', p] as const),
        ],
        sourceAddress: freshAddress(),
      });
      if (row.expect === 'allow') {
        assert.equal(outcome.kind, 'allow', JSON.stringify(outcome));
        return;
      }
      assert.equal(statusOf(outcome), 401, JSON.stringify(outcome));
      const challenge = header(outcome, 'www-authenticate') ?? '';
      assert.match(challenge, /^DPoP realm="api", error="invalid_dpop_proof", /);
      assert.match(challenge, /algs="ES256 EdDSA PS256"$/);
      if (row.description !== undefined) assert.match(challenge, row.description);
    });
  }
});
