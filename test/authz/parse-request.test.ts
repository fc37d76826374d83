import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCookies, parseRequest, type RawRequest } from '../../src/authz/parse-request.ts';
import type { RequestModel } from '../../src/authz/request.ts';

const options = { trustedHops: 0, maxHeaderBytes: 64 * 1024 };

function raw(overrides: Partial<RawRequest> = {}): RawRequest {
  return {
    id: '1',
    method: 'GET',
    path: '/a/b?x=1&y=2',
    authority: 'App.Example.com:8443',
    scheme: 'https',
    headers: [
      [':authority', 'app.example.com:8443'],
      [':path', '/a/b?x=1&y=2'],
      ['Accept', 'text/html'],
      ['cookie', 'a=1; _eoa="quoted"; b=2; a=shadowed; flag'],
    ],
    peerAddress: '10.0.0.7',
    contextExtensions: [['app', 'grafana']],
    body: '',
    ...overrides,
  };
}

function parsed(overrides: Partial<RawRequest> = {}, opts = options): RequestModel {
  const result = parseRequest(raw(overrides), opts);
  assert.ok(!('kind' in result), `expected a model, got ${JSON.stringify(result)}`);
  return result;
}

function reason(overrides: Partial<RawRequest>, opts = options): string {
  const result = parseRequest(raw(overrides), opts);
  assert.ok('kind' in result, 'expected the request to be refused');
  return result.reason;
}

describe('parseRequest', () => {
  it('splits path and query, lower-cases host and names, keeps the port apart', () => {
    const model = parsed();
    assert.equal(model.path, '/a/b');
    assert.equal(model.query, 'x=1&y=2');
    assert.equal(model.host, 'app.example.com');
    assert.equal(model.port, 8443);
    assert.equal(model.headers.get('accept'), 'text/html');
    assert.equal(model.headers.has(':path'), false, 'pseudo-headers are not headers');
    assert.equal(model.contextExtensions.get('app'), 'grafana');
  });

  it('parses cookies: first occurrence wins, quotes removed, bare values ignored', () => {
    const model = parsed();
    assert.deepEqual(
      [...model.cookies],
      [
        ['a', '1'],
        ['_eoa', 'quoted'],
        ['b', '2'],
      ],
    );
  });

  it('joins repeated headers with a comma as Envoy does', () => {
    const model = parsed({
      headers: [
        ['x-a', '1'],
        ['X-A', '2'],
      ],
    });
    assert.equal(model.headers.get('x-a'), '1,2');
  });

  it('takes the client from x-forwarded-for only through trusted hops', () => {
    const headers: [string, string][] = [
      ['x-forwarded-for', '203.0.113.9, 198.51.100.1, 10.0.0.2'],
    ];
    assert.equal(parsed({ headers }).clientAddress, '10.0.0.7');
    assert.equal(parsed({ headers }, { ...options, trustedHops: 1 }).clientAddress, '10.0.0.2');
    assert.equal(parsed({ headers }, { ...options, trustedHops: 3 }).clientAddress, '203.0.113.9');
    assert.equal(parsed({ headers }, { ...options, trustedHops: 4 }).clientAddress, '10.0.0.7');
    const forged: [string, string][] = [['x-forwarded-for', 'not-an-ip']];
    assert.equal(
      parsed({ headers: forged }, { ...options, trustedHops: 1 }).clientAddress,
      '10.0.0.7',
    );
  });

  it('refuses CR, LF and NUL in header values', () => {
    for (const bad of ['a\r\nset-cookie: x=1', 'a\nb', 'a\u0000b']) {
      assert.equal(reason({ headers: [['x-a', bad]] }), 'invalid character in header value');
    }
  });

  it('refuses headers over the size cap', () => {
    const big = 'x'.repeat(70 * 1024);
    assert.equal(reason({ headers: [['x-big', big]] }), 'request headers too large');
  });

  it('refuses targets that are not origin-form', () => {
    for (const path of ['', 'http://evil.example/', '*', '/a b', '/a#frag', '/a\u0000']) {
      assert.equal(reason({ path }), 'request target is not in origin form', path);
    }
  });

  it('refuses bad hosts, methods, schemes and cookie names', () => {
    assert.equal(reason({ authority: '' }), 'invalid host');
    assert.equal(reason({ authority: 'a.example:99999' }), 'invalid host');
    assert.equal(reason({ authority: 'a/b' }), 'invalid host');
    assert.equal(reason({ method: 'GE T' }), 'invalid method');
    assert.equal(reason({ scheme: 'ftp' }), 'invalid scheme');
    assert.equal(reason({ headers: [['cookie', 'a b=1']] }), 'malformed cookie header');
  });

  it('accepts IPv6 authorities', () => {
    const model = parsed({ authority: '[::1]:9000' });
    assert.equal(model.host, '[::1]');
    assert.equal(model.port, 9000);
  });
});

describe('parseCookies', () => {
  it('caps the number of cookies', () => {
    const many = Array.from({ length: 201 }, (_, i) => `c${i}=1`).join('; ');
    assert.equal(parseCookies(many), undefined);
  });
});
