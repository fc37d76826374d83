import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PublicPaths } from '../../src/authz/public-paths.ts';
import type { RequestModel } from '../../src/authz/request.ts';

function request(method: string, path: string): RequestModel {
  return {
    id: '',
    method,
    scheme: 'https',
    host: 'a.example',
    port: undefined,
    path,
    query: '',
    headers: new Map(),
    cookies: new Map(),
    clientAddress: '127.0.0.1',
    contextExtensions: new Map(),
    body: '',
  };
}

describe('PublicPaths', () => {
  const paths = new PublicPaths([{ prefix: '/public/' }, { exact: '/healthz', methods: ['GET'] }]);

  it('matches prefixes and exact paths with their methods', () => {
    assert.equal(paths.matches(request('POST', '/public/app.js')), true);
    assert.equal(paths.matches(request('GET', '/healthz')), true);
    assert.equal(paths.matches(request('POST', '/healthz')), false);
    assert.equal(paths.matches(request('GET', '/healthz/x')), false);
    assert.equal(paths.matches(request('GET', '/publicx')), false);
  });

  it('never lets dot segments or encoded separators borrow a public prefix', () => {
    for (const path of [
      '/public/../admin',
      '/public/%2e%2e/admin',
      '/public/..%2fadmin',
      '/public/.\\admin',
    ]) {
      assert.equal(paths.matches(request('GET', path)), false, path);
    }
  });
});
