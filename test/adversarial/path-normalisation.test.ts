/**
 * Attack class: path and host normalisation. Each row is a request an attacker sends through
 * Envoy, and the safe outcome: never let through where an upstream would read the path or host
 * as something stricter than what was checked. Every row runs in both modes: gRPC (the
 * CheckResponse decoded with Envoy's upstream protos) and HTTP (`http_service`, the answer
 * applied as Envoy applies it).
 *
 * The deployment: `grafana.example.com` is its own app; on `example.com` an `admin` app owns
 * `/admin/` (members of `admins` only) and a `web` app the rest, with `/public/` public, a bearer
 * scope rule on `/ops/` and a claim rule on `/billing/`; `api.example.com` has a bearer scope rule
 * on `/admin/`; other hosts are let through untouched
 * (`allowUnmatched`). The attacker holds no session, or a valid bearer token of a plain user
 * (scope `read`, group `staff`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { grpcModeEnvoy, httpModeEnvoy } from '../support/both-modes.ts';
import type { Outcome } from '../support/envoy-client.ts';
import { startTestServer, testApp, type TestServer } from '../support/test-server.ts';

const API = 'https://api.example.com/';

/** `allow`, or the HTTP status of the deny the client gets. */
type Expected = 'allow' | 400 | 401 | 403;

interface Attack {
  readonly path: string;
  /** Default `example.com`. */
  readonly host?: string;
  /** Default `GET`. */
  readonly method?: string;
  /** Default: none. */
  readonly token?: 'user';
  readonly expect: Expected;
}

