/**
 * Certificate-bound access tokens (RFC 8705 §3) from a real provider: oidc-provider binds a
 * client-credentials token to the client certificate it was handed, and the Check carries the
 * certificate the way Envoy does — `source.certificate` (`include_peer_certificate`) or an
 * `x-forwarded-client-cert` element written by trusted proxies.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import {
  CLIENT_CERT_HEADER,
  startTestProvider,
  type TestProvider,
} from '../../dev/test-provider.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import { deniedHeader as header, statusOf } from '../support/browser.ts';
import type { EnvoyClient, Outcome } from '../support/envoy-client.ts';
import { makeCa, makeLeaf } from '../support/test-certs.ts';
import { startTestServer, testSessionSecret, type TestServer } from '../support/test-server.ts';

const API = 'https://api.example.com/';
const machineSecret = 'machine-client-secret-long-enough';
const gatewaySecret = 'gateway-client-secret-long-enough';

let nextAddress = 1;
function freshAddress(): string {
  nextAddress += 1;
  return `10.92.${(nextAddress >> 8) & 255}.${nextAddress & 255}`;
}

/** An XFCC element as Envoy writes it: `Hash`, `Cert` (URL-encoded PEM), `Subject` quoted. */
function xfccElement(pem: string, subject = 'CN=svc-a'): string {
  const hash = createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
  return `By=spiffe://cluster.local/ns/default/sa/edge;Hash=${hash};Cert="${encodeURIComponent(pem)}";Subject="${subject}";URI=`;
}

/** A client-credentials token of `machine`, bound by the provider to the certificate `pem`. */
async function certificateBoundToken(provider: TestProvider, pem: string): Promise<string> {
  const response = await fetch(`${provider.issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`machine:${machineSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      [CLIENT_CERT_HEADER]: encodeURIComponent(pem),
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'api:read' }),
  });
  const body = (await response.json()) as { access_token?: string };
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.access_token!;
}

