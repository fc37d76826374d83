import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { captureLog } from '../resilience/log-capture.ts';
import { waitFor } from '../support/redis-servers.ts';
import {
  clientDeps,
  clientOptions,
  createStandaloneClient,
  startProvider,
} from './oidc-fixtures.ts';

/** Start-up tells the truth (issue 15): a provider that answers but can never log anyone in. */
describe('a provider no login can succeed with', () => {
  for (const [what, configured, fix] of [
    [
      'a trailing slash on a bare-origin issuer',
      (issuer: string) => `${issuer}/`,
      /trailing slash/,
    ],
    [
      'the discovery URL given as the issuer',
      (issuer: string) => `${issuer}/.well-known/openid-configuration`,
      /discovery document's URL/,
    ],
  ] as const) {
    it(`is misconfigured, not ready, for ${what}, naming both issuers`, async () => {
      const provider = await startProvider();
      const log = captureLog();
      const issuer = configured(provider.issuer);
      const client = createStandaloneClient(
        clientOptions({ issuer }),
        clientDeps({ logger: log.logger }),
      );
      try {
        await waitFor('discovery to answer', () => client.status().lastError !== undefined);
        const status = client.status();
        assert.equal(status.state, 'misconfigured');
        assert.ok(status.lastError?.includes(JSON.stringify(provider.issuer)), status.lastError);
        assert.ok(status.lastError?.includes(JSON.stringify(issuer)), status.lastError);
        assert.match(status.lastError ?? '', fix);
        const [line] = log.matching(/another issuer/);
        assert.ok(line !== undefined, log.text());
        assert.equal(line['level'], 'error');
        assert.throws(() =>
          client.authorizationLocation({
            redirectUri: 'http://127.0.0.1/cb',
            state: 's',
            nonce: 'n',
            codeChallenge: 'c',
          }),
        );
      } finally {
        client.close();
        await provider.close();
      }
    });
  }

  it('is misconfigured when the provider signs ID tokens with no algorithm the app allows', async () => {
    const provider = await startProvider({ idTokenSigningAlgs: ['ES256'] });
    const log = captureLog();
    const client = createStandaloneClient(
      clientOptions(provider, { idTokenAlgs: ['RS256'] }),
      clientDeps({ logger: log.logger }),
    );
    try {
      await client.ready;
      const status = client.status();
      assert.equal(status.state, 'misconfigured');
      assert.match(status.lastError ?? '', /"ES256"/);
      assert.match(status.lastError ?? '', /oidc\.idTokenAlgs \(RS256\)/);
      const [line] = log.matching(/not ready: ID-token algorithms/);
      assert.ok(line !== undefined, log.text());
      assert.equal(line['level'], 'error');
    } finally {
      client.close();
      await provider.close();
    }
  });

  it('is ready when the issuer is identical and one algorithm is shared', async () => {
    const provider = await startProvider({ idTokenSigningAlgs: ['ES256', 'RS256'] });
    const client = createStandaloneClient(
      clientOptions(provider, { idTokenAlgs: ['RS256'] }),
      clientDeps(),
    );
    try {
      await client.ready;
      assert.equal(client.status().state, 'ready');
    } finally {
      client.close();
      await provider.close();
    }
  });
});
