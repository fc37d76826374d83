/** A DPoP client (RFC 9449): its key pair, its proofs, and the bound tokens a provider issues it. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import type { TestProvider } from '../../dev/test-provider.ts';
import { sha256Base64url } from '../../src/digest.ts';

export interface ClientKey {
  readonly alg: 'ES256' | 'EdDSA' | 'PS256' | 'RS256';
  readonly privateKey: CryptoKey;
  /** The public key as the proof header's `jwk`. */
  readonly jwk: JWK;
}

export async function clientKey(alg: ClientKey['alg'] = 'ES256'): Promise<ClientKey> {
  const pair = await generateKeyPair(alg, { extractable: true });
  return { alg, privateKey: pair.privateKey, jwk: await exportJWK(pair.publicKey) };
}

/**
 * A DPoP proof (RFC 9449 §4.2) for `method` at `url`, with `ath` when a token is given, `iat`
 * now and a fresh `jti`; `claims` and `header` override or add to them.
 */
export function dpopProof(
  key: ClientKey,
  request: { readonly method: string; readonly url: string; readonly token?: string },
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT({
    htm: request.method,
    htu: request.url,
    jti: randomUUID(),
    ...(request.token === undefined ? {} : { ath: sha256Base64url(request.token) }),
    iat: Math.floor(Date.now() / 1000),
    ...claims,
  })
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.jwk, ...header })
    .sign(key.privateKey);
}

/**
 * A DPoP-bound access token from `provider` by client credentials (HTTP Basic), bound to `key`;
 * fails the test when the provider refuses or issues an unbound one.
 */
export async function dpopBoundToken(
  provider: TestProvider,
  client: { readonly id: string; readonly secret: string },
  key: ClientKey,
  params: Readonly<Record<string, string>>,
): Promise<string> {
  const url = `${provider.issuer}/token`;
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      dpop: await dpopProof(key, { method: 'POST', url }),
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...params }),
  });
  const body = (await response.json()) as { access_token?: string; token_type?: string };
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, 'DPoP');
  return body.access_token!;
}
