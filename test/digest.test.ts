import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { sha256Base64url } from '../src/digest.ts';

describe('sha256Base64url', () => {
  it('is SHA-256 of the UTF-8 bytes, base64url without padding: 43 characters, never the input', () => {
    for (const value of ['', 'state-value', 'eyJ'.repeat(500), 'ünïcødé ✓', '\u0000']) {
      const digest = sha256Base64url(value);
      assert.equal(digest, createHash('sha256').update(value, 'utf8').digest('base64url'));
      assert.match(digest, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(sha256Base64url(value), digest);
      assert.notEqual(sha256Base64url(value + 'x'), digest);
    }
  });
});
