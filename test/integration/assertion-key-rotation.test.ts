/** The server process rotates its upstream assertion key when the key file changes, and on SIGHUP. */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { waitFor } from '../support/redis-servers.ts';
import { spawnServer, type ServerProcess } from '../support/server-process.ts';
import { testSessionSecret } from '../support/test-server.ts';

function ecPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .privateKey.export({ format: 'pem', type: 'pkcs8' })
    .toString();
}

describe('upstream assertion key rotation in the server process', () => {
  let provider: TestProvider;
  let proc: ServerProcess;
  const keyFile = join(mkdtempSync(join(tmpdir(), 'eoa-assertion-key-')), 'key.pem');
  const keys = [ecPem(), ecPem(), ecPem()];
  const document = (assertion: Record<string, unknown>) => ({
    log: { level: 'info' },
    apps: [
      {
        name: 'web',
        match: { hosts: ['web.example.com'] },
        oidc: { issuer: provider.issuer, clientId: 'web', clientSecret: 'rotation-client-secret' },
        session: { secrets: [testSessionSecret] },
        upstreamAssertion: { audience: 'https://upstream.example.com', ttl: '1m', ...assertion },
      },
    ],
  });
  const kids = async (): Promise<string[]> => {
    const response = await fetch(`http://127.0.0.1:${proc.ports.http}/.well-known/jwks.json`);
    return ((await response.json()) as { keys: { kid: string }[] }).keys.map((key) => key.kid);
  };

  before(async () => {
    provider = await startTestProvider({ clients: [] });
    writeFileSync(keyFile, keys[0]!);
    proc = await spawnServer(document({ signingKeyFile: keyFile }));
  });

  after(async () => {
    await proc.stop();
    await provider.close();
  });

  it('publishes the new key beside the old one when the key file changes, without a signal', async () => {
    const [first] = await kids();
    assert.ok(first !== undefined);
    writeFileSync(keyFile, keys[1]!);
    await waitFor('the new key in the JWKS', async () => (await kids()).length === 2);
    const [current, retired] = await kids();
    assert.notEqual(current, first);
    assert.equal(retired, first, 'the old key stays published while its tokens may live');
    assert.match(proc.output(), /signing key rotated/);
  });

  it('rotates again on SIGHUP with an inline key, and never logs a key', async () => {
    const before = await kids();
    proc.writeConfig(document({ signingKey: keys[2]! }));
    proc.child.kill('SIGHUP');
    await waitFor('the third key in the JWKS', async () => (await kids()).length === 3);
    const now = await kids();
    assert.ok(!before.includes(now[0]!), 'the new key is listed first');
    for (const key of keys) {
      const body = key.split('\n')[1]!;
      assert.equal(proc.output().includes(body), false, 'no key material in the logs');
    }
  });
});
