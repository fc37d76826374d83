import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackHost } from '../src/loopback-host.ts';
import { configSchema } from '../src/config/schema.ts';
import { resolveSecure } from '../src/session/cookie-jar.ts';

// W3C Secure Contexts §3.1 (potentially trustworthy origin) and RFC 6761 §6.3.
const table: readonly [host: string, loopback: boolean][] = [
  ['localhost', true],
  ['LOCALHOST', true],
  ['localhost.', true],
  ['app.localhost', true],
  ['a.b.localhost.', true],
  ['127.0.0.1', true],
  ['127.1.2.3', true],
  ['127.255.255.255', true],
  ['::1', true],
  ['[::1]', true],
  ['[0:0:0:0:0:0:0:1]', true],
  ['[::0001]', true],
  ['localhost.example.com', false],
  ['notlocalhost', false],
  ['localhostx', false],
  ['127.0.0.1.evil.example', false],
  ['127.example.com', false],
  ['127.256.0.1', false],
  ['127.1', false],
  ['128.0.0.1', false],
  ['0.0.0.0', false],
  ['10.0.0.1', false],
  ['::', false],
  ['[::2]', false],
  ['[1::1]', false],
  ['::ffff:127.0.0.1', false],
  ['[::1', false],
  ['', false],
];

function issuerAccepted(issuer: string): boolean {
  const result = configSchema.safeParse({
    apps: [
      {
        name: 'a',
        oidc: { issuer, clientId: 'c', clientSecret: 's'.repeat(32) },
        session: { secret: 'x'.repeat(64) },
      },
    ],
  });
  return !(result.error?.issues ?? []).some(
    (issue) => issue.path.join('.') === 'apps.0.oidc.issuer',
  );
}

describe('loopback hosts', () => {
  it('one table: localhost, *.localhost, 127.0.0.0/8 and ::1, nothing else', () => {
    for (const [host, loopback] of table) {
      assert.equal(isLoopbackHost(host), loopback, host);
    }
  });

  it('the issuer rule, the provider fetch and the cookie Secure default all follow it', () => {
    for (const [host, loopback] of table) {
      let url: URL;
      try {
        url = new URL(
          `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}/`,
        );
      } catch {
        continue;
      }
      if (url.hostname !== host.toLowerCase() && url.hostname !== `[${host}]`) continue;
      assert.equal(isLoopbackHost(url.hostname), loopback, host);
      assert.equal(issuerAccepted(url.origin), loopback, host);
      assert.equal(resolveSecure(undefined, 'http', host), !loopback, host);
    }
  });
});
