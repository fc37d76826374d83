/**
 * Attack class: logout forced by another site (logout CSRF). A page elsewhere links, embeds or
 * auto-submits a request to the logout path; a signed-in user who visits it is signed out
 * (and, chained with login CSRF, signed in as the attacker). Each row is what the browser sends
 * for such a page, through a real Check decoded with Envoy's upstream protos, and the safe
 * outcome: a confirmation page (403, not framable) and the session intact. The rows after them
 * are the logouts a user really asked for, which still end the session.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestProvider } from '../../dev/test-provider.ts';
import { captureLog, type CapturedLog } from '../resilience/log-capture.ts';
import {
  grpcModeEnvoy,
  shippedEnvoyHttpLists,
  shippedIstioHttpLists,
} from '../support/both-modes.ts';
import {
  AppBrowser,
  locationOf,
  setCookieLines,
  deniedHeader as header,
} from '../support/browser.ts';
import { HttpModeClient, type EnvoyClient } from '../support/envoy-client.ts';
import { startAppStack, type TestServer } from '../support/test-server.ts';

const origin = 'https://grafana.example.com';
const logoutUrl = `${origin}/oauth2/logout`;
const clientSecret = 'Zt8Kq3Wn6Rb1Yv4Hc7Lm0Px5Sd9Gf2Ja';

type Headers = readonly (readonly [string, string])[];

interface Row {
  readonly request: string;
  readonly method: string;
  readonly headers: Headers;
}

const forced: readonly Row[] = [
  {
    request: 'a link on another site, followed (top-level GET)',
    method: 'GET',
    headers: [
      ['sec-fetch-site', 'cross-site'],
      ['sec-fetch-dest', 'document'],
    ],
  },
  {
    request: '<img src> on another site',
    method: 'GET',
    headers: [
      ['sec-fetch-site', 'cross-site'],
      ['sec-fetch-dest', 'image'],
    ],
  },
  {
    request: 'a link on a sibling subdomain (same-site, another origin)',
    method: 'GET',
    headers: [['sec-fetch-site', 'same-site']],
  },
  {
    request: 'an auto-submitted form on another site (POST)',
    method: 'POST',
    headers: [
      ['sec-fetch-site', 'cross-site'],
      ['origin', 'https://evil.example'],
      ['content-type', 'application/x-www-form-urlencoded'],
    ],
  },
  {
    request: 'a form POST from an old browser: a foreign Origin, no fetch metadata',
    method: 'POST',
    headers: [['origin', 'https://evil.example']],
  },
  {
    request: 'a form POST from a sandboxed frame (Origin: null)',
    method: 'POST',
    headers: [['origin', 'null']],
  },
  {
    request: 'a cross-site prefetch (HEAD)',
    method: 'HEAD',
    headers: [['sec-fetch-site', 'cross-site']],
  },
];

const wanted: readonly Row[] = [
  {
    request: 'the app’s own logout link',
    method: 'GET',
    headers: [['sec-fetch-site', 'same-origin']],
  },
  { request: 'the URL typed or bookmarked', method: 'GET', headers: [['sec-fetch-site', 'none']] },
  {
    request: 'the confirmation page’s button (POST, same origin)',
    method: 'POST',
    headers: [
      ['sec-fetch-site', 'same-origin'],
      ['origin', origin],
    ],
  },
  {
    request: 'an old browser’s same-origin POST (Origin only)',
    method: 'POST',
    headers: [['origin', origin]],
  },
  { request: 'curl or a browser without fetch metadata (GET)', method: 'GET', headers: [] },
];

describe('cross-site logout', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;
  let log: CapturedLog;

  before(async () => {
    log = captureLog('info');
    ({ provider, server } = await startAppStack(
      {
        name: 'grafana',
        clientSecret,
        client: { postLogoutRedirectUris: [`${origin}/`] },
        oidc: { postLogoutRedirectUri: `${origin}/` },
      },
      { logger: log.logger },
    ));
    envoy = grpcModeEnvoy(server);
  });

  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  async function signedIn(): Promise<AppBrowser> {
    const browser = new AppBrowser(envoy);
    await browser.login(`${origin}/`);
    assert.equal((await browser.request(`${origin}/dashboards`)).kind, 'allow');
    return browser;
  }

  for (const row of forced) {
    it(`${row.request}: a confirmation page, and the session lives on`, async () => {
      const browser = await signedIn();
      const before = log.matching(/cross-site logout not executed/).length;
      const outcome = await browser.request(logoutUrl, {
        method: row.method,
        headers: row.headers,
        navigate: false,
      });
      assert.equal(outcome.kind === 'deny' && outcome.status, 403, JSON.stringify(outcome));
      assert.deepEqual(setCookieLines(outcome), [], 'no cookie is touched');
      assert.equal(locationOf(outcome), undefined, 'no redirect to the provider');
      assert.equal(header(outcome, 'content-type'), 'text/html; charset=utf-8');
      assert.equal(header(outcome, 'x-frame-options'), 'DENY');
      assert.match(header(outcome, 'content-security-policy') ?? '', /frame-ancestors 'none'/);
      assert.match(
        outcome.kind === 'deny' ? outcome.body : '',
        /<form method="post" action="\/oauth2\/logout"><button type="submit">Sign out<\/button><\/form>/,
      );
      assert.equal(log.matching(/cross-site logout not executed/).length - before, 1);
      assert.equal(
        (await browser.request(`${origin}/dashboards`)).kind,
        'allow',
        'still signed in',
      );
    });
  }

  for (const row of wanted) {
    it(`${row.request}: signed out, sent to the provider`, async () => {
      const browser = await signedIn();
      const outcome = await browser.request(logoutUrl, {
        method: row.method,
        headers: row.headers,
        navigate: false,
      });
      assert.equal(outcome.kind === 'deny' && outcome.status, 302, JSON.stringify(outcome));
      assert.ok(locationOf(outcome)!.startsWith(`${provider.issuer}/session/end`));
      const after = await browser.request(`${origin}/dashboards`);
      assert.equal(after.kind === 'deny' && after.status, 302, 'signed out: back to login');
    });
  }

  it('the confirmation page’s button signs out what the cross-site link did not', async () => {
    const browser = await signedIn();
    const page = await browser.request(logoutUrl, {
      headers: [['sec-fetch-site', 'cross-site']],
      navigate: false,
    });
    assert.equal(page.kind === 'deny' && page.status, 403);
    const action = /<form method="post" action="([^"]+)">/.exec(
      page.kind === 'deny' ? page.body : '',
    )?.[1];
    const confirmed = await browser.request(`${origin}${action}`, {
      method: 'POST',
      headers: [
        ['sec-fetch-site', 'same-origin'],
        ['origin', origin],
      ],
      navigate: false,
    });
    assert.equal(confirmed.kind === 'deny' && confirmed.status, 302);
    assert.ok(locationOf(confirmed)!.startsWith(`${provider.issuer}/session/end`));
    // Any deny would do for "not allowed"; a session that ended is sent to log in again.
    const after = await browser.request(`${origin}/dashboards`);
    assert.equal(after.kind === 'deny' && after.status, 302, 'the session ended');
    assert.ok(locationOf(after)!.startsWith(`${provider.issuer}/auth?`), locationOf(after));
  });

  it('HTTP mode: the page is shown to the browser, never forwarded as an allow', async () => {
    const http = new HttpModeClient({
      baseUrl: server.httpBase,
      allowedHeaders: ['cookie', 'accept', 'sec-fetch-site', 'origin'],
      timeoutMs: 5_000,
    });
    try {
      const browser = await signedIn();
      const outcome = await http.check({
        url: logoutUrl,
        headers: [
          ['cookie', browser.cookieHeader() ?? ''],
          ['sec-fetch-site', 'cross-site'],
        ],
      });
      assert.equal(outcome.kind === 'deny' && outcome.status, 403);
      assert.match(outcome.kind === 'deny' ? outcome.body : '', /Sign out\?/);
      assert.equal((await browser.request(`${origin}/dashboards`)).kind, 'allow');
    } finally {
      http.close();
    }
  });

  // The page's protection against framing is two response headers. In HTTP mode Envoy passes
  // a deny's headers to the browser only when `allowed_client_headers` lists them: with the
  // shipped lists the page lost both and could be framed under another site's page, its
  // button clickjacked into the very logout it stands in for.
  for (const [name, lists] of [
    ['envoy/envoy-http.yaml', shippedEnvoyHttpLists()],
    ['Istio provider', shippedIstioHttpLists()],
  ] as const) {
    it(`HTTP mode (${name}): the page reaches the browser unframable`, async () => {
      const http = new HttpModeClient({ baseUrl: server.httpBase, timeoutMs: 5_000, ...lists });
      try {
        const outcome = await http.check({
          url: logoutUrl,
          headers: [['sec-fetch-site', 'cross-site']],
        });
        assert.equal(outcome.kind === 'deny' && outcome.status, 403);
        assert.equal(header(outcome, 'x-frame-options'), 'DENY');
        assert.match(header(outcome, 'content-security-policy') ?? '', /frame-ancestors 'none'/);
      } finally {
        http.close();
      }
    });
  }
});
