/**
 * One table drives every consumer of the request policy: host normalisation, app selection,
 * public paths, bearer scope rules, claim rules and the app's own endpoints. Each row is a
 * request and what each consumer must decide for it, written as `app +public +scope +claim
 * =endpoint` (only the flags that hold), `none` (no app), or `400 <reason>`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileScopeRequirements } from '../../src/authz/bearer-scopes.ts';
import { parseRequest } from '../../src/authz/parse-request.ts';
import { compileRules } from '../../src/authz/rules.ts';
import { EndpointPaths, type Endpoint } from '../../src/policy/endpoint-paths.ts';
import { isRefusal } from '../../src/policy/policy-refusal.ts';
import { PublicPaths } from '../../src/policy/public-paths.ts';
import { RequestPolicy } from '../../src/policy/request-policy.ts';
import { testApp, testConfig } from '../support/test-server.ts';

const config = testConfig({
  apps: [
    testApp('grafana', { match: { hosts: ['grafana.example.com'] } }),
    testApp('admin', { match: { hosts: ['example.com'], pathPrefix: '/admin/' } }),
    testApp('web', {
      match: { hosts: ['example.com', '*.example.com'] },
      publicPaths: [{ prefix: '/public/' }, { exact: '/healthz', methods: ['GET'] }],
      bearer: {
        enabled: true,
        audiences: ['https://api.example.com/'],
        paths: [
          { prefix: '/ops/', requiredScopes: ['ops'] },
          { prefix: '/reports/', methods: ['GET'], requiredScopes: ['ops'] },
        ],
      },
      authorization: { paths: [{ prefix: '/billing/', requireGroups: ['billing'] }] },
    }),
  ],
});

/** Each app's consumers, built by the same constructors the app runtime uses. */
const apps = config.apps.map((app) => ({
  name: app.name,
  match: app.match,
  publicPaths: new PublicPaths(app.publicPaths),
  endpoints: new EndpointPaths(app.oidc),
  scopes: compileScopeRequirements(app.bearer.requiredScopes, app.bearer.paths),
  rules: compileRules(app.authorization, app.oidc.clientId ?? ''),
}));
const policy = new RequestPolicy(apps);
const noScopes: ReadonlySet<string> = new Set();
const endpoints: readonly Endpoint[] = [
  'callback',
  'logout',
  'backchannel_logout',
  'frontchannel_logout',
];

/** What every consumer decides for one request, in the table's notation. */
function decide(
  method: string,
  authority: string,
  rawPath: string,
  extensions: Record<string, string> = {},
): string {
  const request = parseRequest(
    {
      id: 'table',
      method,
      path: rawPath,
      authority,
      scheme: 'https',
      headers: [],
      peerAddress: '127.0.0.1',
      contextExtensions: Object.entries(extensions),
      body: '',
    },
    { trustedHops: 0, maxHeaderBytes: 64 * 1024 },
  );
  if ('kind' in request) return `400 ${request.reason}`;
  const path = policy.readPath(request);
  if ('kind' in path) return `400 ${path.reason}`;
  const app = policy.selectApp(request, path);
  if (app === undefined) return 'none';
  if (isRefusal(app)) return `400 ${app.reason}`;
  const parts = [app.name];
  if (app.publicPaths.matches(request.method, path)) parts.push('+public');
  if (app.scopes.missing(noScopes, request.method, path) !== undefined) parts.push('+scope');
  if (app.rules.check({}, request.method, path) !== undefined) parts.push('+claim');
  const endpoint = endpoints.find((candidate) => app.endpoints.is(candidate, path));
  if (endpoint !== undefined) parts.push(`=${endpoint}`);
  return parts.join(' ');
}

type Row = readonly [
  method: string,
  host: string,
  path: string,
  expected: string,
  extensions?: Record<string, string>,
];

const E = 'example.com';
const G = 'grafana.example.com';
const ambiguous = '400 ambiguous path';
const badEncoding = '400 invalid path encoding';
const badHost = '400 invalid host';

