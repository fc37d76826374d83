import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/observability/logger.ts';
import { BearerAuthenticator } from '../../src/authz/bearer-authenticator.ts';
import { BearerRevocations } from '../../src/authz/bearer-revocations.ts';
import { compileRules } from '../../src/authz/rules.ts';
import type { AppConfig } from '../../src/config/schema.ts';
import { createAppKeyspaces } from '../../src/store/keyspaces.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';
import type { TestProvider } from '../../dev/test-provider.ts';
import { startProviderDouble, type ProviderDouble } from '../support/provider-double.ts';
import { pathOf } from '../support/request-paths.ts';
import { testApp, testConfig } from '../support/test-server.ts';
import {
  REDIRECT_URI,
  SECRET,
  basicClient,
  clientDeps,
  clientOptions,
  createStandaloneClient,
  loginAndExchange,
  readyClient,
  startProvider,
  type StandaloneClient,
  type StandaloneClientOptions,
} from './oidc-fixtures.ts';

const TENANT_A = '9188040d-6c67-4c5b-b112-36a304b66dad';
const TENANT_B = '72f988bf-86f1-41af-91ab-2d7cd011db47';

/** One app loaded through the real loader with `oidc` and any further sections. */
function loadApp(
  oidc: Record<string, unknown>,
  rest: Record<string, unknown> = {},
): AppConfig & { readonly oidc: { readonly clientId: string } } {
  const config = testConfig({
    apps: [
      testApp('web', {
        oidc: { issuer: 'https://idp.example.com', clientId: 'web', clientSecret: 's3', ...oidc },
        ...rest,
      }),
    ],
  });
  const app = config.apps[0]!;
  const { clientId } = app.oidc;
  assert.ok(clientId !== undefined);
  return { ...app, oidc: { ...app.oidc, clientId } };
}

/** The client of an app at `double`, as main.ts builds it from the app's `oidc` block. */
async function clientAt(
  double: ProviderDouble,
  overrides: Partial<StandaloneClientOptions>,
): Promise<StandaloneClient> {
  const options = clientOptions(double, overrides);
  const client = createStandaloneClient(options, clientDeps());
  await client.ready;
  return client;
}

/** Exchanges a code at the double for tokens whose ID token carries `claims`. */
function exchangeAt(double: ProviderDouble, client: StandaloneClient, claims: object) {
  const nonce = 'n-0S6_WzA2Mj';
  const state = 'st-af0ifjsldkj';
  double.nextIdToken = { aud: 'web', sub: 'user-1', nonce, ...claims };
  return client.exchangeCode({
    params: new URLSearchParams({ code: 'c-1', state }),
    redirectUri: REDIRECT_URI,
    codeVerifier: 'v'.repeat(43),
    expectedState: state,
    expectedNonce: nonce,
  });
}

describe('provider profiles: defaults', () => {
  it('generic, okta, entra and cognito keep the shipped defaults', () => {
    const generic = loadApp({});
    for (const provider of ['okta', 'entra', 'cognito'] as const) {
      const app = loadApp({ provider });
      assert.equal(app.oidc.provider, provider);
      assert.deepEqual(app.oidc.scopes, generic.oidc.scopes);
      assert.deepEqual(app.oidc.extraAuthParams, generic.oidc.extraAuthParams);
      assert.deepEqual(app.authorization, generic.authorization);
    }
    assert.equal(generic.oidc.provider, 'generic');
    assert.equal(generic.oidc.basicAuthEncoding, 'form');
  });

  it('google asks for offline access its own way and drops the offline_access scope', () => {
    const app = loadApp({ provider: 'google' });
    assert.deepEqual(app.oidc.scopes, ['openid', 'profile', 'email']);
    assert.deepEqual(app.oidc.extraAuthParams, { access_type: 'offline', prompt: 'consent' });
    const own = loadApp({ provider: 'google', extraAuthParams: { prompt: 'select_account' } });
    assert.deepEqual(own.oidc.extraAuthParams, {
      access_type: 'offline',
      prompt: 'select_account',
    });
  });

  it('keycloak and gitlab drop offline_access; gitlab reads groups_direct', () => {
    assert.deepEqual(loadApp({ provider: 'keycloak' }).oidc.scopes, ['openid', 'profile', 'email']);
    const gitlab = loadApp({ provider: 'gitlab' });
    assert.deepEqual(gitlab.oidc.scopes, ['openid', 'profile', 'email']);
    assert.equal(gitlab.authorization.groupsClaim, 'groups_direct');
    const own = loadApp(
      { provider: 'gitlab', scopes: ['openid', 'read_user'] },
      { authorization: { groupsClaim: 'groups' } },
    );
    assert.deepEqual(own.oidc.scopes, ['openid', 'read_user']);
    assert.equal(own.authorization.groupsClaim, 'groups');
  });

  it('auth0 sends the first bearer audience as audience, unless the operator set one', () => {
    const bearer = { enabled: true, audiences: ['https://api.example.com', 'other'] };
    assert.deepEqual(loadApp({ provider: 'auth0' }, { bearer }).oidc.extraAuthParams, {
      audience: 'https://api.example.com',
    });
    assert.deepEqual(loadApp({ provider: 'auth0' }).oidc.extraAuthParams, {});
    const own = loadApp({ provider: 'auth0', extraAuthParams: { audience: 'mine' } }, { bearer });
    assert.deepEqual(own.oidc.extraAuthParams, { audience: 'mine' });
  });

  it('refuses an unknown profile and a tenant that is not a tenant id', () => {
    assert.throws(() => loadApp({ provider: 'azure' }), /oidc\.provider/);
    assert.throws(() => loadApp({ tenants: [TENANT_A] }), /oidc\.tenants.*entra/);
    for (const tenant of ['', 'contoso.onmicrosoft.com', `${TENANT_A}\r\n`, 'x'.repeat(10_000)]) {
      assert.throws(() => loadApp({ provider: 'entra', tenants: [tenant] }), /oidc\.tenants/);
    }
  });
});

