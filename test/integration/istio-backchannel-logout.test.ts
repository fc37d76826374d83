/**
 * Back-channel logout behind Istio, wired as istio/ ships it: the provider's POST reaches the
 * server's HTTP listener through istio/backchannel-logout-route.yaml, with its body and the
 * app's Host, and ends the session; the same POST through Istio's CUSTOM check, which sends no
 * body, is refused with 400 — why the policy leaves that one request out of the check.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import type { TestProvider } from '../../dev/test-provider.ts';
import { BACKCHANNEL_LOGOUT_EVENT } from '../../src/oidc/logout-token.ts';
import { istioDocument } from '../deploy/istio-documents.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import { AppBrowser, statusOf } from '../support/browser.ts';
import type { EnvoyClient } from '../support/envoy-client.ts';
import { startAppStack, type TestServer } from '../support/test-server.ts';

// Parsed YAML walked by known paths: a wrong path throws and fails the test.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

/** The grafana app of the ConfigMap's server config. */
const shippedApp: Doc = parse(
  istioDocument('configmap.yaml').data['config.yaml'] as string,
).apps.find((app: Doc) => app.name === 'grafana');

/** The route that takes the provider's POST: its match and its destination. */
const route: Doc = istioDocument('backchannel-logout-route.yaml').spec.http[0];

const host: string = shippedApp.match.hosts[0];
const origin = `https://${host}`;

/** The request the route sends to the server's HTTP listener, answered with its status. */
function postThroughRoute(httpBase: string, body: string): Promise<number> {
  const target = new URL(route.match[0].uri.exact as string, httpBase);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      target,
      {
        method: route.match[0].method.exact as string,
        // The gateway keeps the authority the provider sent: the app's host picks the app.
        headers: {
          host,
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
          'x-request-id': 'istio-route',
        },
      },
      (incoming) => {
        incoming.resume();
        incoming.on('end', () => resolve(incoming.statusCode ?? 0));
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

describe('back-channel logout through the shipped Istio route', () => {
  let provider: TestProvider;
  let server: TestServer;
  // Istio's gRPC provider: no context_extensions, no body.
  let istio: EnvoyClient;

  before(async () => {
    assert.equal(shippedApp.oidc.backchannelLogoutPath, route.match[0].uri.exact);
    ({ provider, server } = await startAppStack({
      name: 'grafana',
      clientSecret: 'Hx4Rt8Np2Vc6Lz0Qw3Jm7Bf1Ks5Yd9Ga',
      // Registered so that ID tokens carry `sid`; the test delivers the token itself.
      client: { backchannelLogoutUri: `${origin}${shippedApp.oidc.backchannelLogoutPath}` },
      oidc: { backchannelLogoutPath: shippedApp.oidc.backchannelLogoutPath },
      app: { match: shippedApp.match },
    }));
    istio = grpcModeEnvoy(server);
  });

  after(async () => {
    istio.close();
    await server.close();
    await provider.close();
  });

  async function logoutToken(): Promise<string> {
    const [session] = provider.findSessions({ accountId: 'alice' });
    const sid = session?.clients.find((c) => c.clientId === 'grafana')?.sid;
    assert.ok(sid, 'the provider session names the client with a sid');
    const now = Math.floor(Date.now() / 1000);
    return provider.signJwt({
      aud: 'grafana',
      iat: now,
      exp: now + 120,
      jti: randomUUID(),
      sub: 'alice',
      sid,
      events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    });
  }

  it('ends the session when the POST comes through the route, body and Host as sent', async () => {
    const browser = new AppBrowser(istio);
    await browser.login(`${origin}/dashboards`);
    assert.equal((await browser.request(`${origin}/dashboards`)).kind, 'allow');

    const form = new URLSearchParams({ logout_token: await logoutToken() }).toString();
    // Without the route, the policy's check would see the POST without its body: refused.
    const checked = await istio.check({
      method: 'POST',
      url: `${origin}${shippedApp.oidc.backchannelLogoutPath}`,
      headers: [['content-type', 'application/x-www-form-urlencoded']],
    });
    assert.equal(statusOf(checked), 400, 'a check without the body cannot log anyone out');
    assert.equal((await browser.request(`${origin}/dashboards`)).kind, 'allow', 'still in');

    assert.equal(await postThroughRoute(server.httpBase, form), 200);
    const after = await browser.request(`${origin}/dashboards`);
    assert.equal(statusOf(after), 302, 'signed out: the next visit is sent to log in');
  });
});