const table: readonly Row[] = [
  // Plain requests: one reading, every consumer as configured.
  ['GET', E, '/', 'web'],
  ['GET', E, '/public/app.js', 'web +public'],
  ['HEAD', E, '/public/app.js', 'web +public'],
  ['POST', E, '/public/form', 'web +public'],
  ['GET', E, '/healthz', 'web +public'],
  ['HEAD', E, '/healthz', 'web +public'],
  ['POST', E, '/healthz', 'web'],
  ['GET', E, '/healthz/', 'web'],
  ['GET', E, '/admin/x', 'admin'],
  // An app on `/admin/` also owns the bare segment, as upstreams serve it.
  ['GET', E, '/admin', 'admin'],
  ['GET', E, '/adminx', 'web'],
  ['GET', E, '/ops/x', 'web +scope'],
  // A rule on a segment (`/ops/`) restricts the segment itself, as upstreams serve it.
  ['GET', E, '/ops', 'web +scope'],
  ['GET', E, '/ops;v=1', 'web +scope'],
  ['GET', E, '/opsx', 'web'],
  ['GET', E, '/billing', 'web +claim'],
  ['GET', E, '/reports/q1', 'web +scope'],
  ['HEAD', E, '/reports/q1', 'web +scope'],
  ['POST', E, '/reports/q1', 'web'],
  ['GET', E, '/billing/x', 'web +claim'],
  ['GET', E, '/oauth2/callback', 'web =callback'],
  ['GET', E, '/oauth2/logout', 'web =logout'],
  ['GET', G, '/oauth2/callback', 'grafana =callback'],
  ['GET', G, '/admin/x', 'grafana'],
  ['GET', 'a.example.com', '/x', 'web'],
  ['GET', 'other.test', '/x', 'none'],

  // `;` parameters, stripped per segment before `..` by servlet containers.
  ['GET', E, '/public/..;/admin', ambiguous],
  ['GET', E, '/public/x/..;/..;/admin', ambiguous],
  ['GET', E, '/public/..;jsessionid=x/admin', ambiguous],
  ['GET', E, '/public/..;/admin/x', ambiguous],
  ['GET', E, '/admin;v=1/x', ambiguous],
  ['GET', E, '/admin;x/y', ambiguous],
  ['GET', E, '/ops;v=1/x', 'web +scope'],
  ['GET', E, '/x/..;/ops/x', 'web +scope'],
  ['GET', E, '/billing;v=1/x', 'web +claim'],
  ['GET', E, '/public/x;v=2', 'web +public'],
  ['GET', E, '/oauth2/callback;x', 'web'],
  ['GET', E, '/oauth2/logout;x', 'web'],
  ['GET', E, '/healthz;x', 'web'],

  // Dot segments (RFC 3986 §5.2.4).
  ['GET', E, '/x/../admin/secret', ambiguous],
  ['GET', E, '/./admin/x', ambiguous],
  ['GET', E, '/admin/../x', ambiguous],
  ['GET', E, '/public/../admin', ambiguous],
  ['GET', E, '/public/./app.js', 'web +public'],
  ['GET', E, '/x/../ops/y', 'web +scope'],
  ['GET', E, '/x/../billing/y', 'web +claim'],
  ['GET', E, '/oauth2/./callback', 'web'],
  ['GET', E, '/public/../oauth2/callback', 'web'],

  // Percent-encoding, once or in layers.
  ['GET', E, '/%61dmin/x', ambiguous],
  ['GET', E, '/%6fps/x', 'web +scope'],
  ['GET', E, '/%62illing/x', 'web +claim'],
  ['GET', E, '/public/%2e%2e/admin', ambiguous],
  ['GET', E, '/public/%2e%2e/admin/x', ambiguous],
  ['GET', E, '/admin%2fx', ambiguous],
  ['GET', E, '/ops%2fx', 'web +scope'],
  ['GET', E, '/public/..%2fadmin', ambiguous],
  ['GET', E, '/public/a%2fb', 'web +public'],
  ['GET', E, '/%2561dmin/x', ambiguous],
  ['GET', E, '/%252561dmin/x', ambiguous],
  ['GET', E, '/%25252561dmin/x', badEncoding],
  ['GET', E, '/%256fps/x', 'web +scope'],
  ['GET', E, '/%2562illing/x', 'web +claim'],
  ['GET', E, '/public/%252e%252e/admin', ambiguous],
  ['GET', E, '/public/..%3b/admin', ambiguous],
  ['GET', E, '/public/a%20b.js', 'web +public'],
  ['GET', E, '/oauth2/%63allback', 'web'],

  // Backslashes.
  ['GET', E, '/public/..\\admin', ambiguous],
  ['GET', E, '/x\\..\\admin\\y', ambiguous],
  ['GET', E, '/admin%5cx', ambiguous],
  ['GET', E, '/ops\\x', 'web +scope'],
  ['GET', E, '/public/.\\app.js', 'web +public'],

  // Empty segments.
  ['GET', E, '//admin/x', ambiguous],
  ['GET', E, '///admin/x', ambiguous],
  ['GET', E, '//ops/x', 'web +scope'],
  ['GET', E, '/public//app.js', 'web +public'],
  ['GET', E, '/public//../admin', ambiguous],

  // Refused outright.
  ['GET', E, '/public/%00.js', badEncoding],
  ['GET', E, '/public/%2500.js', badEncoding],
  ['GET', E, '/public/%c0%ae%c0%ae/admin', badEncoding],
  ['GET', E, '/%e0%80%ae%e0%80%ae/admin/x', badEncoding],
  ['GET', E, '/public/100%', badEncoding],
  ['GET', E, '/public/%u002e%u002e/admin', badEncoding],
  ['GET', E, '/' + 'a'.repeat(8 * 1024), '400 path too long'],
  ['GET', E, '/./' + 'a'.repeat(4 * 1024), '400 path too long'],

  // Unicode compatibility forms (NFKC).
  ['GET', E, '/public/%ef%bc%8e%ef%bc%8e/admin', ambiguous],
  ['GET', E, '/%ef%bd%81dmin/x', ambiguous],
  ['GET', E, '/%ef%bd%8fps/x', 'web +scope'],
  ['GET', E, '/%ef%bd%82illing/x', 'web +claim'],

  // Hosts: one reading, lower case, trailing dot dropped, port apart; anything odd refused.
  ['GET', 'Grafana.Example.com.', '/x', 'grafana'],
  ['GET', 'grafana.example.com:443', '/x', 'grafana'],
  ['GET', 'grafana.example.com.:8443', '/x', 'grafana'],
  ['GET', 'GRAFANA.EXAMPLE.COM', '/x', 'grafana'],
  ['GET', 'Example.COM.', '/admin/x', 'admin'],
  ['GET', 'A.Example.com.', '/public/x', 'web +public'],
  ['GET', 'grafana.example.com%00', '/x', badHost],
  ['GET', 'grafana%2eexample.com', '/x', badHost],
  ['GET', 'grafana..example.com', '/x', badHost],
  ['GET', '.grafana.example.com', '/x', badHost],
  ['GET', 'grafana.example.com..', '/x', badHost],
  ['GET', 'grafana.example.com;x', '/x', badHost],
  ['GET', 'user@grafana.example.com', '/x', badHost],
  ['GET', 'grafana.example.com:', '/x', badHost],
  ['GET', 'grafana.example.com:65536', '/x', badHost],
  ['GET', '[::1]:8080', '/x', 'none'],
  ['GET', '127.0.0.1', '/x', 'none'],

  // A route that names the app decides the app; the path's readings still drive the rules.
  ['GET', E, '/admin;x/y', 'grafana', { app: 'grafana' }],
  ['GET', E, '/ops;v=1/x', 'web +scope', { app: 'web' }],
];

describe('request policy: one table, every consumer', () => {
  for (const [method, host, path, expected, extensions] of table) {
    const shown = path.length > 60 ? `${path.slice(0, 20)}… (${path.length} chars)` : path;
    it(`${method} ${host} ${shown} → ${expected}`, () => {
      assert.equal(decide(method, host, path, extensions), expected);
    });
  }
});