describe('provider profiles: entra multi-tenant issuer', () => {
  let double: ProviderDouble;
  let client: StandaloneClient;

  before(async () => {
    double = await startProviderDouble({
      issuerPath: '/organizations/v2.0',
      announcedIssuer: '{origin}/{tenantid}/v2.0',
    });
    client = await clientAt(double, { provider: 'entra', tenants: [] });
  });
  after(async () => {
    client.close();
    await double.close();
  });

  const issuerOf = (tenant: string) => `${double.origin}/${tenant}/v2.0`;

  it('accepts an ID token whose iss is the template filled with its own tid', async () => {
    const { claims, tokens } = await exchangeAt(double, client, {
      iss: issuerOf(TENANT_A),
      tid: TENANT_A,
    });
    assert.equal(claims.iss, issuerOf(TENANT_A));
    assert.equal(claims.sub, 'user-1');
    assert.equal(tokens.refreshToken, 'rt-1');
  });

  it('refuses the issuer of one tenant with the tid of another', async () => {
    await assert.rejects(
      exchangeAt(double, client, { iss: issuerOf(TENANT_B), tid: TENANT_A }),
      /tenant template/,
    );
  });

  it('refuses the template itself, a missing tid and attacker tids', async () => {
    const bad: unknown[] = [
      undefined,
      42,
      '',
      '../common',
      `${TENANT_A}\r\nx`,
      'a'.repeat(100_000),
    ];
    for (const tid of bad) {
      const iss = typeof tid === 'string' ? issuerOf(tid) : issuerOf('{tenantid}');
      await assert.rejects(exchangeAt(double, client, { iss, tid }), /tid missing/);
    }
    await assert.rejects(
      exchangeAt(double, client, { iss: issuerOf('{tenantid}'), tid: TENANT_A }),
      /tenant template/,
    );
  });

  it('takes xms_edov as email_verified, and leaves an unverified email unverified', async () => {
    const verified = await exchangeAt(double, client, {
      iss: issuerOf(TENANT_A),
      tid: TENANT_A,
      email: 'a@contoso.com',
      xms_edov: true,
    });
    assert.equal(verified.claims['email_verified'], true);
    const unverified = await exchangeAt(double, client, {
      iss: issuerOf(TENANT_A),
      tid: TENANT_A,
      email: 'a@contoso.com',
    });
    assert.equal(Object.hasOwn(unverified.claims, 'email_verified'), false);
  });

  it('checks the refreshed ID token against the template too', async () => {
    double.nextIdToken = { aud: 'web', sub: 'user-1', iss: issuerOf(TENANT_A), tid: TENANT_A };
    const refreshed = await client.refresh('rt-1', { expectedSubject: 'user-1' });
    assert.equal(refreshed.claims?.['tid'], TENANT_A);
    double.nextIdToken = { aud: 'web', sub: 'user-1', iss: issuerOf(TENANT_B), tid: TENANT_A };
    await assert.rejects(client.refresh('rt-1'), /tenant template/);
  });

  it('with oidc.tenants, refuses other tenants', async () => {
    const only = await clientAt(double, { provider: 'entra', tenants: [TENANT_B] });
    try {
      await assert.rejects(
        exchangeAt(double, only, { iss: issuerOf(TENANT_A), tid: TENANT_A }),
        /tenant not allowed/,
      );
      const ok = await exchangeAt(double, only, { iss: issuerOf(TENANT_B), tid: TENANT_B });
      assert.equal(ok.claims.iss, issuerOf(TENANT_B));
    } finally {
      only.close();
    }
  });

  it('without the profile, a template issuer never passes discovery', async () => {
    const generic = createStandaloneClient(clientOptions(double), clientDeps());
    try {
      const discovered = await Promise.race([
        generic.ready.then(() => 'ready'),
        new Promise((resolve) => {
          const check = setInterval(() => {
            if ((generic.status().attempts ?? 0) >= 2) {
              clearInterval(check);
              resolve('refused');
            }
          }, 10);
        }),
      ]);
      assert.equal(discovered, 'refused');
      assert.match(generic.status().lastError ?? '', /issuer/);
    } finally {
      generic.close();
    }
  });
});

