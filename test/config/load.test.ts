import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { loadConfig } from '../../src/config/load.ts';
import type { AppConfig, Config } from '../../src/config/schema.ts';

// Compiled tests run from dist*/test/config; fixtures stay in the source tree.
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/config/', import.meta.url));

const FULL_ENV = {
  REDIS_PASSWORD: 'redis-password',
  SESSION_KEY: 'current-session-key-0123456789abcdef',
  GRAFANA_SECRET: 'grafana-client-secret',
  INTROSPECTION_SECRET: 'introspection-secret',
};

function load(name: string, env: Record<string, string> = {}): Config {
  const result = loadConfig({ path: FIXTURES + name }, env);
  assert.ok(result.ok, result.ok ? '' : JSON.stringify(result.problems, null, 2));
  return result.config;
}

function app(config: Config, name: string): AppConfig {
  const found = config.apps.find((a) => a.name === name);
  assert.ok(found, name);
  return found;
}

test('minimal config loads with every default filled in', () => {
  const config = load('valid/minimal.yaml');
  assert.deepEqual(config.listen, {
    grpc: '0.0.0.0:9001',
    http: '0.0.0.0:9002',
    admin: '0.0.0.0:9090',
    httpPathPrefix: '',
  });
  assert.deepEqual(config.log, {
    level: 'info',
    access: { enabled: false, sampleRate: 1 },
    subject: 'hash',
  });
  assert.deepEqual(config.request, { trustedHops: 0, maxHeaderBytes: 65_536, budget: 100 });
  assert.equal(config.allowUnmatched, false);
  assert.equal(config.deployment, 'default');
  assert.deepEqual(config.shutdown, { drainDelay: 10_000, drainTimeout: 10_000 });
  assert.deepEqual(config.store, {
    type: 'memory',
    redis: { keyPrefix: 'eoa:', commandTimeout: 1_000 },
  });
  assert.equal('defaults' in config, false);
  assert.equal(config.apps.length, 1);
  const a = config.apps[0]!;
  assert.deepEqual(a.match, { hosts: [], pathPrefix: '/' });
  assert.deepEqual(a.oidc, {
    provider: 'generic',
    tenants: [],
    basicAuthEncoding: 'form',
    issuer: 'https://idp.example.com/realms/main',
    clientId: 'app',
    clientSecret: 'app-client-secret',
    clientAuth: 'client_secret_basic',
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    callbackPath: '/oauth2/callback',
    logoutPath: '/oauth2/logout',
    extraAuthParams: {},
    par: 'auto',
    claimsFrom: ['id_token', 'access_token'],
    idTokenAlgs: ['RS256', 'ES256', 'PS256', 'EdDSA'],
    clockSkew: 30_000,
    probeInterval: 10_000,
    revokeOnLogout: false,
    tlsInsecureSkipVerify: false,
  });
  assert.deepEqual(a.refresh, {
    skew: 60_000,
    resultTtl: 60_000,
    maxAttempts: 3,
    cooldown: 30_000,
    maxConcurrent: 64,
    lockTtl: 5_000,
    outageGrace: 300_000,
    waitTimeout: 5_000,
  });
  assert.deepEqual(a.session, {
    store: 'cookie',
    secrets: ['Jbc6+ZXA4DDvIMfEJE28fyFgS4x8fUr8KeUB/ID22/bv'],
    cookieName: '_eoa_app',
    maxAge: 86_400_000,
    sameSite: 'lax',
    maxPendingLogins: 5,
    loginTimeout: 600_000,
  });
  assert.deepEqual(a.publicPaths, []);
  assert.deepEqual(a.bearer, {
    enabled: false,
    audiences: [],
    identifierClaim: 'sub',
    requireJwtType: false,
    requiredScopes: [],
    maxTokenAge: 86_400_000,
    clockSkew: 30_000,
    issuers: [],
    overridesCookie: false,
    passAuthorizationHeader: false,
    allowedClients: [],
    failureThrottle: { maxFailures: 20, window: 60_000 },
    paths: [],
    cacheMax: 10_000,
    dpop: {
      enabled: false,
      required: false,
      algs: [
        'RS256',
        'RS384',
        'RS512',
        'PS256',
        'PS384',
        'PS512',
        'ES256',
        'ES384',
        'ES512',
        'EdDSA',
      ],
      maxAge: 60_000,
      clockSkew: 5_000,
      nonce: { enabled: false, lifetime: 300_000 },
    },
    mtls: { enabled: true, xfccHops: 0 },
  });
  assert.deepEqual(a.authorization, {
    allowedEmails: [],
    allowedDomains: [],
    requireGroups: [],
    requireRoles: [],
    claims: [],
    acrValues: [],
    groupsClaim: 'groups',
    rolesClaims: ['roles', 'realm_access.roles'],
    paths: [],
  });
  assert.deepEqual(a.upstreamHeaders, {
    'x-auth-request-user': '{{ claims.sub }}',
    'x-auth-request-email': '{{ claims.email }}',
    'x-auth-request-groups': '{{ claims.groups }}',
    'x-auth-request-preferred-username': '{{ claims.preferred_username }}',
  });
  assert.equal(a.passAccessToken, false);
  assert.equal(a.passIdToken, false);
});

