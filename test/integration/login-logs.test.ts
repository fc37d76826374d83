/**
 * The log of a real server over a real OpenID Provider: a completed login leaves one info line
 * (app, request id, the hashed `sub`, duration) and each failed callback one warn line with its
 * classified cause and a hint where one is known, never a code, token, cookie or secret.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { createSubjectLabel } from '../../src/observability/subject-label.ts';
import { captureLog, type CapturedLog } from '../resilience/log-capture.ts';
import { AppBrowser, statusOf } from '../support/browser.ts';
import { EnvoyClient } from '../support/envoy-client.ts';
import {
  signInAppConfig,
  startTestServer,
  testSessionSecret,
  type TestServer,
} from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const clientSecret = 'login-logs-client-secret-0123456789';
// Letters and digits: no Basic-encoding hint applies, so the generic one is shown.
const wrongSecret = 'notTheSecretTheProviderHas0123456789';

describe('login log lines', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;
  let log: CapturedLog;

  /** The lines of each callback, by its `x-request-id` (the test's handle on it). */
  const written = new Map<string, readonly Record<string, unknown>[]>();
  const linesOf = (id: string) => written.get(id) ?? [];

  /** Sends one request and keeps the lines written meanwhile; each carries a request id. */
  async function send(browser: AppBrowser, url: string, id: string) {
    const from = log.lines().length;
    const answer = await browser.request(url, { headers: [['x-request-id', id]] });
    const lines = log.lines().slice(from);
    for (const line of lines)
      assert.equal(typeof line['requestId'], 'string', line['msg'] as string);
    written.set(id, lines);
    return answer;
  }

  before(async () => {
    provider = await startTestProvider({
      clients: [
        ...['web', 'wrong'].map((name) => ({
          clientId: name,
          clientSecret,
          redirectUris: [`https://${name}.example.com/oauth2/callback`],
        })),
        {
          clientId: 'es',
          clientSecret,
          redirectUris: ['https://es.example.com/oauth2/callback'],
          idTokenSignedResponseAlg: 'ES256' as const,
        },
      ],
    });
    log = captureLog();
    const quiet = { probeInterval: '1h' };
    server = await startTestServer(
      {
        apps: [
          signInAppConfig({ name: 'web', clientSecret, oidc: quiet }, provider.issuer),
          signInAppConfig(
            { name: 'wrong', clientSecret: wrongSecret, oidc: quiet },
            provider.issuer,
          ),
          // The provider signs this client's ID tokens with ES256, which the app refuses.
          signInAppConfig(
            { name: 'es', clientSecret, oidc: { ...quiet, idTokenAlgs: ['RS256'] } },
            provider.issuer,
          ),
        ],
      },
      { logger: log.logger },
    );
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 });
  });
  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  /** Runs a login up to the callback, then sends the callback with request id `id`. */
  async function callback(host: string, id: string) {
    const browser = new AppBrowser(envoy);
    const { callbackUrl } = await browser.startAndAuthenticate(`https://${host}/reports`);
    const answer = await send(browser, callbackUrl.href, id);
    return { answer, code: callbackUrl.searchParams.get('code') ?? '' };
  }

  function assertNothingSecret(code: string): void {
    const text = log.text();
    assert.ok(code.length > 0 && !text.includes(code), 'no authorization code is logged');
    assert.ok(!text.includes(clientSecret) && !text.includes(wrongSecret), 'no client secret');
    assert.ok(!text.includes(testSessionSecret), 'no session secret');
    assert.ok(!/eyJ[\w-]+\.eyJ/.test(text), 'no JWT');
  }

  it('a completed login: one info line with the hashed sub and the duration', async () => {
    const id = randomUUID();
    const { answer, code } = await callback('web.example.com', id);
    assert.equal(statusOf(answer), 302);
    const lines = linesOf(id);
    assert.equal(lines.length, 1, JSON.stringify(lines));
    const [line] = lines;
    assert.equal(line?.['level'], 'info');
    assert.equal(line?.['msg'], 'signed in');
    assert.equal(line?.['app'], 'web');
    assert.equal(line?.['sub'], createSubjectLabel('hash', testSessionSecret)('alice'));
    assert.match(String(line?.['sub']), /^[\w-]{16}$/);
    assert.equal(typeof line?.['durationMs'], 'number');
    assert.ok(Number(line?.['durationMs']) >= 0);
    assert.ok(!log.text().includes('"alice"'), 'the plain sub is not logged by default');
    assertNothingSecret(code);
  });

  it('the same user gets the same label on every login', async () => {
    const [first, second] = [randomUUID(), randomUUID()];
    await callback('web.example.com', first);
    await callback('web.example.com', second);
    const sub = (id: string) => linesOf(id)[0]?.['sub'];
    assert.equal(typeof sub(first), 'string');
    assert.equal(sub(first), sub(second));
  });

  it('a callback without a login state: one warn line, outcome state', async () => {
    const id = randomUUID();
    const browser = new AppBrowser(envoy);
    const answer = await send(
      browser,
      `https://web.example.com/oauth2/callback?code=${'c'.repeat(40)}&state=%0D%0A%C3%A9`,
      id,
    );
    assert.equal(statusOf(answer), 400);
    const lines = linesOf(id);
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]?.['level'], 'warn');
    assert.equal(lines[0]?.['outcome'], 'state');
    assert.equal(lines[0]?.['app'], 'web');
    assert.ok(!log.text().includes('c'.repeat(40)), 'the code is not logged');
  });

  it('a provider refusing the client secret: one warn line, outcome token_refused, a hint', async () => {
    const id = randomUUID();
    const { answer, code } = await callback('wrong.example.com', id);
    assert.equal(statusOf(answer), 401);
    const lines = linesOf(id);
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]?.['level'], 'warn');
    assert.equal(lines[0]?.['outcome'], 'token_refused');
    assert.equal(lines[0]?.['app'], 'wrong');
    assert.match(String(lines[0]?.['detail']), /invalid_client/);
    assert.match(String(lines[0]?.['hint']), /oidc\.clientSecret/);
    assert.equal(lines[0]?.['status'], 401);
    assert.equal(
      log.matching(/refused the client credentials/).length,
      0,
      'no second line without the request id',
    );
    assertNothingSecret(code);
  });

  it('an ID token signed with a refused algorithm: one warn line, outcome id_token', async () => {
    const id = randomUUID();
    const { answer, code } = await callback('es.example.com', id);
    assert.equal(statusOf(answer), 401);
    const lines = linesOf(id);
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]?.['level'], 'warn');
    assert.equal(lines[0]?.['outcome'], 'id_token');
    assert.equal(lines[0]?.['code'], 'TOKEN_INVALID');
    assert.match(String(lines[0]?.['hint']), /idTokenAlgs/, JSON.stringify(lines[0]));
    assertNothingSecret(code);
  });
});
