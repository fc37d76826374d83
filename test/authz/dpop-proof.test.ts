import assert from 'node:assert/strict';
import { constants, createHash, generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { calculateJwkThumbprint } from 'jose';
import { DpopNonces } from '../../src/authz/dpop-nonce.ts';
import { DpopProofVerifier, jwkThumbprint, normaliseHtu } from '../../src/authz/dpop-proof.ts';
import { clientKey, dpopProof } from '../support/dpop-client.ts';

const T0 = Date.UTC(2026, 0, 1);
const url = 'https://api.example.com/v1/items';
const token = 'an-access-token';

function verifier(clock: { now: number }, algs = ['ES256', 'PS256', 'EdDSA']) {
  return new DpopProofVerifier({ algs, maxAgeMs: 60_000, clockSkewMs: 5_000 }, () => clock.now);
}

describe('DPoP proof verifier', () => {
  it('accepts proofs by EC, RSA-PSS and Ed25519 keys and names their RFC 7638 thumbprint', async () => {
    const clock = { now: T0 };
    const proofs = verifier(clock);
    for (const alg of ['ES256', 'PS256', 'EdDSA'] as const) {
      const key = await clientKey(alg);
      const proof = await dpopProof(key, { method: 'GET', url, token }, { iat: T0 / 1000 });
      const checked = proofs.verify(proof, 'GET', url, token, clock.now);
      assert.equal(checked.kind, 'valid', `${alg}: ${JSON.stringify(checked)}`);
      assert.ok(checked.kind === 'valid');
      assert.equal(checked.jkt, await calculateJwkThumbprint(key.jwk), alg);
      assert.equal(jwkThumbprint({ ...key.jwk }), checked.jkt);
    }
  });

  it('bounds iat by the injected clock: maxAge plus skew behind, skew ahead', async () => {
    const clock = { now: T0 };
    const proofs = verifier(clock);
    const key = await clientKey();
    const at = (iat: number) => dpopProof(key, { method: 'GET', url, token }, { iat });
    const check = async (iat: number) =>
      proofs.verify(await at(iat), 'GET', url, token, clock.now).kind;
    assert.equal(await check(T0 / 1000 - 65), 'valid');
    assert.equal(await check(T0 / 1000 - 66), 'invalid');
    assert.equal(await check(T0 / 1000 + 5), 'valid');
    assert.equal(await check(T0 / 1000 + 6), 'invalid');
  });

  it('refuses an RSA key under 2048 bits', () => {
    const clock = { now: T0 };
    // jose refuses to make such a key; node:crypto signs with it as a careless client would.
    const pair = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const jwk = pair.publicKey.export({ format: 'jwk' });
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signed = `${b64({ alg: 'PS256', typ: 'dpop+jwt', jwk })}.${b64({
      htm: 'GET',
      htu: url,
      jti: 'j1',
      iat: T0 / 1000,
      ath: createHash('sha256').update(token).digest('base64url'),
    })}`;
    const signature = sign('sha256', Buffer.from(signed), {
      key: pair.privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 32,
    }).toString('base64url');
    const proof = `${signed}.${signature}`;
    const checked = verifier(clock).verify(proof, 'GET', url, token, clock.now);
    assert.deepEqual(checked, { kind: 'invalid', reason: 'jwk does not fit the algorithm' });
  });
});

describe('htu normalisation (RFC 9449 §4.3, RFC 3986 §6.2.2-6.2.3)', () => {
  const same = [
    ['https://API.example.com:443/a', 'https://api.example.com/a'],
    ['http://api.example.com:80/a?x#y', 'http://api.example.com/a'],
    ['https://api.example.com/%7euser/%c3%a9', 'https://api.example.com/~user/%C3%A9'],
    ['https://api.example.com/é', 'https://api.example.com/%C3%A9'],
    ['https://api.example.com/a/./b/../c', 'https://api.example.com/a/c'],
  ];
  for (const [given, expected] of same) {
    it(`${given} is ${expected}`, () => assert.equal(normaliseHtu(given!), expected));
  }
  for (const refused of [
    'ftp://api.example.com/a',
    '/relative',
    'https://u:p@api.example.com/',
    'not a url',
  ]) {
    it(`refuses ${refused}`, () => assert.equal(normaliseHtu(refused), undefined));
  }
});

describe('DPoP nonces', () => {
  it('are accepted in their window and the next, by another instance with the same secret', () => {
    const clock = { now: T0 };
    const secret = 'q7TnV2xLc9RkW4bZ0pHs6JfM8dYg3AeU1oNi5rXwKtB';
    const issuer = new DpopNonces(secret, 'api', 300_000, () => clock.now);
    const other = new DpopNonces(secret, 'api', 300_000, () => clock.now);
    const nonce = issuer.current();
    assert.equal(other.accepts(nonce), true);
    clock.now += 300_000;
    assert.equal(other.accepts(nonce), true);
    assert.notEqual(issuer.current(), nonce);
    clock.now += 300_000;
    assert.equal(other.accepts(nonce), false);
  });

  it('of another app or another secret, or edited, are refused', () => {
    const clock = { now: T0 };
    const secret = 'q7TnV2xLc9RkW4bZ0pHs6JfM8dYg3AeU1oNi5rXwKtB';
    const nonce = new DpopNonces(secret, 'api', 300_000, () => clock.now).current();
    assert.equal(new DpopNonces(secret, 'billing', 300_000, () => clock.now).accepts(nonce), false);
    assert.equal(
      new DpopNonces(`${secret}x`, 'api', 300_000, () => clock.now).accepts(nonce),
      false,
    );
    const mine = new DpopNonces(secret, 'api', 300_000, () => clock.now);
    for (const forged of [
      `${nonce}A`,
      nonce.replace(/^[^.]+/, 'zzzzzz'),
      '',
      '.',
      'a'.repeat(300),
    ]) {
      assert.equal(mine.accepts(forged), false, forged);
    }
  });
});
