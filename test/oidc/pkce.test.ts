/** Login secrets: state, nonce and PKCE S256 pair (RFC 7636). */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { createLoginSecrets } from '../../src/oidc/pkce.ts';

describe('createLoginSecrets', () => {
  it('makes three 43-character base64url values and the S256 challenge of the verifier', () => {
    const secrets = createLoginSecrets();
    for (const value of [secrets.state, secrets.nonce, secrets.codeVerifier]) {
      assert.match(value, /^[A-Za-z0-9_-]{43}$/);
    }
    assert.equal(
      secrets.codeChallenge,
      createHash('sha256').update(secrets.codeVerifier).digest('base64url'),
    );
    assert.equal(new Set([secrets.state, secrets.nonce, secrets.codeVerifier]).size, 3);
  });

  it('takes every value from its own random bits, one draw per login', () => {
    const draws: number[] = [];
    const bytes = randomBytes(99);
    const secrets = createLoginSecrets((n) => {
      draws.push(n);
      return bytes;
    });
    assert.deepEqual(draws, [99]);
    const encoded = bytes.toString('base64url');
    assert.equal(encoded.length, 132, 'no character of the encoding is padding');
    assert.equal(secrets.state + secrets.nonce + secrets.codeVerifier, encoded.slice(0, 129));
    const other = createLoginSecrets();
    assert.notEqual(other.state, createLoginSecrets().state);
  });
});
