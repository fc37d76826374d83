/** The cookie codec: round trips, refusal of every malformed or foreign input, jose interop. */
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { CompactEncrypt, compactDecrypt } from 'jose';
import { createCookieCodec } from '../../src/session/cookie-codec.ts';
import { sealCompact } from '../../src/session/compact-jwe.ts';
import { deriveKeyRing } from '../../src/session/session-keys.ts';
import { countingCodec } from './session-codec.ts';
import { testBinding } from './test-binding.ts';

const SECRET_A = 'a'.repeat(16) + '-first-secret-of-32+bytes';
const SECRET_B = 'b'.repeat(16) + '-other-secret-of-32+bytes';
const payload = { v: 1, sub: 'user-1', claims: { email: 'u@example.com', groups: ['a', 'b'] } };

function b64(json: object): string {
  return Buffer.from(JSON.stringify(json)).toString('base64url');
}

const decryptOptions = {
  keyManagementAlgorithms: ['dir'],
  contentEncryptionAlgorithms: ['A256GCM'],
};

describe('session keys', () => {
  it('derives a short public kid per secret, stable and not revealing the secret', () => {
    const one = deriveKeyRing([SECRET_A, SECRET_B], 'session', testBinding);
    const two = deriveKeyRing([SECRET_A], 'session', testBinding);
    assert.match(one.current.kid, /^[A-Za-z0-9_-]{8}$/);
    assert.equal(one.current.kid, two.current.kid);
    assert.notEqual(one.all[1]?.kid, one.current.kid);
    assert.ok(!SECRET_A.includes(one.current.kid));
  });

  it('gives each purpose its own key', () => {
    const session = deriveKeyRing([SECRET_A], 'session', testBinding);
    const login = deriveKeyRing([SECRET_A], 'login-state', testBinding);
    assert.notEqual(session.current.kid, login.current.kid);
    const sealed = createCookieCodec(login).seal(payload);
    assert.equal(createCookieCodec(session).open(sealed), undefined);
  });

  it('never shows key material in JSON, inspect or strings', () => {
    const key = deriveKeyRing([SECRET_A], 'session', testBinding).current;
    const raw = key.keyObject().export().toString('base64url');
    for (const shown of [JSON.stringify({ key }), inspect({ key }), String(key)]) {
      assert.ok(!shown.includes(raw));
      assert.match(shown, /\[redacted\]/);
    }
  });

  it('refuses short, missing or repeated secrets', () => {
    assert.throws(() => deriveKeyRing([], 'session', testBinding), RangeError);
    assert.throws(
      () => deriveKeyRing(['too short'], 'session', testBinding),
      /shorter than 32 bytes/,
    );
    assert.throws(() => deriveKeyRing([SECRET_A, SECRET_A], 'session', testBinding), /repeats/);
  });
});

describe('cookie codec', () => {
  const ring = deriveKeyRing([SECRET_A], 'session', testBinding);
  const codec = createCookieCodec(ring);

  it('round-trips a payload as a compact JWE with exactly dir/A256GCM/kid', () => {
    const value = codec.seal(payload);
    const parts = value.split('.');
    assert.equal(parts.length, 5);
    assert.equal(parts[1], '');
    assert.deepEqual(JSON.parse(Buffer.from(parts[0]!, 'base64url').toString()), {
      alg: 'dir',
      enc: 'A256GCM',
      kid: ring.current.kid,
    });
    assert.match(value, /^[A-Za-z0-9_.-]+$/, 'cookie-safe characters only');
    assert.deepEqual(codec.open(value), payload);
    assert.notEqual(codec.seal(payload), value, 'a fresh IV every time');
  });

  it('a cookie sealed with a rotated-out (second-listed) secret still opens', () => {
    const old = createCookieCodec(deriveKeyRing([SECRET_B], 'session', testBinding)).seal(payload);
    const rotated = createCookieCodec(deriveKeyRing([SECRET_A, SECRET_B], 'session', testBinding));
    assert.deepEqual(rotated.open(old), payload);
    const fresh = rotated.seal(payload);
    assert.ok(fresh.startsWith(b64({ alg: 'dir', enc: 'A256GCM', kid: ring.current.kid })));
  });

  it('refuses a value sealed with a key it does not hold', () => {
    const foreign = createCookieCodec(deriveKeyRing([SECRET_B], 'session', testBinding)).seal(
      payload,
    );
    assert.equal(codec.open(foreign), undefined);
  });

  it('refuses tampering anywhere: header, iv, ciphertext, tag', () => {
    const value = codec.seal(payload);
    for (let i = 0; i < value.length; i++) {
      const c = value[i]!;
      if (c === '.') continue;
      const swapped = value.slice(0, i) + (c === 'A' ? 'B' : 'A') + value.slice(i + 1);
      assert.equal(codec.open(swapped), undefined, `flip at ${i}`);
    }
  });

  it('refuses truncation and junk without throwing', () => {
    const value = codec.seal(payload);
    for (let n = 0; n < value.length; n += 7) {
      assert.equal(codec.open(value.slice(0, n)), undefined);
    }
    assert.equal(codec.open(value + 'A'), undefined);
    assert.equal(codec.open(value + '.'), undefined);
    for (const junk of ['', '....', 'a.b.c.d.e', '%%%%.%.%.%.%', 'x'.repeat(100_000), '\u0000']) {
      assert.equal(codec.open(junk), undefined);
    }
  });

  it('refuses other algorithms, zip, extra header members and unknown kids', () => {
    const key = ring.current.keyObject();
    const kid = ring.current.kid;
    const plaintext = new TextEncoder().encode(JSON.stringify(payload));
    const headers = [
      { alg: 'dir', enc: 'A128GCM', kid },
      { alg: 'A256KW', enc: 'A256GCM', kid },
      { alg: 'dir', enc: 'A256GCM', kid, zip: 'DEF' },
      { alg: 'dir', enc: 'A256GCM', kid, crit: ['x'], x: 1 },
      { alg: 'dir', enc: 'A256GCM', kid: 'AAAAAAAA' },
      { alg: 'dir', enc: 'A256GCM', kid: 7 },
      { alg: 'none', enc: 'A256GCM', kid },
    ];
    for (const header of headers) {
      // Sealed with the right key and the header as AAD, so only the header check can refuse it.
      const value = sealCompact(key, b64(header), Buffer.from(plaintext));
      assert.equal(codec.open(value), undefined, JSON.stringify(header));
    }
  });

  it('accepts an equivalent header written in another member order', () => {
    const header = b64({ kid: ring.current.kid, enc: 'A256GCM', alg: 'dir' });
    const value = sealCompact(
      ring.current.keyObject(),
      header,
      Buffer.from(JSON.stringify(payload)),
    );
    assert.deepEqual(codec.open(value), payload);
  });

  it('jose opens what the codec seals', async () => {
    const value = codec.seal(payload);
    const { plaintext, protectedHeader } = await compactDecrypt(
      value,
      ring.current.keyObject(),
      decryptOptions,
    );
    assert.deepEqual(JSON.parse(new TextDecoder().decode(plaintext)), payload);
    assert.deepEqual(protectedHeader, { alg: 'dir', enc: 'A256GCM', kid: ring.current.kid });
  });

  it('the codec opens what jose seals', async () => {
    const value = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(payload)))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: ring.current.kid })
      .encrypt(ring.current.keyObject());
    assert.deepEqual(codec.open(value), payload);
  });

  it('skips the cipher for values refused on shape', () => {
    const local = countingCodec(ring);
    local.open(local.seal(payload));
    local.open('not a jwe');
    assert.equal(local.decrypts(), 1);
  });
});