test('full config loads every contract key, with defaults merged under each app', () => {
  const config = load('valid/full.yaml', FULL_ENV);
  assert.equal(config.request.trustedHops, 1);
  assert.equal(config.shutdown.drainTimeout, 15_000);
  assert.equal(config.store.type, 'redis');
  assert.equal(config.store.redis.url, 'rediss://redis.auth.svc:6380/0');
  assert.equal(config.store.redis.password, 'redis-password');
  assert.equal(config.store.redis.commandTimeout, 500);
  assert.equal(config.store.redis.keyPrefix, 'eoa:prod:');
  assert.match(
    config.store.redis.tls?.ca ?? '',
    /^-----BEGIN CERTIFICATE-----\n[\s\S]*-----END CERTIFICATE-----$/,
  );
  assert.deepEqual(
    config.apps.map((a) => a.name),
    ['grafana', 'orders-api', 'wiki'],
  );

  const grafana = app(config, 'grafana');
  // From defaults, overridden per key where the app sets it.
  assert.equal(grafana.oidc.issuer, 'https://idp.example.com/realms/main');
  assert.equal(grafana.oidc.clientSecret, 'grafana-client-secret');
  assert.deepEqual(grafana.session.secrets, [
    'current-session-key-0123456789abcdef',
    'an-older-session-key-kept-for-rotation',
  ]);
  assert.equal(grafana.session.maxAge, 86_400_000);
  assert.equal(grafana.session.idleTimeout, 7_200_000);
  assert.equal(grafana.session.cookieName, '_grafana');
  assert.equal(grafana.session.secure, true);
  assert.equal(grafana.refresh.skew, 90_000);
  assert.equal(grafana.oidc.backchannelLogoutPath, '/oauth2/backchannel-logout');
  assert.equal(grafana.oidc.frontchannelLogoutPath, '/oauth2/frontchannel-logout');
  assert.deepEqual(grafana.oidc.extraAuthParams, { prompt: 'select_account' });
  assert.deepEqual(grafana.publicPaths, [
    { prefix: '/public/' },
    { exact: '/api/health', methods: ['GET', 'HEAD'] },
  ]);
  assert.deepEqual(grafana.authorization.paths, [
    {
      prefix: '/admin/',
      requireRoles: ['grafana-admin'],
      allowedEmails: [],
      allowedDomains: [],
      requireGroups: [],
      claims: [],
      acrValues: [],
    },
  ]);
  // User headers merge over the built-in ones; '' disables one; defaults add one to every app.
  assert.deepEqual(grafana.upstreamHeaders, {
    'x-auth-request-user': '{{ claims.sub }}',
    'x-auth-request-email': '{{ claims.email }}',
    'x-auth-request-preferred-username': '{{ claims.preferred_username }}',
    'x-auth-request-app': '{{ app.name }}',
    'x-webauth-user': '{{ claims.preferred_username }}',
  });

  const orders = app(config, 'orders-api');
  assert.deepEqual(orders.match, {
    hosts: ['api.example.com', '*.api.example.com'],
    pathPrefix: '/orders/',
  });
  assert.equal(orders.oidc.clientSecret, 'orders-client-secret-from-file');
  assert.deepEqual(orders.oidc.scopes, ['openid', 'email']); // arrays replace, not merge
  assert.equal(orders.session.maxAge, 43_200_000); // from defaults
  assert.equal(orders.session.store, 'server');
  assert.equal(orders.bearer.enabled, true);
  assert.equal(orders.bearer.introspection?.clientSecret, 'introspection-secret');
  assert.equal(orders.bearer.failureThrottle.window, 60_000);
  assert.deepEqual(orders.authorization.allowedEmails, ['ops@example.com']);
  assert.deepEqual(orders.authorization.claims[0], {
    claim: 'https://example.com/tenant',
    equals: 'acme',
  });
  assert.deepEqual(orders.authorization.paths[0]?.methods, ['POST', 'DELETE']);
  assert.deepEqual(orders.oidc.claimsFrom, ['id_token', 'userinfo', 'access_token']);
  assert.deepEqual(orders.authorization.acrValues, ['urn:example:loa:2', 'urn:example:loa:3']);
  assert.equal(orders.authorization.maxAge, 43_200_000);
  assert.deepEqual(orders.authorization.paths[0]?.acrValues, ['urn:example:loa:3']);
  assert.equal(orders.authorization.paths[0]?.maxAge, 300_000);
  assert.equal(orders.upstreamHeaders['x-tenant'], '{{ claims["https://example.com/tenant"] }}');
  assert.equal(orders.passAccessToken, true);

  const wiki = app(config, 'wiki');
  assert.equal(wiki.oidc.clientAuth, 'private_key_jwt');
  assert.match(wiki.oidc.privateKey ?? '', /^-----BEGIN PRIVATE KEY-----/);
  assert.equal(wiki.oidc.clientSecret, undefined);
});

