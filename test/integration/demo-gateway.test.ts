/** The demo's gateway and upstream page: Envoy's error path over real gRPC, escaping, hidden credentials. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startDevGateway, type DevRoute } from '../../dev/dev-gateway.ts';
import { EnvoyClient } from '../../dev/envoy-client.ts';
import { createIdentityUpstream, renderIdentityPage } from '../../dev/identity-page.ts';
import { loadUpstreamProtos } from '../../dev/upstream-protos.ts';
import { freePort } from '../support/server-process.ts';

const protos = loadUpstreamProtos();
const identityHeaders = ['x-auth-request-user', 'x-auth-request-email'];

describe('the development gateway', () => {
  it("answers 403 with an empty body when the check fails, as Envoy's status_on_error does, and says why without header values", async () => {
    const nobody = `127.0.0.1:${await freePort()}`;
    const envoy = new EnvoyClient({ target: nobody, protos, timeoutMs: 1_000 });
    const errors: string[] = [];
    const gateway = await startDevGateway({
      port: 0,
      route: { envoy, upstream: createIdentityUpstream({ identityHeaders }) },
      onError: (message) => errors.push(message),
    });
    try {
      const response = await fetch(`${gateway.url}/`, {
        headers: { cookie: '_eoa=secret-session-value' },
      });
      assert.equal(response.status, 403);
      assert.equal(await response.text(), '');
      assert.equal(errors.length, 1);
      assert.match(errors[0] ?? '', /check failed \(gRPC code 14\)/);
      assert.doesNotMatch(errors[0] ?? '', /secret-session-value/);
    } finally {
      await gateway.close();
      envoy.close();
    }
  });

  it('answers 503 while its route never comes, rather than hanging or letting requests through', async () => {
    const route = Promise.reject<DevRoute>(new Error('server did not start'));
    const gateway = await startDevGateway({ port: 0, route });
    try {
      const response = await fetch(`${gateway.url}/`);
      assert.equal(response.status, 503);
      assert.match(await response.text(), /did not start/);
    } finally {
      await gateway.close();
    }
  });

  it('refuses a body larger than its limit with 413 before asking the server', async () => {
    const envoy = new EnvoyClient({ target: `127.0.0.1:${await freePort()}`, protos });
    const gateway = await startDevGateway({
      port: 0,
      maxBodyBytes: 16,
      route: { envoy, upstream: createIdentityUpstream({ identityHeaders }) },
    });
    try {
      const response = await fetch(`${gateway.url}/`, { method: 'POST', body: 'x'.repeat(64) });
      assert.equal(response.status, 413);
    } finally {
      await gateway.close();
      envoy.close();
    }
  });
});

describe('the identity page', () => {
  const request = (headers: Record<string, string>, path = '/') => ({
    method: 'GET',
    path,
    authority: '127.0.0.1:8080',
    scheme: 'http',
    headers: new Map(Object.entries(headers)),
  });

  it('escapes identity values and the path, which come from claims and the client', () => {
    const page = renderIdentityPage(
      request(
        { 'x-auth-request-user': '<script>alert(1)</script>', 'x-auth-request-email': 'a"b@x' },
        '/"><img src=x>',
      ),
      { identityHeaders },
    );
    assert.doesNotMatch(page.body, /<script>|<img/);
    assert.match(page.body, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.match(page.body, /a&quot;b@x/);
    assert.match(page.body, /id="logout" href="\/oauth2\/logout"/);
    assert.ok(
      page.headers.some(
        ([n, v]) => n === 'content-security-policy' && v.includes("default-src 'none'"),
      ),
    );
  });

  it('shows cookie names but never their values, and offers sign-in when no identity arrived', () => {
    const page = renderIdentityPage(
      request({ cookie: '_session=provider-secret; theme=dark', authorization: 'Bearer abc.def' }),
      { identityHeaders },
    );
    assert.match(page.body, /_session, theme \(values hidden\)/);
    assert.doesNotMatch(page.body, /provider-secret|dark|abc\.def/);
    assert.match(page.body, /You are not signed in/);
    assert.match(page.body, /id="sign-in" href="\/"/);
    assert.doesNotMatch(page.body, /id="logout"/);
  });
});
