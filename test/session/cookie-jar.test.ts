/** Chunked session cookies: attributes, `__Host-` rules, splitting, reassembly and stale chunks. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { createCookieCodec } from '../../src/session/cookie-codec.ts';
import { ChunkedCookie, resolveSecure } from '../../src/session/cookie-jar.ts';
import { deriveKeyRing } from '../../src/session/session-keys.ts';
import { testBinding } from './test-binding.ts';
import { applySetCookie, attributesOf, nameOf } from './browser-cookies.ts';

const codec = createCookieCodec(deriveKeyRing(['s'.repeat(40)], 'session', testBinding));
const jarFor = (domain?: string): ChunkedCookie =>
  new ChunkedCookie({
    name: '_eoa',
    sameSite: 'lax',
    ...(domain === undefined ? {} : { domain }),
  });

/** A JWE carrying about `claimBytes` of claims. */
function bigCookie(claimBytes: number): { value: string; payload: object } {
  const payload = { claims: { blob: randomBytes(claimBytes / 2).toString('hex') } };
  return { value: codec.seal(payload), payload };
}

describe('secure mode', () => {
  it('is Secure unless plain http to a loopback host, unless configured', () => {
    assert.equal(resolveSecure(undefined, 'https', 'app.example.com'), true);
    assert.equal(resolveSecure(undefined, 'https', 'localhost'), true);
    assert.equal(resolveSecure(undefined, 'http', 'app.example.com'), true);
    assert.equal(resolveSecure(undefined, 'http', 'localhost'), false);
    assert.equal(resolveSecure(undefined, 'http', '127.0.0.1'), false);
    assert.equal(resolveSecure(undefined, 'http', 'app.localhost'), false);
    assert.equal(resolveSecure(false, 'https', 'app.example.com'), false);
    assert.equal(resolveSecure(true, 'http', 'localhost'), true);
    assert.equal(resolveSecure(undefined, 'http', '127.example.com'), true);
    assert.equal(resolveSecure(undefined, 'http', '[::1]'), false);
  });
});

describe('chunked cookie', () => {
  it('writes HttpOnly, Secure, SameSite, Path=/, Max-Age with the __Host- prefix', () => {
    const [line, ...rest] = jarFor().write('abc', 3600, new Map(), true);
    assert.deepEqual(rest, []);
    assert.equal(nameOf(line!), '__Host-_eoa');
    const attributes = attributesOf(line!);
    assert.equal(attributes.get('path'), '/');
    assert.equal(attributes.get('max-age'), '3600');
    assert.equal(attributes.get('samesite'), 'Lax');
    assert.ok(attributes.has('httponly'));
    assert.ok(attributes.has('secure'));
    assert.ok(!attributes.has('domain'));
  });

  it('drops __Host- when a Domain is set, and when not Secure', () => {
    const [withDomain] = jarFor('example.com').write('abc', 60, new Map(), true);
    assert.equal(nameOf(withDomain!), '_eoa');
    assert.equal(attributesOf(withDomain!).get('domain'), 'example.com');
    assert.ok(attributesOf(withDomain!).has('secure'));
    const [insecure] = jarFor().write('abc', 60, new Map(), false);
    assert.equal(nameOf(insecure!), '_eoa');
    assert.ok(!attributesOf(insecure!).has('secure'));
  });

  it('reads only the name of its security mode', () => {
    const jar = jarFor();
    const cookies = new Map([['_eoa', 'planted-over-http']]);
    assert.equal(jar.read(cookies, true), undefined);
    assert.equal(jar.read(cookies, false), 'planted-over-http');
  });

  it('a 10 KB claims payload splits into several chunks that round-trip', () => {
    const jar = jarFor();
    const { value, payload } = bigCookie(10_000);
    const lines = jar.write(value, 3600, new Map(), true);
    assert.ok(lines.length >= 3, `${lines.length} chunks`);
    assert.deepEqual(
      lines.map(nameOf),
      lines.map((_, i) => `__Host-_eoa.${i}`),
    );
    for (const line of lines) assert.ok(Buffer.byteLength(line) <= 3_800, 'each line fits');
    const browser = applySetCookie(new Map(), lines);
    const read = jar.read(browser, true);
    assert.equal(read, value);
    assert.deepEqual(codec.open(read), payload);
  });

  it('expires stale chunks the request still carries (3 chunks, then 1 cookie)', () => {
    const jar = jarFor();
    const browser = applySetCookie(
      new Map(),
      jar.write(bigCookie(8_000).value, 60, new Map(), true),
    );
    assert.ok(browser.size >= 3);
    const small = codec.seal({ small: true });
    const lines = jar.write(small, 60, browser, true);
    const expired = lines.filter((l) => attributesOf(l).get('max-age') === '0').map(nameOf);
    assert.deepEqual(expired.sort(), [...browser.keys()].sort());
    applySetCookie(browser, lines);
    assert.deepEqual([...browser.keys()], ['__Host-_eoa']);
    assert.equal(jar.read(browser, true), small);
  });

  it('expires chunks beyond the new count when the value shrinks but stays chunked', () => {
    const jar = jarFor();
    const browser = applySetCookie(
      new Map(),
      jar.write(bigCookie(12_000).value, 60, new Map(), true),
    );
    const before = browser.size;
    const smaller = bigCookie(5_000).value;
    applySetCookie(browser, jar.write(smaller, 60, browser, true));
    assert.ok(browser.size < before && browser.size >= 2);
    assert.equal(jar.read(browser, true), smaller);
  });

  it('the whole cookie wins over leftover chunks; incomplete chunks read as absent', () => {
    const jar = jarFor();
    assert.equal(
      jar.read(
        new Map([
          ['__Host-_eoa', 'whole'],
          ['__Host-_eoa.0', 'chunk'],
        ]),
        true,
      ),
      'whole',
    );
    assert.equal(jar.read(new Map([['__Host-_eoa.1', 'orphan']]), true), undefined);
  });

  it('clear expires every present part in either mode, Secure for __Host- names', () => {
    const jar = jarFor();
    const cookies = new Map([
      ['__Host-_eoa.0', 'a'],
      ['__Host-_eoa.1', 'b'],
      ['_eoa', 'c'],
      ['_eoa_login_x', 'not ours here'],
      ['_eoax', 'other'],
      ['other', 'keep'],
    ]);
    assert.deepEqual(jar.presentNames(cookies), ['__Host-_eoa.0', '__Host-_eoa.1', '_eoa']);
    const lines = jar.clear(cookies, false);
    assert.deepEqual(lines.map(nameOf), ['__Host-_eoa.0', '__Host-_eoa.1', '_eoa']);
    for (const line of lines) {
      assert.equal(attributesOf(line).get('max-age'), '0');
      assert.equal(attributesOf(line).has('secure'), nameOf(line).startsWith('__Host-'));
    }
  });

  it('refuses a value that would need more than maxChunks chunks', () => {
    const jar = new ChunkedCookie({ name: '_eoa', sameSite: 'lax', maxChunks: 2 });
    assert.throws(() => jar.write('x'.repeat(10_000), 60, new Map(), true), RangeError);
  });
});
