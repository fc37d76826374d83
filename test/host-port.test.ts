import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostPortOf, parseHostPort, splitPort } from '../src/host-port.ts';
import { parseAuthority } from '../src/policy/host-name.ts';

describe('host:port', () => {
  it('a configured address needs a host and a port; IPv6 comes back without brackets', () => {
    const table: readonly [text: string, expected: { host: string; port: number } | undefined][] = [
      ['0.0.0.0:9001', { host: '0.0.0.0', port: 9001 }],
      ['[::]:9001', { host: '::', port: 9001 }],
      ['[::1]:0', { host: '::1', port: 0 }],
      ['redis-0:6379', { host: 'redis-0', port: 6379 }],
      ['Redis.Example.com:65535', { host: 'Redis.Example.com', port: 65535 }],
      ['redis:65536', undefined],
      ['redis:123456', undefined],
      ['redis:', undefined],
      ['redis', undefined],
      [':6379', undefined],
      ['[::1]', undefined],
      ['::1:6379', undefined],
      ['-redis:6379', undefined],
      ['redis :6379', undefined],
      ['redis:+1', undefined],
      ['redis:0x10', undefined],
      ['user@redis:6379', undefined],
    ];
    for (const [text, expected] of table) {
      assert.deepEqual(parseHostPort(text), expected, text);
    }
    assert.deepEqual(hostPortOf('[::1]:6379'), { host: '::1', port: 6379 });
    assert.throws(() => hostPortOf('redis'), TypeError);
  });

  it('a request authority may leave the port out, and reads the same way', () => {
    assert.deepEqual(splitPort('example.com'), { host: 'example.com', port: undefined });
    assert.deepEqual(splitPort('[::1]'), { host: '[::1]', port: undefined });
    assert.deepEqual(splitPort('[::1]:8443'), { host: '[::1]', port: 8443 });
    assert.equal(splitPort('example.com:'), undefined);
    assert.equal(splitPort('example.com:70000'), undefined);
    assert.deepEqual(parseAuthority('Example.COM.:8443'), { host: 'example.com', port: 8443 });
    assert.equal(parseAuthority('example.com:08443x'), undefined);
  });
});
