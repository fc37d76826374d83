import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSubjectLabel } from '../../src/observability/subject-label.ts';

const secret = 'k3Vb9QmZ2rXy7LtW5nHc8JdF4gPs1AeU6oNi0TwR';

describe('createSubjectLabel', () => {
  it('plain: the sub as is', () => {
    assert.equal(createSubjectLabel('plain', secret)('alice'), 'alice');
  });

  it('hash: 16 base64url characters, stable across instances, keyed by the secret', () => {
    const label = createSubjectLabel('hash', secret);
    const again = createSubjectLabel('hash', secret);
    const other = createSubjectLabel('hash', `${secret}x`);
    for (const sub of ['alice', '', 'é\r\n<x>', '\u0000', 'x'.repeat(100_000), '😀']) {
      assert.match(label(sub), /^[A-Za-z0-9_-]{16}$/);
      assert.equal(label(sub), again(sub), 'the same on every replica');
      assert.notEqual(label(sub), other(sub), 'another secret, another label');
      assert.ok(sub.length < 16 || !label(sub).includes(sub));
    }
    assert.notEqual(label('alice'), label('bob'));
  });
});