test('the loaded config is deep-frozen: mutation throws', () => {
  const config = load('valid/full.yaml', FULL_ENV);
  const grafana = config.apps[0] as unknown as { name: string; session: { secrets: string[] } };
  assert.throws(() => {
    (config as { allowUnmatched: boolean }).allowUnmatched = true;
  }, TypeError);
  assert.throws(() => {
    grafana.name = 'other';
  }, TypeError);
  assert.throws(() => grafana.session.secrets.push('x'), TypeError);
  assert.throws(() => {
    (grafana as unknown as { upstreamHeaders: Record<string, string> }).upstreamHeaders['x-new'] =
      '{{ claims.sub }}';
  }, TypeError);
  assert.ok(Object.isFrozen(config.store.redis.tls));
});

test('…File twins are read at load, relative to the config file, trailing newline removed', () => {
  const config = load('valid/with-files.yaml');
  assert.equal(config.store.redis.password, 'orders-client-secret-from-file');
  assert.deepEqual(config.store.redis.cluster, ['redis-0:6379', 'redis-1:6379']);
  const a = config.apps[0]!;
  assert.equal(a.oidc.clientSecret, 'orders-client-secret-from-file');
  assert.equal(a.oidc.issuer, 'http://127.0.0.1:8443/realms/test');
  // secretsFile: one secret per line, CRLF tolerated, blank lines ignored.
  assert.deepEqual(a.session.secrets, [
    'first-session-key-kept-in-a-file-zD4q9',
    'second-session-key-kept-in-a-file-Ws8m2',
  ]);
});

test('${VAR} interpolation reads only the injected environment', () => {
  const text = readFileSync(FIXTURES + 'valid/minimal.yaml', 'utf8').replace(
    'app-client-secret',
    '${EOA_TEST_CLIENT_SECRET}',
  );
  const ok = loadConfig({ text, format: 'yaml' }, { EOA_TEST_CLIENT_SECRET: 'from-env' });
  assert.ok(ok.ok);
  assert.equal(ok.config.apps[0]?.oidc.clientSecret, 'from-env');
  process.env['EOA_TEST_CLIENT_SECRET'] = 'from-process-env';
  try {
    const missing = loadConfig({ text, format: 'yaml' }, {});
    assert.equal(missing.ok, false);
  } finally {
    delete process.env['EOA_TEST_CLIENT_SECRET'];
  }
});