describe('provider profiles: logout without an end-session endpoint', () => {
  let double: ProviderDouble;
  before(async () => {
    double = await startProviderDouble();
  });
  after(() => double.close());

  it('google: no end-session endpoint, so logout stays local; offline access is asked for', async () => {
    const app = loadApp({ provider: 'google', issuer: double.issuer });
    const client = await clientAt(double, { ...app.oidc });
    try {
      assert.equal(
        client.endSessionUrl({ postLogoutRedirectUri: 'https://app.example.com/' }),
        null,
      );
      const location = new URL(
        client.authorizationLocation({
          redirectUri: REDIRECT_URI,
          state: 's',
          nonce: 'n',
          codeChallenge: 'c'.repeat(43),
        }),
      );
      assert.equal(location.searchParams.get('access_type'), 'offline');
      assert.equal(location.searchParams.get('prompt'), 'consent');
      assert.equal(location.searchParams.get('scope'), 'openid profile email');
    } finally {
      client.close();
    }
  });

  it('cognito: /logout on the user-pool domain with client_id and logout_uri', async () => {
    const client = await clientAt(double, { provider: 'cognito' });
    try {
      const url = client.endSessionUrl({
        postLogoutRedirectUri: 'https://app.example.com/bye?x=1&y',
        idTokenHint: 'ignored',
      });
      assert.ok(url !== null);
      assert.equal(url.origin + url.pathname, `${double.origin}/logout`);
      assert.equal(url.searchParams.get('client_id'), 'web');
      assert.equal(url.searchParams.get('logout_uri'), 'https://app.example.com/bye?x=1&y');
      assert.equal(client.endSessionUrl({}), null, 'Cognito refuses a logout without logout_uri');
    } finally {
      client.close();
    }
  });

  it('auth0: /v2/logout with client_id and returnTo', async () => {
    const client = await clientAt(double, { provider: 'auth0' });
    try {
      const url = client.endSessionUrl({ postLogoutRedirectUri: 'https://app.example.com/' });
      assert.ok(url !== null);
      assert.equal(url.origin + url.pathname, `${double.origin}/v2/logout`);
      assert.equal(url.searchParams.get('client_id'), 'web');
      assert.equal(url.searchParams.get('returnTo'), 'https://app.example.com/');
    } finally {
      client.close();
    }
  });

  it('generic: no end-session endpoint, no guessed one', async () => {
    const client = await clientAt(double, {});
    try {
      assert.equal(
        client.endSessionUrl({ postLogoutRedirectUri: 'https://app.example.com/' }),
        null,
      );
    } finally {
      client.close();
    }
  });
});