describe('certificate-bound tokens from a real provider, with the certificate as Envoy sends it', () => {
  let dir: string;
  let provider: TestProvider;
  let opaqueProvider: TestProvider;
  let opaqueToken: string;
  let server: TestServer;
  let client: EnvoyClient;
  let certA: string;
  let certB: string;
  let token: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cert-bound-'));
    const ca = makeCa(dir, 'clients-ca');
    certA = readFileSync(makeLeaf(dir, 'svc-a', ca, 'client').cert, 'utf8');
    certB = readFileSync(makeLeaf(dir, 'svc-b', ca, 'client').cert, 'utf8');
    provider = await startTestProvider({
      mtls: true,
      defaultResource: API,
      clients: [
        {
          clientId: 'machine',
          clientSecret: machineSecret,
          redirectUris: [],
          grantTypes: ['client_credentials'],
          certificateBound: true,
        },
        {
          clientId: 'gateway',
          clientSecret: gatewaySecret,
          redirectUris: ['https://api.example.com/oauth2/callback'],
        },
      ],
    });
    opaqueProvider = await startTestProvider({
      mtls: true,
      defaultResource: API,
      accessTokenFormat: 'opaque',
      clients: [
        {
          clientId: 'machine',
          clientSecret: machineSecret,
          redirectUris: [],
          grantTypes: ['client_credentials'],
          certificateBound: true,
        },
        {
          clientId: 'introspector',
          clientSecret: gatewaySecret,
          redirectUris: [],
          grantTypes: ['client_credentials'],
        },
      ],
    });
    const app = (name: string, host: string, mtls: Record<string, unknown>) => ({
      name,
      match: { hosts: [host] },
      oidc: { issuer: provider.issuer, clientId: 'gateway', clientSecret: gatewaySecret },
      session: { secrets: [testSessionSecret] },
      bearer: { enabled: true, audiences: [API], mtls },
    });
    server = await startTestServer({
      apps: [
        app('api', 'api.example.com', {}),
        app('edge', 'edge.example.com', { xfccHops: 1 }),
        app('off', 'off.example.com', { enabled: false }),
        {
          name: 'orders',
          match: { hosts: ['orders.example.com'] },
          oidc: {
            issuer: opaqueProvider.issuer,
            clientId: 'introspector',
            clientSecret: gatewaySecret,
          },
          session: { secrets: [testSessionSecret] },
          bearer: {
            enabled: true,
            audiences: [API],
            introspection: {
              enabled: true,
              clientId: 'introspector',
              clientSecret: gatewaySecret,
            },
          },
        },
      ],
    });
    client = grpcModeEnvoy(server);

    token = await certificateBoundToken(provider, certA);
    opaqueToken = await certificateBoundToken(opaqueProvider, certA);
  });

  after(async () => {
    client.close();
    await server.close();
    await provider.close();
    await opaqueProvider.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (
    options: { host?: string; certificate?: string; xfcc?: string; token?: string } = {},
  ): Promise<Outcome> =>
    client.check({
      url: `https://${options.host ?? 'api.example.com'}/v1/items`,
      headers: [
        ['authorization', `Bearer ${options.token ?? token}`],
        ...(options.xfcc === undefined ? [] : [['x-forwarded-client-cert', options.xfcc] as const]),
      ],
      sourceAddress: freshAddress(),
      ...(options.certificate === undefined ? {} : { certificate: options.certificate }),
    });

  const assertRefused = (outcome: Outcome, description: RegExp) => {
    assert.equal(statusOf(outcome), 401, JSON.stringify(outcome));
    const challenge = header(outcome, 'www-authenticate') ?? '';
    assert.match(challenge, /^Bearer realm="[^"]+", error="invalid_token"/);
    assert.match(challenge, description);
  };

  it('the provider bound the token to the certificate it was handed (cnf.x5t#S256)', () => {
    const cnf = decodeJwt(token)['cnf'] as Record<string, unknown>;
    const expected = createHash('sha256')
      .update(new X509Certificate(certA).raw)
      .digest('base64url');
    assert.equal(cnf['x5t#S256'], expected);
  });

  it('allows the token over a connection with its certificate (source.certificate)', async () => {
    const outcome = await call({ certificate: certA });
    assert.equal(outcome.kind, 'allow', JSON.stringify(outcome));
    assert.ok(outcome.kind === 'allow');
    assert.equal(outcome.upstream.headers.get('x-auth-request-user'), 'machine');
  });

  it('refuses it with another certificate, and with none', async () => {
    assertRefused(await call({ certificate: certB }), /not the one the token is bound to/);
    assertRefused(await call(), /none was presented/);
  });

  it('ignores x-forwarded-client-cert without trusted hops: a client cannot inject it', async () => {
    assertRefused(await call({ xfcc: xfccElement(certA) }), /none was presented/);
    assertRefused(
      await call({ xfcc: xfccElement(certA), certificate: certB }),
      /not the one the token is bound to/,
    );
  });

  it('with xfccHops 1, takes the certificate from the element the proxy wrote', async () => {
    const allowed = await call({ host: 'edge.example.com', xfcc: xfccElement(certA) });
    assert.equal(allowed.kind, 'allow', JSON.stringify(allowed));
    // Quoted values with escaped commas and semicolons do not split the element.
    const tricky = await call({
      host: 'edge.example.com',
      xfcc: xfccElement(certA, 'CN=svc\\,a;O=x\\;y,OU="q"'.replace(/"/g, '\\"')),
    });
    assert.equal(tricky.kind, 'allow', JSON.stringify(tricky));
  });

  it('with xfccHops 1, refuses an element the client injected before the proxy’s own', async () => {
    // APPEND_FORWARD: the client sent an element naming the victim's certificate; the proxy
    // appended the one it saw (the attacker's).
    const injected = `${xfccElement(certA)},${xfccElement(certB, 'CN=svc-b')}`;
    assertRefused(
      await call({ host: 'edge.example.com', xfcc: injected }),
      /not the one the token is bound to/,
    );
    // The connection's certificate is a proxy's there, never the client's.
    assertRefused(await call({ host: 'edge.example.com', certificate: certA }), /none/);
  });

  it('refuses malformed XFCC: unbalanced quotes, two Cert keys, a garbage PEM', async () => {
    const edge = (xfcc: string) => call({ host: 'edge.example.com', xfcc });
    const cert = encodeURIComponent(certA);
    assertRefused(await edge(`Cert="${cert}`), /none/);
    assertRefused(await edge(`Cert="${cert}";Cert="${encodeURIComponent(certB)}"`), /none/);
    assertRefused(await edge('Cert="%E0%A4%A"'), /none/);
    assertRefused(
      await edge(
        `Cert="${encodeURIComponent('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')}"`,
      ),
      /not the one/,
    );
  });

  it('verifies an opaque certificate-bound token through introspection (cnf.x5t#S256)', async () => {
    const orders = { host: 'orders.example.com', token: opaqueToken };
    const allowed = await call({ ...orders, certificate: certA });
    assert.equal(allowed.kind, 'allow', JSON.stringify(allowed));
    assertRefused(await call({ ...orders, certificate: certB }), /not the one/);
    assertRefused(await call(orders), /none was presented/);
  });

  it('refuses every certificate-bound token when bearer.mtls is off', async () => {
    assertRefused(
      await call({ host: 'off.example.com', certificate: certA }),
      /sender-constrained/,
    );
  });
});
