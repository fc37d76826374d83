import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PublicPaths } from '../../src/policy/public-paths.ts';
import { pathOf } from '../support/request-paths.ts';

describe('PublicPaths', () => {
  const paths = new PublicPaths([{ prefix: '/public/' }, { exact: '/healthz', methods: ['GET'] }]);
  const matches = (method: string, raw: string) => paths.matches(method, pathOf(raw));

  it('matches prefixes and exact paths with their methods', () => {
    assert.equal(matches('POST', '/public/app.js'), true);
    assert.equal(matches('GET', '/healthz'), true);
    assert.equal(matches('POST', '/healthz'), false);
    assert.equal(matches('GET', '/healthz/x'), false);
    assert.equal(matches('GET', '/publicx'), false);
  });

  it('covers HEAD where it lists GET', () => {
    assert.equal(matches('HEAD', '/healthz'), true);
    assert.equal(matches('head', '/healthz'), true);
  });

  it('never lets a reading that leaves the prefix borrow it', () => {
    for (const raw of [
      '/public/../admin',
      '/public/%2e%2e/admin',
      '/public/..%2fadmin',
      '/public/..\\admin',
      '/public/..;/admin',
      '/public/x/..;/..;/admin',
      '/public/..;jsessionid=x/admin',
      '/public/%252e%252e/admin',
      '/public/..%3b/admin',
      '/public/%ef%bc%8e%ef%bc%8e/admin',
      '/public//../admin',
      '/healthz;x',
      '/healthz/',
      '/%68ealthz',
    ]) {
      assert.equal(matches('GET', raw), false, raw);
    }
  });

  it('stays public when every reading stays inside the prefix', () => {
    for (const raw of [
      '/public/./app.js',
      '/public/a%20b.js',
      '/public/x;v=2',
      '/public//app.js',
      '/public/.\\app.js',
    ]) {
      assert.equal(matches('GET', raw), true, raw);
    }
  });
});
