import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { loadConfig } from '../../src/config/load.ts';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/config/invalid/', import.meta.url));

/** Secret values written in the fixtures: none may appear in any message. */
const SECRET_VALUES = [
  'Kp3sWq8zNd5vLm1tRb7x',
  'app-client-secret',
  'too-short',
  'orders-client-secret-from-file',
];

/** fixture → the exact problems expected, as [path, message pattern]. */
const CASES: Record<string, [string, RegExp][]> = {
  'unknown-key.yaml': [
    ['listen.gprc', /^unknown key$/],
    ['apps[0].oidc2', /^unknown key$/],
  ],
  'bad-type.yaml': [
    ['allowUnmatched', /^must be true or false$/],
    ['request.trustedHops', /^must be a number$/],
  ],
  'bad-duration.yaml': [['apps[0].refresh.skew', /^must be a duration like/]],
  'unset-env.yaml': [
    ['apps[0].oidc.clientSecret', /^environment variable EOA_TEST_UNSET_SECRET is not set$/],
  ],
  'missing-secret.yaml': [
    ['apps[0].oidc.clientSecret', /^is required when clientAuth is client_secret_post/],
  ],
  'private-key-missing.yaml': [
    ['apps[0].oidc.privateKey', /^is required when clientAuth is private_key_jwt/],
  ],
  'secret-too-short.yaml': [['apps[0].session.secrets[1]', /^must be at least 32 bytes long$/]],
  'no-session-secrets.yaml': [['apps[0].session.secrets', /^must have at least one secret$/]],
  'secret-and-file.yaml': [
    ['apps[0].oidc.clientSecretFile', /^cannot be combined with clientSecret/],
  ],
  'unreadable-secret-file.yaml': [
    [
      'apps[0].oidc.clientSecretFile',
      /^cannot read \/.*\/test\/fixtures\/config\/secrets\/does-not-exist\.txt: ENOENT$/,
    ],
  ],
  'http-issuer.yaml': [['apps[0].oidc.issuer', /^must be an https URL/]],
  'callback-public.yaml': [
    ['apps[0].oidc.callbackPath', /^is also a public path \(publicPaths\[0\]\)$/],
    ['apps[0].oidc.logoutPath', /^is also a public path \(publicPaths\[0\]\)$/],
  ],
  'step-up-disjoint.yaml': [
    ['apps[0].oidc.extraAuthParams.max_age', /^must be a whole number of seconds$/],
    [
      'apps[0].authorization.paths[0].acrValues',
      /^shares no value with authorization\.acrValues: no login could meet both$/,
    ],
  ],
  'claims-from-repeated.yaml': [['apps[0].oidc.claimsFrom', /^must not repeat a source$/]],
  'tracing.yaml': [
    ['tracing.endpoint', /^must be an http\(s\) URL$/],
    ['tracing.sampleRate', /^must be at most 1$/],
    ['tracing.exportTimeout', /^must be at least 1ms$/],
    ['tracing.headers.Authorization', /^must be a lower-case HTTP header name$/],
    ['tracing.headers["content-type"]', /^is set by the exporter itself$/],
    ['tracing.headers["x-api-key"]', /^must be printable ASCII \(no CR, LF or other controls\)$/],
  ],
  'duplicate-names.yaml': [['apps[2].name', /^is the same as apps\[0\]\.name/]],
  'bearer-without-audiences.yaml': [['apps[0].bearer.audiences', /^must list at least one/]],
  'bearer-email-identifier.yaml': [['apps[0].bearer.identifierClaim', /^cannot be email/]],
  'bad-listen.yaml': [
    ['listen.grpc', /^must be host:port/],
    ['listen.admin', /^must be host:port/],
  ],
  'redis-url-and-cluster.yaml': [['store.redis.cluster', /^cannot be combined with url/]],
  'sentinels-without-name.yaml': [['store.redis.name', /^is required with sentinels$/]],
  'sentinel-password-without-sentinels.yaml': [
    ['store.redis.sentinelUsername', /^is only used with sentinels$/],
    ['store.redis.sentinelPassword', /^is only used with sentinels$/],
  ],
  'sentinel-password-placeholder.yaml': [['store.redis.sentinelPassword', /^is a placeholder/]],
  'bad-cookie-domain.yaml': [
    ['apps[0].session.domain', /^must be a host name such as example\.com$/],
  ],
  'bad-header-name.yaml': [
    ['apps[0].upstreamHeaders["X-User"]', /^must be a lower-case HTTP header name$/],
    ['apps[0].upstreamHeaders["x user"]', /^must be a lower-case HTTP header name$/],
  ],
  'unknown-template-variable.yaml': [
    ['apps[0].upstreamHeaders["x-user"]', /^uses unknown variable "claim"/],
    [
      'apps[0].upstreamHeaders["x-token"]',
      /^can only use tokens\.access_token or tokens\.id_token$/,
    ],
  ],
  'invalid-syntax.txt': [['(root)', /^invalid YAML at line 4, column 5: /]],
  'mistake-in-defaults.yaml': [['defaults.session.maxAge', /^must be a duration like/]],
  'shadowed-app.yaml': [['apps[1].match', /^is never reached: apps\[0\] matches every request/]],
  'shared-issuer-settings.yaml': [
    [
      'apps[1].oidc.tlsInsecureSkipVerify',
      /^differs from apps\[0\]\.oidc\.tlsInsecureSkipVerify, an app on the same issuer/,
    ],
    [
      'apps[1].oidc.probeInterval',
      /^differs from apps\[0\]\.oidc\.probeInterval, an app on the same issuer/,
    ],
  ],
  'public-path-shape.yaml': [
    ['apps[0].publicPaths[0]', /^must have exactly one of prefix or exact$/],
    ['apps[0].publicPaths[1]', /^must have exactly one of prefix or exact$/],
  ],
  'five-mistakes.yaml': [
    ['listen.grpc', /^must be host:port/],
    ['log.level', /^must be one of: trace, debug, info, warn, error, fatal, silent$/],
    ['apps[0].oidc.issuer', /^must be an https URL \(http is allowed only for/],
    ['apps[0].oidc.clientSecret', /^environment variable EOA_TEST_UNSET_SECRET is not set$/],
    ['apps[0].session.maxAge', /^must be a duration like/],
  ],
};

for (const [fixture, expected] of Object.entries(CASES)) {
  test(`invalid/${fixture} reports exactly its problems`, () => {
    const result = loadConfig({ path: FIXTURES + fixture }, {});
    assert.ok(!result.ok, 'must not load');
    const byPath = (a: { path: string }, b: { path: string }) => a.path.localeCompare(b.path);
    const actual = [...result.problems].sort(byPath);
    const wanted = expected.map(([path, message]) => ({ path, message })).sort(byPath);
    assert.deepEqual(
      actual.map((p) => p.path),
      wanted.map((p) => p.path),
      JSON.stringify(result.problems, null, 2),
    );
    actual.forEach((problem, i) => assert.match(problem.message, wanted[i]!.message));
    for (const problem of result.problems) {
      for (const secret of SECRET_VALUES) assert.doesNotMatch(problem.message, new RegExp(secret));
    }
  });
}

test('the five-mistakes fixture yields exactly five problems', () => {
  const result = loadConfig({ path: FIXTURES + 'five-mistakes.yaml' }, {});
  assert.ok(!result.ok);
  assert.equal(result.problems.length, 5);
});