test('JSON text, JSON files without a known extension, and parsed documents load the same', () => {
  const document = {
    apps: [
      {
        name: 'app',
        oidc: {
          issuer: 'https://idp.example.com/realms/main',
          clientId: 'app',
          clientSecret: 'app-client-secret',
        },
        session: { secrets: ['Jbc6+ZXA4DDvIMfEJE28fyFgS4x8fUr8KeUB/ID22/bv'] },
      },
    ],
  };
  const fromYaml = load('valid/minimal.yaml');
  const fromJson = loadConfig({ text: JSON.stringify(document), format: 'json' }, {});
  const fromDocument = loadConfig({ document }, {});
  const sniffed = loadConfig(
    { path: '/etc/eoa/config' },
    {},
    { readFile: () => JSON.stringify(document) },
  );
  for (const result of [fromJson, fromDocument, sniffed]) {
    assert.ok(result.ok);
    assert.deepEqual(result.config, fromYaml);
  }
  assert.equal(Object.isFrozen(document.apps[0]), false, 'the input document is not frozen');
});

test('problems in JSON carry line and column, without quoting the source', () => {
  const result = loadConfig(
    { text: '{\n  "apps": [\n    { "name": "secret-value" \n  ]\n}', format: 'json' },
    {},
  );
  assert.equal(result.ok, false);
  assert.ok(!result.ok);
  assert.equal(result.problems[0]?.path, '(root)');
  assert.match(result.problems[0]?.message ?? '', /^invalid JSON at line \d+, column \d+: /);
  assert.doesNotMatch(result.problems[0]?.message ?? '', /secret-value/);
});

test('a root that is not a mapping, and an unreadable config file, are problems', () => {
  const list = loadConfig({ text: '- a\n- b\n', format: 'yaml' }, {});
  assert.deepEqual(list, {
    ok: false,
    problems: [{ path: '(root)', message: 'must be a mapping' }],
  });
  const missing = loadConfig({ path: FIXTURES + 'valid/no-such-file.yaml' }, {});
  assert.ok(!missing.ok);
  assert.equal(missing.problems.length, 1);
  assert.match(missing.problems[0]?.message ?? '', /^cannot read .*no-such-file\.yaml: ENOENT$/);
});

test('YAML 1.2 core schema: yes/on stay strings, so they are not taken as booleans', () => {
  const text = readFileSync(FIXTURES + 'valid/minimal.yaml', 'utf8') + 'allowUnmatched: yes\n';
  const result = loadConfig({ text, format: 'yaml' }, {});
  assert.deepEqual(result, {
    ok: false,
    problems: [{ path: 'allowUnmatched', message: 'must be true or false' }],
  });
});

test('alias bombs are refused', () => {
  let text = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
  for (let i = 1; i < 8; i++) {
    const ref = `*a${i - 1}`;
    text += `a${i}: &a${i} [${Array(10).fill(ref).join(', ')}]\n`;
  }
  const result = loadConfig({ text, format: 'yaml' }, {});
  assert.ok(!result.ok);
  assert.match(result.problems[0]?.message ?? '', /aliases/);
});

const BASE_APP = {
  name: 'app',
  oidc: {
    issuer: 'https://idp.example.com/realms/main',
    clientId: 'app',
    clientSecret: 'app-client-secret',
  },
  session: { secrets: ['Jbc6+ZXA4DDvIMfEJE28fyFgS4x8fUr8KeUB/ID22/bv'] },
};

function problemPaths(document: unknown, env: Record<string, string> = {}): string[] {
  const result = loadConfig({ document }, env);
  assert.ok(!result.ok, 'must not load');
  return result.problems.map((p) => p.path).sort();
}