const attacks: readonly Attack[] = [
  // Borrowing the public prefix: `;` parameters (Tomcat, Jetty, Spring strip them before `..`).
  { path: '/public/..;/admin', expect: 400 },
  { path: '/public/x/..;/..;/admin', expect: 400 },
  { path: '/public/..;jsessionid=x/admin', expect: 400 },
  { path: '/public/..;a=b;c=d/admin', expect: 400 },
  { path: '/public/..;/admin', method: 'HEAD', expect: 400 },
  { path: '/public/..;/admin', method: 'POST', expect: 400 },
  // With a token the catch-all app accepts, the bare segment must not be decided by that app.
  { path: '/public/..;/admin', token: 'user', expect: 400 },
  { path: '/public/../admin', token: 'user', expect: 400 },
  { path: '/admin;v=1', token: 'user', expect: 400 },
  { path: '/public/..;/admin/secret', expect: 400 },
  { path: '/public/..;/..;/..;/admin/secret', expect: 400 },
  // … dot segments, encoded or not.
  { path: '/public/../admin', expect: 400 },
  { path: '/public/./../admin', expect: 400 },
  { path: '/public//../admin', expect: 400 },
  { path: '/public/%2e%2e/admin', expect: 400 },
  { path: '/public/.%2e/admin', expect: 400 },
  { path: '/public/%2e%2e;/admin', expect: 400 },
  { path: '/public/..%3b/admin', expect: 400 },
  { path: '/public/..%2fadmin', expect: 400 },
  { path: '/public/..%5cadmin', expect: 400 },
  { path: '/public/..\\admin', expect: 400 },
  { path: '/public/..%2f..%2fadmin/secret', expect: 400 },
  // … layers of encoding (servers that decode until nothing changes).
  { path: '/public/%252e%252e/admin', expect: 400 },
  { path: '/public/%25252e%25252e/admin', expect: 400 },
  { path: '/public/%2525252e%2525252e/admin', expect: 400 },
  { path: '/public/..%253b/admin', expect: 400 },
  // … overlong UTF-8, NUL, IIS `%u`, full-width dots and slashes (NFKC).
  { path: '/public/%c0%ae%c0%ae/admin', expect: 400 },
  { path: '/public/..%c0%afadmin', expect: 400 },
  { path: '/public/%e0%80%ae%e0%80%ae/admin', expect: 400 },
  { path: '/public/x%00.js', expect: 400 },
  { path: '/public/x%2500.js', expect: 400 },
  { path: '/public/%u002e%u002e/admin', expect: 400 },
  { path: '/public/%ef%bc%8e%ef%bc%8e/admin', expect: 400 },
  { path: '/public/..%ef%bc%8fadmin', expect: 400 },

  // Choosing the laxer app: readings that disagree about the app are refused.
  { path: '/x/../admin/secret', token: 'user', expect: 400 },
  { path: '/./admin/secret', token: 'user', expect: 400 },
  { path: '/%61dmin/secret', token: 'user', expect: 400 },
  { path: '/adm%69n/secret', token: 'user', expect: 400 },
  { path: '//admin/secret', token: 'user', expect: 400 },
  { path: '///admin/secret', token: 'user', expect: 400 },
  { path: '/admin;x/secret', token: 'user', expect: 400 },
  { path: '/admin;/secret', token: 'user', expect: 400 },
  { path: '/admin;jsessionid=1/secret', token: 'user', expect: 400 },
  { path: '/x/..;/admin/secret', token: 'user', expect: 400 },
  { path: '/x/%2e%2e/admin/secret', token: 'user', expect: 400 },
  { path: '/x/..%2fadmin/secret', token: 'user', expect: 400 },
  { path: '/x/..%5cadmin/secret', token: 'user', expect: 400 },
  { path: '/x\\..\\admin\\secret', token: 'user', expect: 400 },
  { path: '/admin%2fsecret', token: 'user', expect: 400 },
  { path: '/admin%5csecret', token: 'user', expect: 400 },
  { path: '/admin\\secret', token: 'user', expect: 400 },
  { path: '/admin%3bx/secret', token: 'user', expect: 400 },
  { path: '/%2561dmin/secret', token: 'user', expect: 400 },
  { path: '/%252561dmin/secret', token: 'user', expect: 400 },
  { path: '/%25252561dmin/secret', token: 'user', expect: 400 },
  { path: '/%ef%bd%81dmin/secret', token: 'user', expect: 400 },
  { path: '/x/%ef%bc%8e%ef%bc%8e/admin/secret', token: 'user', expect: 400 },
  { path: '/%c0%afadmin/secret', token: 'user', expect: 400 },
  { path: '/%61dmin/secret', method: 'HEAD', token: 'user', expect: 400 },
  { path: '//admin/secret', method: 'POST', token: 'user', expect: 400 },

  // Escaping a bearer scope rule on `/ops/`.
  { path: '/ops;v=1/x', token: 'user', expect: 403 },
  { path: '/ops;/x', token: 'user', expect: 403 },
  { path: '/%6fps/x', token: 'user', expect: 403 },
  { path: '/x/../ops/x', token: 'user', expect: 403 },
  { path: '//ops/x', token: 'user', expect: 403 },
  { path: '/ops%2fx', token: 'user', expect: 403 },
  { path: '/%256fps/x', token: 'user', expect: 403 },
  { path: '/%25256fps/x', token: 'user', expect: 403 },
  { path: '/ops\\x', token: 'user', expect: 403 },
  { path: '/x/..;/ops/x', token: 'user', expect: 403 },
  { path: '/%ef%bd%8fps/x', token: 'user', expect: 403 },
  { path: '/ops%3bx/y', token: 'user', expect: 403 },
  // The segment itself, without its slash: servlet containers map `/ops` to `/ops/*` (Servlet
  // §12.2) and Express's default non-strict routing serves `/ops` as `/ops/`.
  { path: '/ops', token: 'user', expect: 403 },
  { path: '/ops;v=1', token: 'user', expect: 403 },
  { path: '/x/../ops', token: 'user', expect: 403 },
  { path: '/%6fps', token: 'user', expect: 403 },

  // Escaping a bearer scope rule on `/admin/` of an API host, as reported.
  { host: 'api.example.com', path: '/admin;v=1/x', token: 'user', expect: 403 },
  { host: 'api.example.com', path: '/admin;jsessionid=1/x', token: 'user', expect: 403 },
  { host: 'api.example.com', path: '/x/..;/admin/x', token: 'user', expect: 403 },
  { host: 'api.example.com', path: '/%2561dmin/x', token: 'user', expect: 403 },
  { host: 'api.example.com', path: '/admin', token: 'user', expect: 403 },
  { host: 'api.example.com', path: '/admin;jsessionid=1', token: 'user', expect: 403 },

  // Escaping a claim rule on `/billing/`.
  { path: '/billing;v=1/x', token: 'user', expect: 403 },
  { path: '/billing;/x', token: 'user', expect: 403 },
  { path: '/%62illing/x', token: 'user', expect: 403 },
  { path: '/%2562illing/x', token: 'user', expect: 403 },
  { path: '/x/..;/billing/x', token: 'user', expect: 403 },
  { path: '//billing/x', token: 'user', expect: 403 },
  { path: '/%ef%bd%82illing/x', token: 'user', expect: 403 },
  { path: '/billing%3bx/y', token: 'user', expect: 403 },
  { path: '/billing', token: 'user', expect: 403 },
  { path: '/billing;v=1', token: 'user', expect: 403 },

  // Host tricks: the same host to DNS and Envoy must be the same app here; odd hosts are refused.
  { host: 'Grafana.Example.com.', path: '/', expect: 401 },
  { host: 'grafana.example.com.', path: '/', expect: 401 },
  { host: 'grafana.example.com.:443', path: '/', expect: 401 },
  { host: 'a.Grafana.example.com.', path: '/', expect: 401 },
  { host: 'GRAFANA.EXAMPLE.COM', path: '/', expect: 401 },
  { host: 'grafana.example.com:443', path: '/', expect: 401 },
  { host: 'grafana.example.com%00', path: '/', expect: 400 },
  { host: 'grafana.example.com%2e', path: '/', expect: 400 },
  { host: 'grafana%2eexample.com', path: '/', expect: 400 },
  { host: 'grafana..example.com', path: '/', expect: 400 },
  { host: '.grafana.example.com', path: '/', expect: 400 },
  { host: 'grafana.example.com..', path: '/', expect: 400 },
  { host: 'grafana.example.com;x', path: '/', expect: 400 },
  { host: 'grafana.example.com%00.evil.test', path: '/', expect: 400 },
  { host: 'user@grafana.example.com', path: '/', expect: 400 },
  { host: 'grafana.example.com:99999', path: '/', expect: 400 },
];

