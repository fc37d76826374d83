/** The assertion keyring: which keys sign, which are published, and for how long after a rotation. */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { AssertionKeyring } from '../../src/authz/assertion-keyring.ts';
import { readSigningKeys } from '../../src/config/signing-keys.ts';
import { silentLogger } from '../../src/observability/logger.ts';

function pem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .privateKey.export({ format: 'pem', type: 'pkcs8' })
    .toString();
}

const base = { header: 'x-auth-request-assertion', audience: 'aud', ttl: 60_000, claims: {} };

describe('AssertionKeyring', () => {
  it('keeps a rotated key published for ttl plus a minute, then drops it', () => {
    let now = 0;
    const ring = new AssertionKeyring(() => now, silentLogger());
    const a = ring.keysFor('web', { ...base, signingKey: pem() });
    const b = ring.keysFor('web', { ...base, signingKey: pem() });
    const kids = () => ring.jwks().keys.map((key) => key.kid);
    assert.deepEqual(kids(), [b.signing.kid, a.signing.kid]);
    now = 60_000 + 60_000 - 1;
    assert.deepEqual(kids(), [b.signing.kid, a.signing.kid]);
    now += 1;
    assert.deepEqual(kids(), [b.signing.kid]);
  });

  it('retires nothing when a reload gives the same key, and shares a key between apps once', () => {
    const ring = new AssertionKeyring(() => 0, silentLogger());
    const key = pem();
    ring.keysFor('web', { ...base, signingKey: key });
    ring.keysFor('api', { ...base, signingKey: key });
    ring.keysFor('web', { ...base, signingKey: key });
    assert.equal(ring.jwks().keys.length, 1);
  });

  it('keeps a generated key across reloads, and retires the keys of an app that stops signing', () => {
    let now = 0;
    const ring = new AssertionKeyring(() => now, silentLogger());
    const first = ring.keysFor('web', base);
    assert.equal(ring.keysFor('web', base).signing.kid, first.signing.kid);
    ring.keepOnly(new Set());
    assert.equal(ring.jwks().keys.length, 1, 'still published while its tokens live');
    now = 120_001;
    assert.equal(ring.jwks().keys.length, 0);
    assert.equal(ring.empty, true);
  });

  it('publishes the other keys of a key set, public parts only', () => {
    const ring = new AssertionKeyring(() => 0, silentLogger());
    const signing = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
      format: 'jwk',
    });
    const next = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
    const keys = ring.keysFor('web', {
      ...base,
      signingKey: JSON.stringify({ keys: [signing, next] }),
    });
    const published = ring.jwks().keys;
    assert.equal(published.length, 2);
    assert.equal(keys.signing.alg, 'ES256');
    assert.deepEqual(
      published.map((key) => [key.kty, key.alg, 'd' in key]),
      [
        ['EC', 'ES256', false],
        ['OKP', 'EdDSA', false],
      ],
    );
  });
});

describe('readSigningKeys', () => {
  it('reads PEM blocks one after the other: the first signs', () => {
    const [first, second] = [pem(), pem()];
    const keys = readSigningKeys(`${first}\n${second}`);
    assert.ok(typeof keys !== 'string');
    assert.equal(keys.alsoPublished.length, 1);
    assert.notEqual(keys.alsoPublished[0]!.kid, keys.signing.kid);
  });

  it('refuses small RSA keys and symmetric JWKs, without echoing them', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    const problem = (text: string): string => {
      const keys = readSigningKeys(text);
      assert.equal(typeof keys, 'string', 'refused');
      return keys as string;
    };
    assert.match(problem(small), /RSA of 2048 bits or more/);
    const secret = JSON.stringify({ kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQ' });
    assert.doesNotMatch(problem(secret), /c2VjcmV0/);
  });
});