describe('provider profiles: cognito access tokens without aud', () => {
  let double: ProviderDouble;
  let client: StandaloneClient;
  let authenticator: BearerAuthenticator;

  before(async () => {
    double = await startProviderDouble();
    client = await clientAt(double, {});
    const app = loadApp(
      { provider: 'cognito', issuer: double.issuer },
      { bearer: { enabled: true, audiences: ['api-client'] } },
    );
    const now = () => Date.now();
    const keyspaces = createAppKeyspaces(createMemoryBackend({ now }), {
      app: 'web',
      sessionMaxAge: 86_400_000,
      loginTimeout: 600_000,
      refreshLockTtl: 10_000,
      refreshResultTtl: 60_000,
      now,
    });
    authenticator = new BearerAuthenticator(app, {
      getKey: client.getKey,
      revocations: new BearerRevocations(keyspaces.revokedTokens),
      metrics: {
        verification: () => undefined,
        cache: () => undefined,
        throttled: () => undefined,
      },
      now,
    });
  });
  after(async () => {
    client.close();
    await double.close();
  });

  const accessToken = (claims: Record<string, unknown>) => {
    const now = Math.floor(Date.now() / 1000);
    return double.sign({
      iss: double.issuer,
      sub: 'svc',
      exp: now + 300,
      token_use: 'access',
      client_id: 'api-client',
      scope: 'orders/read',
      ...claims,
    });
  };

  it('takes client_id as the audience of an access token without aud', async () => {
    const outcome = await authenticator.authenticate(await accessToken({}));
    assert.equal(outcome.kind, 'valid');
  });

  it('refuses a client_id the app does not accept, an ID token, and no token_use', async () => {
    const other = await authenticator.authenticate(await accessToken({ client_id: 'intruder' }));
    assert.deepEqual(other, { kind: 'invalid', reason: 'audience not accepted' });
    const idToken = await authenticator.authenticate(
      await accessToken({ token_use: 'id', aud: 'api-client' }),
    );
    assert.deepEqual(idToken, { kind: 'invalid', reason: 'not an access token' });
    const none = await authenticator.authenticate(await accessToken({ token_use: undefined }));
    assert.deepEqual(none, { kind: 'invalid', reason: 'not an access token' });
  });
});

describe('provider profiles: roles and groups at oidc-provider', () => {
  let provider: TestProvider;
  before(async () => {
    provider = await startProvider({
      clients: [basicClient()],
      users: [
        {
          sub: 'alice',
          extraClaims: {
            realm_access: { roles: ['editor'] },
            resource_access: { web: { roles: ['admin'] } },
            groups_direct: ['platform/team'],
          },
        },
      ],
    });
  });
  after(() => provider.close());

  for (const profile of ['keycloak', 'gitlab'] as const) {
    it(`${profile}: signs in without offline_access and still gets a refresh token`, async () => {
      const app = loadApp({ provider: profile, issuer: provider.issuer, clientSecret: SECRET });
      const client = await readyClient(provider, { ...app.oidc });
      try {
        const { result, authorizationUrl } = await loginAndExchange(client);
        assert.equal(authorizationUrl.searchParams.get('scope'), 'openid profile email');
        assert.ok(result.tokens.refreshToken !== undefined);
        const rules = compileRules(
          {
            ...app.authorization,
            requireRoles: profile === 'keycloak' ? ['admin', 'editor'] : [],
            requireGroups: profile === 'gitlab' ? ['platform/team'] : [],
          },
          app.oidc.clientId,
        );
        assert.equal(rules.check(result.claims, 'GET', pathOf('/')), undefined);
      } finally {
        client.close();
      }
    });
  }

  it('okta: the generic flow as it is', async () => {
    const app = loadApp({ provider: 'okta', issuer: provider.issuer, clientSecret: SECRET });
    const client = await readyClient(provider, { ...app.oidc });
    try {
      const { result } = await loginAndExchange(client);
      assert.equal(result.claims.sub, 'alice');
    } finally {
      client.close();
    }
  });
});

describe('oidc.basicAuthEncoding', () => {
  const secret = "se-cret_with.marks~!*'()";
  let double: ProviderDouble;
  before(async () => {
    double = await startProviderDouble({ rawBasicClient: { id: 'web', secret } });
  });
  after(() => double.close());

  it('form: a provider comparing the raw secret refuses it, and the error says why', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger({ level: 'info', destination });
    const options = clientOptions(double, { clientSecret: secret });
    const client = createStandaloneClient(options, clientDeps({ logger }));
    await client.ready;
    try {
      // Each refusal carries the hint; the callback logs it once, with the request id.
      for (let i = 0; i < 2; i++) {
        await assert.rejects(
          exchangeAt(double, client, { iss: double.issuer }),
          /invalid_client.*hint: .*basicAuthEncoding: raw/,
        );
      }
      const sent = Buffer.from(double.tokenRequests.at(-1)!.slice(6), 'base64').toString();
      assert.notEqual(sent, `web:${secret}`);
      assert.equal(decodeURIComponent(sent.replace(/\+/g, ' ')), `web:${secret}`);
      // A code exchange's refusal is the callback's line to log, not the client's.
      const hints = lines.filter((line) => line.includes('basicAuthEncoding: raw'));
      assert.equal(hints.length, 0);
      assert.ok(!lines.join('').includes(secret), 'the secret is never logged');
    } finally {
      client.close();
    }
  });

  it('raw: the same provider accepts it', async () => {
    const client = await clientAt(double, { clientSecret: secret, basicAuthEncoding: 'raw' });
    try {
      const { claims } = await exchangeAt(double, client, { iss: double.issuer });
      assert.equal(claims.sub, 'user-1');
    } finally {
      client.close();
    }
  });
});
