import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createIdpFetch } from '../../src/oidc/idp-fetch.ts';
import { validateIssuer } from '../../src/oidc/provider.ts';
import { IdpTransportError } from '../../src/oidc/oidc-errors.ts';

describe('provider HTTP', () => {
  const dir = mkdtempSync(join(tmpdir(), 'idp-fetch-'));
  let url: string;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      if (req.url === '/slow') {
        setTimeout(() => res.end('late'), 500);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, body, type: req.headers['content-type'] }));
    });
  });

  before(async () => {
    // A self-signed certificate, as a test rig's provider would have.
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    server.setSecureContext({
      key: readFileSync(join(dir, 'key.pem')),
      cert: readFileSync(join(dir, 'cert.pem')),
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies TLS certificates by default', async () => {
    const idpFetch = createIdpFetch({ timeoutMs: 2_000, tlsInsecureSkipVerify: false });
    await assert.rejects(
      idpFetch(`${url}/`, { method: 'GET' }),
      (err) => err instanceof IdpTransportError && err.reason === 'network',
    );
  });

  it('accepts any certificate only when tlsInsecureSkipVerify is set, bodies included', async () => {
    const idpFetch = createIdpFetch({ timeoutMs: 2_000, tlsInsecureSkipVerify: true });
    const response = await idpFetch(`${url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token' }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), {
      method: 'POST',
      body: 'grant_type=refresh_token',
      type: 'application/x-www-form-urlencoded',
    });
  });

  it('gives up after the per-request timeout', async (t) => {
    // Accepts connections and never answers.
    const silent = createNetServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/slow`;
    t.after(() => {
      silent.close();
    });
    for (const tlsInsecureSkipVerify of [true, false]) {
      const idpFetch = createIdpFetch({ timeoutMs: 100, tlsInsecureSkipVerify });
      const target = tlsInsecureSkipVerify ? `${url}/slow` : silentUrl;
      const started = performance.now();
      await assert.rejects(
        idpFetch(target, { method: 'GET' }),
        (err) => err instanceof IdpTransportError && err.reason === 'timeout',
      );
      assert.ok(performance.now() - started < 400);
    }
  });

  it('knows which issuers may use plain HTTP', () => {
    for (const ok of [
      'http://127.0.0.1:8080',
      'http://localhost',
      'http://[::1]:9000',
      'http://127.1.2.3',
    ]) {
      assert.deepEqual(validateIssuer(ok), [], ok);
    }
    for (const no of [
      'http://10.0.0.1',
      'http://idp.example.com',
      'http://127.0.0.1.evil.example',
      'http://[::2]',
    ]) {
      assert.equal(validateIssuer(no).length, 1, no);
    }
  });
});