test('a mistake in defaults is reported once at defaults.…, however many apps inherit it', () => {
  const document = {
    defaults: {
      name: 'shared',
      oidc: { clientSecrte: 'typo' },
      bearer: { identifierClaim: 'email' },
    },
    apps: [
      { ...BASE_APP, name: 'a', match: { hosts: ['a.example.com'] } },
      { ...BASE_APP, name: 'b', match: { hosts: ['b.example.com'] } },
    ],
  };
  assert.deepEqual(problemPaths(document), [
    'defaults.bearer.identifierClaim',
    'defaults.name',
    'defaults.oidc.clientSecrte',
  ]);
});

test('an app value overriding a bad default is not reported', () => {
  const result = loadConfig(
    {
      document: {
        defaults: { session: { maxAge: 'forever' } },
        apps: [{ ...BASE_APP, session: { ...BASE_APP.session, maxAge: '1h' } }],
      },
    },
    {},
  );
  assert.ok(result.ok);
  assert.equal(result.config.apps[0]?.session.maxAge, 3_600_000);
});

test('cross-field rules each report their own path', () => {
  const documentWith = (oidcExtra: Record<string, unknown>) => ({
    listen: { grpc: '0.0.0.0:9001', http: '0.0.0.0:9001' },
    store: { type: 'redis', redis: { tls: { cert: 'PEM' } } },
    apps: [
      {
        ...BASE_APP,
        oidc: {
          ...BASE_APP.oidc,
          clientAuth: 'private_key_jwt',
          privateKey: 'not a key',
          logoutPath: '/oauth2/callback',
          ...oidcExtra,
        },
        session: { ...BASE_APP.session, sameSite: 'none', secure: false, idleTimeout: '48h' },
        bearer: { enabled: true, audiences: ['api'], introspection: { enabled: true } },
      },
    ],
  });
  // Schema problems in an app hold back its cross-field rules (they need valid values).
  assert.deepEqual(
    problemPaths(documentWith({ extraAuthParams: { state: 'x' }, scopes: ['profile'] })),
    [
      'apps[0].oidc.extraAuthParams.state',
      'apps[0].oidc.scopes',
      'listen.http',
      'store.redis',
      'store.redis.tls.key',
    ],
  );
  assert.deepEqual(problemPaths(documentWith({ extraAuthParams: { prompt: 'login' } })), [
    'apps[0].bearer.introspection.clientId',
    'apps[0].bearer.introspection.clientSecret',
    'apps[0].oidc.logoutPath',
    'apps[0].oidc.privateKey',
    'apps[0].session.idleTimeout',
    'apps[0].session.secure',
    'listen.http',
    'store.redis',
    'store.redis.tls.key',
  ]);
});

test('an unreadable secret file in defaults is one problem, not also a missing secret', () => {
  const readFile = (path: string): string => {
    throw Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES' });
  };
  const oidc = { issuer: BASE_APP.oidc.issuer, clientId: BASE_APP.oidc.clientId };
  const result = loadConfig(
    {
      document: {
        defaults: { oidc: { clientSecretFile: '/run/secrets/client' } },
        apps: [
          { ...BASE_APP, name: 'a', oidc, match: { hosts: ['a.example.com'] } },
          { ...BASE_APP, name: 'b', oidc, match: { hosts: ['b.example.com'] } },
        ],
      },
    },
    {},
    { readFile },
  );
  assert.deepEqual(result, {
    ok: false,
    problems: [
      {
        path: 'defaults.oidc.clientSecretFile',
        message: 'cannot read /run/secrets/client: EACCES',
      },
    ],
  });
});

test('a private key given as a private JWK is accepted for private_key_jwt', async () => {
  const { generateKeyPairSync } = await import('node:crypto');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = JSON.stringify(privateKey.export({ format: 'jwk' }));
  const result = loadConfig(
    {
      document: {
        apps: [
          {
            ...BASE_APP,
            oidc: { ...BASE_APP.oidc, clientAuth: 'private_key_jwt', privateKey: jwk },
          },
        ],
      },
    },
    {},
  );
  assert.ok(result.ok, result.ok ? '' : JSON.stringify(result.problems));
});
