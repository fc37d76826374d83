import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  maxAmbiguousPathBytes,
  maxPathBytes,
  readRequestPath,
  removeDotSegments,
  stripParams,
} from '../../src/policy/request-path.ts';

function readings(raw: string): readonly string[] {
  const path = readRequestPath(raw);
  assert.ok(!('kind' in path), `${raw} is refused: ${'kind' in path ? path.reason : ''}`);
  return path.readings;
}

function refusal(raw: string): string | undefined {
  const path = readRequestPath(raw);
  return 'kind' in path ? path.reason : undefined;
}

describe('removeDotSegments (RFC 3986 §5.2.4)', () => {
  const rows: [string, string][] = [
    ['/a/b/c/./../../g', '/a/g'],
    ['/mid/content=5/../6', '/mid/6'],
    ['/a/..', '/'],
    ['/a/.', '/a/'],
    ['/..', '/'],
    ['/../../a', '/a'],
    ['/a//../b', '/a/b'],
    ['/a/b/', '/a/b/'],
    ['/', '/'],
    ['/a/...', '/a/...'],
    ['/a/..b/c', '/a/..b/c'],
  ];
  for (const [input, output] of rows) {
    it(`${input} → ${output}`, () => assert.equal(removeDotSegments(input), output));
  }
});

describe('stripParams', () => {
  it('drops ;params from every segment, as servlet containers do', () => {
    assert.equal(stripParams('/public/..;/admin'), '/public/../admin');
    assert.equal(stripParams('/a;x=1/b;jsessionid=2/c'), '/a/b/c');
    assert.equal(stripParams('/;x/a'), '//a');
  });
});

describe('readRequestPath', () => {
  it('gives a plain path one reading, itself', () => {
    for (const raw of ['/', '/a/b', '/a.b/c-d_e~f', '/.well-known/openid-configuration', '/a/b/']) {
      assert.deepEqual(readings(raw), [raw]);
    }
  });

  it('keeps the raw path as the first reading', () => {
    assert.equal(readings('/x/../admin')[0], '/x/../admin');
  });

  const cases: [string, string, readonly string[]][] = [
    ['dot segments', '/x/../admin', ['/admin']],
    ['servlet ;params before dot segments', '/public/..;/admin', ['/admin', '/public/..;/admin']],
    ['several ;params', '/public/x/..;/..;/admin', ['/admin']],
    ['a session id parameter', '/public/..;jsessionid=x/admin', ['/admin']],
    ['; in the first segment', '/admin;v=1/x', ['/admin/x', '/admin;v=1/x']],
    ['an encoded letter', '/%61dmin/x', ['/admin/x']],
    ['an encoded dot segment', '/x/%2e%2e/admin', ['/admin']],
    ['an upper-case encoded dot segment', '/x/%2E%2E/admin', ['/admin']],
    ['a half-encoded dot segment', '/x/.%2e/admin', ['/admin']],
    ['an encoded dot segment after ;params', '/public/%2e%2e;x/admin', ['/admin']],
    ['an encoded slash, decoded only in the full reading', '/a%2fb', ['/a/b', '/a%2Fb']],
    ['an encoded backslash', '/x/..%5cadmin', ['/admin', '/x/..%5Cadmin']],
    ['a backslash', '/x\\..\\admin', ['/admin']],
    ['merged slashes', '//admin/x', ['/admin/x', '//admin/x']],
    ['double encoding', '/%2561dmin', ['/admin', '/%61dmin']],
    ['triple encoding', '/%252561dmin', ['/admin']],
    ['an encoded ;', '/public/..%3b/admin', ['/admin']],
    ['full-width dots (NFKC)', '/public/%ef%bc%8e%ef%bc%8e/admin', ['/admin']],
    ['a full-width letter (NFKC)', '/%ef%bd%81dmin', ['/admin']],
    ['raw non-ASCII', '/public/\uff0e\uff0e/admin', ['/admin']],
    ['UTF-8 text', '/caf%c3%a9', ['/café']],
    ['an invalid byte read as Latin-1', '/caf%e9', ['/café']],
  ];
  for (const [name, raw, expected] of cases) {
    it(`reads ${name}: ${raw}`, () => {
      const all = readings(raw);
      for (const reading of expected)
        assert.ok(all.includes(reading), `${reading} in ${all.join(' ')}`);
      assert.equal(new Set(all).size, all.length, 'no duplicates');
    });
  }

  it('never decodes %2F or %5C into a separator in the once-decoded reading', () => {
    const all = readings('/public/..%2fadmin');
    assert.ok(all.includes('/public/..%2Fadmin'));
    assert.ok(all.includes('/admin'));
  });

  const refused: [string, string, string][] = [
    ['an encoded NUL', '/a%00b', 'invalid path encoding'],
    ['a double-encoded NUL', '/a%2500b', 'invalid path encoding'],
    ['an overlong dot', '/public/%c0%ae%c0%ae/admin', 'invalid path encoding'],
    ['an overlong slash', '/..%c0%afadmin', 'invalid path encoding'],
    ['a three-byte overlong dot', '/%e0%80%ae', 'invalid path encoding'],
    ['a four-byte overlong', '/%f0%80%80%ae', 'invalid path encoding'],
    ['a double-encoded overlong', '/%25c0%25ae', 'invalid path encoding'],
    ['four layers of encoding', '/%2525252e', 'invalid path encoding'],
    ['a % without two hex digits', '/100%', 'invalid path encoding'],
    ['an IIS %u escape', '/%u002e', 'invalid path encoding'],
  ];
  for (const [name, raw, reason] of refused) {
    it(`refuses ${name}: ${raw}`, () => assert.equal(refusal(raw), reason));
  }

  it('accepts three layers of encoding', () => {
    assert.ok(readings('/%25252e').includes('/'), 'three decodes give /. → /');
  });

  it('refuses a path over 8 KiB, and over 4 KiB when it has several readings', () => {
    assert.equal(refusal('/' + 'a'.repeat(maxPathBytes - 1)), undefined);
    assert.equal(refusal('/' + 'a'.repeat(maxPathBytes)), 'path too long');
    assert.equal(refusal('/./' + 'a'.repeat(maxAmbiguousPathBytes - 3)), undefined);
    assert.equal(refusal('/./' + 'a'.repeat(maxAmbiguousPathBytes)), 'path too long');
    // Counted in UTF-8 bytes: 1,400 three-byte characters are 4,200 bytes.
    assert.equal(refusal('/' + '\u20ac'.repeat(1_400)), 'path too long');
    assert.equal(refusal('/' + '\u20ac'.repeat(1_300)), undefined);
  });

  it('reads a 4 KiB path of every trick without blowing up (a bound, not a benchmark)', () => {
    const raw = ('/%2561;x/..%2f\\./%ef%bc%8e/' + 'a'.repeat(10)).repeat(100).slice(0, 4000);
    const started = process.hrtime.bigint();
    for (let i = 0; i < 100; i++) readRequestPath(raw);
    const perRead = Number(process.hrtime.bigint() - started) / 100 / 1e6;
    assert.ok(perRead < 20, `${perRead.toFixed(3)} ms per read`);
  });
});