/** Requests that are no attack: they pin what the deployment does, so the table means something. */
const baseline: readonly Attack[] = [
  { path: '/public/app.js', expect: 'allow' },
  { path: '/public/./app.js', expect: 'allow' },
  { path: '/x', token: 'user', expect: 'allow' },
  { path: '/admin/secret', token: 'user', expect: 403 },
  { path: '/ops/x', token: 'user', expect: 403 },
  { path: '/billing/x', token: 'user', expect: 403 },
  { path: '/admin/secret', expect: 401 },
  { path: '/admin', token: 'user', expect: 403 },
  { host: 'grafana.example.com', path: '/', expect: 401 },
  { host: 'unknown.test', path: '/', expect: 'allow' },
  { host: 'api.example.com', path: '/x', token: 'user', expect: 'allow' },
  { host: 'api.example.com', path: '/admin/x', token: 'user', expect: 403 },
];

/** The short reasons a 400 from the request policy (or the host check) gives. */
const policyReasons = /ambiguous path|invalid path encoding|path too long|invalid host/;

function outcomeOf(outcome: Outcome): number | string {
  if (outcome.kind === 'allow') return 'allow';
  if (outcome.kind === 'deny') return outcome.status;
  return `error: ${outcome.error.message}`;
}

function label(row: Attack): string {
  return `${row.method ?? 'GET'} ${row.host ?? 'example.com'}${row.path}${row.token === undefined ? '' : ' (user token)'} → ${row.expect}`;
}

let provider: TestProvider;
let server: TestServer;
let userToken: string;

before(async () => {
  provider = await startTestProvider({ clients: [] });
  const bearer = { enabled: true, audiences: [API] };
  server = await startTestServer({
    allowUnmatched: true,
    apps: [
      testApp(
        'grafana',
        { match: { hosts: ['grafana.example.com', '*.grafana.example.com'] } },
        provider.issuer,
      ),
      testApp(
        'api',
        {
          match: { hosts: ['api.example.com'] },
          bearer: { ...bearer, paths: [{ prefix: '/admin/', requiredScopes: ['admin'] }] },
        },
        provider.issuer,
      ),
      testApp(
        'admin',
        {
          match: { hosts: ['example.com'], pathPrefix: '/admin/' },
          bearer,
          authorization: { requireGroups: ['admins'] },
        },
        provider.issuer,
      ),
      testApp(
        'web',
        {
          match: { hosts: ['example.com'] },
          publicPaths: [{ prefix: '/public/' }],
          bearer: { ...bearer, paths: [{ prefix: '/ops/', requiredScopes: ['ops'] }] },
          authorization: { paths: [{ prefix: '/billing/', requireGroups: ['billing'] }] },
        },
        provider.issuer,
      ),
    ],
  });
  userToken = await provider.signJwt(
    {
      sub: 'mallory',
      aud: API,
      client_id: 'mallory-cli',
      scope: 'read',
      groups: ['staff'],
      exp: Math.floor(Date.now() / 1000) + 3_600,
    },
    { typ: 'at+jwt' },
  );
});

after(async () => {
  await server?.close();
  await provider?.close();
});

type Check = (row: Attack) => Promise<Outcome>;

function requestOf(row: Attack) {
  return {
    method: row.method ?? 'GET',
    url: `https://${row.host ?? 'example.com'}${row.path}`,
    headers: [
      ['accept', 'application/json'] as const,
      ...(row.token === 'user' ? [['authorization', `Bearer ${userToken}`] as const] : []),
    ],
  };
}

function runTable(mode: string, connect: () => { check: Check; close(): void }): void {
  describe(`path and host normalisation, ${mode}`, () => {
    let client: { check: Check; close(): void };
    before(() => {
      client = connect();
    });
    after(() => client.close());

    for (const row of baseline) {
      it(`baseline: ${label(row)}`, async () => {
        assert.equal(outcomeOf(await client.check(row)), row.expect);
      });
    }
    for (const row of attacks) {
      it(label(row), async () => {
        const outcome = await client.check(row);
        assert.equal(outcomeOf(outcome), row.expect);
        // A reply to HEAD carries no body (RFC 9110 §9.3.2).
        if (row.expect === 400 && outcome.kind === 'deny' && row.method !== 'HEAD') {
          assert.match(outcome.body, policyReasons, 'a 400 names what is wrong');
        }
      });
    }
  });
}

runTable('gRPC', () => {
  const envoy = grpcModeEnvoy(server);
  return { check: (row) => envoy.check(requestOf(row)), close: () => envoy.close() };
});

runTable('HTTP', () => {
  const envoy = httpModeEnvoy(server);
  return { check: (row) => envoy.check(requestOf(row)), close: () => envoy.close() };
});
