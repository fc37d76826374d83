/**
 * The log of a real server over a real OpenID Provider for logouts and rule denials: an
 * RP-initiated logout, a back-channel logout accepted and refused, and a deny by a rule each
 * leave one info line with the request id and what happened, never a token.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import type { TestProvider } from '../../dev/test-provider.ts';
import { createSubjectLabel } from '../../src/observability/subject-label.ts';
import { BACKCHANNEL_LOGOUT_EVENT } from '../../src/oidc/logout-token.ts';
import { grpcModeEnvoy } from '../support/both-modes.ts';
import { AppBrowser, statusOf } from '../support/browser.ts';
import type { EnvoyClient } from '../support/envoy-client.ts';
import { startAppStack, testSessionSecret, type TestServer } from '../support/test-server.ts';
import { captureLog } from '../resilience/log-capture.ts';

const origin = 'https://grafana.example.com';
const logoutPath = '/oauth2/backchannel-logout';
const clientSecret = 'Hx4Rt8Np2Vc6Lz0Qw3Jm7Bf1Ks5Yd9Ga';

describe('logout and rule log lines', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;
  const log = captureLog();

  before(async () => {
    ({ provider, server } = await startAppStack(
      {
        name: 'grafana',
        clientSecret,
        client: { backchannelLogoutUri: `http://127.0.0.1:9${logoutPath}` },
        oidc: { backchannelLogoutPath: logoutPath, probeInterval: '1h' },
        app: {
          passIdToken: true,
          authorization: { paths: [{ prefix: '/admin', allowedEmails: ['root@example.com'] }] },
        },
      },
      { logger: log.logger },
    ));
    envoy = grpcModeEnvoy(server, { withRequestBody: true });
  });
  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  /** The lines written while `run` ran. */
  async function linesDuring(run: () => Promise<unknown>) {
    const from = log.lines().length;
    await run();
    return log.lines().slice(from);
  }

  async function signIn(): Promise<{ browser: AppBrowser; sid: string }> {
    const browser = new AppBrowser(envoy);
    await browser.login(`${origin}/`);
    const served = await browser.request(`${origin}/dashboards`);
    assert.equal(served.kind, 'allow');
    const idToken =
      served.kind === 'allow' ? (served.upstream.headers.get('x-id-token') ?? '') : '';
    return { browser, sid: String(decodeJwt(idToken)['sid']) };
  }

  const postLogoutToken = (token: string) =>
    envoy.check({
      method: 'POST',
      url: `${origin}${logoutPath}`,
      headers: [['content-type', 'application/x-www-form-urlencoded']],
      body: new URLSearchParams({ logout_token: token }).toString(),
    });

  it('a deny by a rule: one info line naming the rule', async () => {
    const { browser } = await signIn();
    const lines = await linesDuring(async () => {
      assert.equal(statusOf(await browser.request(`${origin}/admin/users`)), 403);
    });
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]?.['level'], 'info');
    assert.equal(lines[0]?.['msg'], 'denied by a rule');
    assert.equal(lines[0]?.['app'], 'grafana');
    assert.equal(lines[0]?.['via'], 'session');
    assert.equal(typeof lines[0]?.['requestId'], 'string');
    assert.ok(String(lines[0]?.['rule']).length > 0);
  });

  it('an RP-initiated logout: one info line with the hashed sub', async () => {
    const { browser } = await signIn();
    const lines = await linesDuring(async () => {
      assert.equal(statusOf(await browser.request(`${origin}/oauth2/logout`)), 302);
    });
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]?.['msg'], 'signed out');
    assert.equal(lines[0]?.['sub'], createSubjectLabel('hash', testSessionSecret)('alice'));
    assert.equal(typeof lines[0]?.['requestId'], 'string');
  });

  it('a back-channel logout: one line when refused (and why), one when accepted', async () => {
    const { sid } = await signIn();
    const forged = `${Buffer.from('{"alg":"none"}').toString('base64url')}.e30.\r\né`;
    const refused = await linesDuring(async () => {
      assert.equal(statusOf(await postLogoutToken(forged)), 400);
    });
    assert.equal(refused.length, 1, JSON.stringify(refused));
    assert.equal(refused[0]?.['msg'], 'provider logout refused');
    assert.equal(refused[0]?.['reason'], 'logout token invalid');

    const now = Math.floor(Date.now() / 1000);
    const token = await provider.signJwt({
      iss: provider.issuer,
      aud: 'grafana',
      iat: now,
      exp: now + 120,
      jti: randomUUID(),
      sub: 'alice',
      sid,
      events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    });
    const accepted = await linesDuring(async () => {
      assert.equal(statusOf(await postLogoutToken(token)), 200);
    });
    assert.equal(accepted.length, 1, JSON.stringify(accepted));
    assert.equal(accepted[0]?.['msg'], 'provider logout accepted');
    assert.equal(accepted[0]?.['app'], 'grafana');
    assert.ok(!log.text().includes(token), 'the logout token is never logged');
  });
});
