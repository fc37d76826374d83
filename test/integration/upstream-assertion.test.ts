/** `upstreamAssertion`: an upstream verifies the signed identity with `jose` against the published JWKS, across a key rotation. */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { repoPath } from '../deploy/repo-path.ts';
import { waitFor } from '../support/redis-servers.ts';
import { AppBrowser } from '../support/browser.ts';
import { EnvoyClient, HttpModeClient, type Outcome } from '../support/envoy-client.ts';
import {
  startTestServer,
  testConfig,
  testSessionSecret,
  type TestServer,
} from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const web = 'https://web.example.com';
const clientSecret = 'upstream-assertion-client-secret-long-enough';
const audience = 'https://upstream.example.com';
const issuer = 'urn:envoy-oidc-authz:web';
const header = 'x-auth-request-assertion';

function ecPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .privateKey.export({ format: 'pem', type: 'pkcs8' })
    .toString();
}

function assertionOf(outcome: Outcome): string {
  assert.equal(outcome.kind, 'allow', `allowed, not ${JSON.stringify(outcome)}`);
  const token = outcome.kind === 'allow' ? outcome.upstream.headers.get(header) : undefined;
  assert.ok(token !== undefined, 'the upstream gets an assertion');
  return token;
}

describe('upstreamAssertion', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;
  let clockOffset = 0;
  const serverNow = () => Date.now() + clockOffset;
  const logLines: string[] = [];
  const keyA = ecPem();
  const keyB = ecPem();

  const appConfig = (signingKey: string | undefined) => ({
    apps: [
      {
        name: 'web',
        match: { hosts: ['web.example.com'] },
        oidc: { issuer: provider.issuer, clientId: 'web', clientSecret },
        session: { secrets: [testSessionSecret] },
        bearer: { enabled: true, audiences: [audience] },
        publicPaths: [{ prefix: '/public/' }],
        upstreamAssertion: {
          audience,
          ttl: '2m',
          ...(signingKey === undefined ? {} : { signingKey }),
          claims: { roles: 'realm_access.roles' },
        },
      },
    ],
  });

  /** An upstream as the docs show it: keys from the JWKS the HTTP listener serves. */
  let jwks: ReturnType<typeof createRemoteJWKSet>;
  const verify = async (token: string): Promise<JWTPayload> => {
    const { payload } = await jwtVerify(token, jwks, {
      issuer,
      audience,
      algorithms: ['ES256'],
      currentDate: new Date(serverNow()),
    });
    return payload;
  };

  before(async () => {
    provider = await startTestProvider({
      clients: [{ clientId: 'web', clientSecret, redirectUris: [`${web}/oauth2/callback`] }],
      users: [
        {
          sub: 'zoë',
          email: 'zoë@exämple.com',
          emailVerified: true,
          name: 'Zoë Ünïcödé 山田 🙂',
          groups: ['admins', 'x,ops'],
          extraClaims: { realm_access: { roles: ['editor'] } },
        },
      ],
    });
    const logger = createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk: Buffer, _encoding, done) {
          logLines.push(chunk.toString());
          done();
        },
      }),
    });
    server = await startTestServer(appConfig(keyA), { now: serverNow, logger });
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
    jwks = createRemoteJWKSet(new URL(`${server.httpBase}/.well-known/jwks.json`), {
      cooldownDuration: 0,
      cacheMaxAge: 0,
    });
  });

  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  async function sessionCookie(): Promise<string> {
    const browser = new AppBrowser(envoy);
    await browser.login(`${web}/`, 'zoë');
    return browser.cookieHeader()!;
  }

  it("signs the session's identity, non-ASCII names intact, and an upstream verifies it with jose", async () => {
    const cookie = await sessionCookie();
    const token = assertionOf(
      await envoy.check({ url: `${web}/x`, headers: [['cookie', cookie]] }),
    );
    const payload = await verify(token);
    assert.equal(payload.sub, 'zoë');
    assert.equal(payload['email'], 'zoë@exämple.com');
    assert.equal(payload['name'], 'Zoë Ünïcödé 山田 🙂');
    assert.deepEqual(payload['groups'], ['admins', 'x,ops'], 'lists stay lists, commas and all');
    assert.deepEqual(payload['roles'], ['editor']);
    assert.equal(payload.exp! - payload.iat!, 120);
    assert.equal(typeof payload.jti, 'string');
    assert.equal(payload['client_id'], undefined, 'a session has no calling client');
    const { kid, alg, typ } = decodeProtectedHeader(token);
    assert.equal(alg, 'ES256');
    assert.equal(typ, 'JWT');
    assert.ok(kid !== undefined && kid.length === 43, 'kid is the key thumbprint');
  });

  it('verifies with the Node snippet of docs/upstream-identity.md, as it is written', async () => {
    const page = readFileSync(repoPath('docs/upstream-identity.md'), 'utf8');
    const at = page.indexOf('<!-- assertion-verify-node -->');
    const snippet = /```js\n([\s\S]*?)```/.exec(page.slice(at))?.[1];
    assert.ok(at >= 0 && snippet !== undefined, 'the page has the Node snippet');
    const constant = (name: string, value: string) => {
      const pattern = new RegExp(`const ${name} = '[^']*';`);
      assert.match(snippet, pattern);
      return (source: string) => source.replace(pattern, `const ${name} = '${value}';`);
    };
    const source = [
      constant('JWKS_URL', `${server.httpBase}/.well-known/jwks.json`),
      constant('ISSUER', issuer),
      constant('AUDIENCE', audience),
    ].reduce((text, set) => set(text), snippet);
    // Beside the compiled tests, so that `jose` resolves from the project's node_modules.
    const file = join(dirname(fileURLToPath(import.meta.url)), `docs-snippet-${process.pid}.mjs`);
    writeFileSync(file, source);
    try {
      const { userOf } = (await import(pathToFileURL(file).href)) as {
        userOf: (headers: Record<string, string>) => Promise<JWTPayload>;
      };
      const cookie = await sessionCookie();
      const token = assertionOf(
        await envoy.check({ url: `${web}/x`, headers: [['cookie', cookie]] }),
      );
      assert.equal((await userOf({ [header]: token }))['name'], 'Zoë Ünïcödé 山田 🙂');
      await assert.rejects(userOf({ [header]: `${token.slice(0, -4)}AAAA` }));
      await assert.rejects(userOf({}));
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('hands the same assertion to later Checks until half its lifetime has passed', async () => {
    const cookie = await sessionCookie();
    const check = async () =>
      assertionOf(await envoy.check({ url: `${web}/x`, headers: [['cookie', cookie]] }));
    const first = await check();
    assert.equal(await check(), first);
    clockOffset += 55_000;
    assert.equal(await check(), first, 'still more than half of 2m left');
    clockOffset += 10_000;
    const renewed = await check();
    assert.notEqual(renewed, first, 're-signed near expiry');
    const [a, b] = [await verify(first), await verify(renewed)];
    assert.notEqual(a.jti, b.jti);
    assert.ok(b.iat! >= a.iat! + 60);
    assert.equal(await check(), renewed);
  });

  it('removes forged copies of the assertion header, set or not', async () => {
    const cookie = await sessionCookie();
    const forged = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.';
    const allowed = await envoy.check({
      url: `${web}/x`,
      headers: [
        ['cookie', cookie],
        [header, forged],
        ['X_Auth_Request_Assertion', forged],
      ],
    });
    const token = assertionOf(allowed);
    assert.notEqual(token, forged);
    assert.equal((await verify(token)).sub, 'zoë');
    assert.equal(
      allowed.kind === 'allow' && allowed.upstream.headers.get('x_auth_request_assertion'),
      undefined,
    );
    const open = await envoy.check({ url: `${web}/public/a.js`, headers: [[header, forged]] });
    assert.equal(open.kind, 'allow');
    assert.equal(open.kind === 'allow' && open.upstream.headers.get(header), undefined);
  });

  it("signs a bearer caller's identity with its client, never outliving the token", async () => {
    const exp = Math.floor(serverNow() / 1000) + 30;
    const token = await provider.signJwt(
      { sub: 'svc', aud: audience, client_id: 'ci-runner', name: 'Build Bot', exp },
      { typ: 'at+jwt' },
    );
    const check = async () =>
      assertionOf(
        await envoy.check({ url: `${web}/api`, headers: [['authorization', `Bearer ${token}`]] }),
      );
    const first = await check();
    const payload = await verify(first);
    assert.equal(payload.sub, 'svc');
    assert.equal(payload['client_id'], 'ci-runner');
    assert.equal(payload['name'], 'Build Bot');
    assert.equal(payload.exp, exp, 'capped at the bearer token’s own exp');
    assert.equal(await check(), first, 'kept for the verified token');
  });

  it('serves the JWKS on the HTTP listener with public keys only', async () => {
    const response = await fetch(`${server.httpBase}/.well-known/jwks.json`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/jwk-set+json');
    const set = (await response.json()) as { keys: Record<string, unknown>[] };
    assert.ok(set.keys.length >= 1);
    for (const key of set.keys) {
      assert.equal(key['d'], undefined, 'no private member');
      assert.equal(key['use'], 'sig');
    }
    // Should Envoy's http_service ever send a Check for this path, no identity gets through.
    assert.match(
      response.headers.get('x-envoy-auth-headers-to-remove') ?? '',
      /x-auth-request-assertion/,
    );
  });

  it('carries the assertion in HTTP mode too', async () => {
    const cookie = await sessionCookie();
    const http = new HttpModeClient({
      baseUrl: server.httpBase,
      allowedHeaders: ['cookie', { prefix: 'x-auth-request-' }],
      allowedUpstreamHeaders: [{ prefix: 'x-auth-request-' }],
      timeoutMs: 5_000,
    });
    try {
      const outcome = await http.check({
        url: `${web}/x`,
        headers: [
          ['cookie', cookie],
          [header, 'forged'],
        ],
      });
      assert.equal((await verify(assertionOf(outcome))).sub, 'zoë');
    } finally {
      http.close();
    }
  });

  it('rotates keys on reload: the new key signs, tokens of the old one verify until they expire', async () => {
    const cookie = await sessionCookie();
    const check = async () =>
      assertionOf(await envoy.check({ url: `${web}/x`, headers: [['cookie', cookie]] }));
    const before = await check();
    const oldKid = decodeProtectedHeader(before).kid;

    server.handle.reload(testConfig(appConfig(keyB)));
    const afterRotation = await check();
    const newKid = decodeProtectedHeader(afterRotation).kid;
    assert.notEqual(newKid, oldKid, 'the new key signs at once');
    assert.equal((await verify(afterRotation)).sub, 'zoë');
    assert.equal((await verify(before)).sub, 'zoë', 'a token in flight still verifies');
    assert.ok(logLines.some((line) => line.includes('signing key rotated')));

    const kids = async () =>
      (
        (await (await fetch(`${server.httpBase}/.well-known/jwks.json`)).json()) as {
          keys: { kid: string }[];
        }
      ).keys.map((key) => key.kid);
    assert.deepEqual((await kids()).sort(), [oldKid, newKid].sort());
    clockOffset += 120_000 + 60_000 + 1_000;
    assert.deepEqual(await kids(), [newKid], 'gone once its last token expired');
    await assert.rejects(verify(before));
  });

  it('generates a key when given none, and says it suits one replica only', async () => {
    server.handle.reload(testConfig(appConfig(undefined)));
    const token = assertionOf(
      await envoy.check({ url: `${web}/x`, headers: [['cookie', await sessionCookie()]] }),
    );
    assert.equal((await verify(token)).sub, 'zoë');
    assert.ok(logLines.some((line) => line.includes('suits one replica only')));
  });
});

describe('upstreamAssertion keys at config load', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eoa-assertion-'));
  const load = (assertion: Record<string, unknown>) =>
    loadConfig(
      {
        text: JSON.stringify({
          apps: [
            {
              name: 'web',
              oidc: { issuer: 'https://idp.example.com', clientId: 'web', clientSecret },
              session: { secrets: [testSessionSecret] },
              upstreamAssertion: { audience, ...assertion },
            },
          ],
        }),
        format: 'json',
      },
      {},
    );
  const problems = (assertion: Record<string, unknown>) => {
    const result = load(assertion);
    assert.equal(result.ok, false, 'refused');
    return result.ok ? [] : result.problems.map((p) => `${p.path}: ${p.message}`);
  };

  it('refuses a key file that holds no usable key, naming the key and not its content', () => {
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(
      garbage,
      '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n',
    );
    const [message] = problems({ signingKeyFile: garbage });
    assert.match(message!, /apps\[0\]\.upstreamAssertion\.signingKey: is not a usable signing key/);
    assert.doesNotMatch(message!, /bm90IGEga2V5/);
  });

  it('refuses a missing key file by its path', () => {
    const [message] = problems({ signingKeyFile: join(dir, 'missing.pem') });
    assert.match(message!, /upstreamAssertion\.signingKeyFile: cannot read .*missing\.pem: ENOENT/);
  });

  it('refuses a public key first, a key that cannot sign alg, and text that is no key', () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const publicPem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    assert.match(problems({ signingKey: publicPem })[0]!, /first key must be a private key/);
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    assert.match(problems({ signingKey: pem, alg: 'RS256' })[0]!, /cannot sign RS256/);
    assert.match(problems({ signingKey: 'changeme' })[0]!, /neither PEM nor a JWK/);
  });

  it('reads a key from a file, and a JWK Set whose other keys are only published', () => {
    const file = join(dir, 'key.pem');
    writeFileSync(file, ecPem());
    assert.equal(load({ signingKeyFile: file }).ok, true);
    const signing = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
    const next = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({
      format: 'jwk',
    });
    const result = load({ signingKey: JSON.stringify({ keys: [signing, next] }) });
    assert.equal(result.ok, true, JSON.stringify(!result.ok && result.problems));
  });

  it('refuses an assertion header that is already an identity header, or a reserved claim', () => {
    assert.match(
      problems({ header: 'x-auth-request-user' })[0]!,
      /header: is already an identity header/,
    );
    assert.match(problems({ claims: { exp: 'exp' } })[0]!, /claims\.exp: is set by the server/);
  });
});

describe('upstreamAssertion across a session refresh', () => {
  let provider: TestProvider;
  let server: TestServer;
  let envoy: EnvoyClient;

  before(async () => {
    provider = await startTestProvider({
      clients: [{ clientId: 'web', clientSecret, redirectUris: [`${web}/oauth2/callback`] }],
      accessTokenTtlSeconds: 6,
    });
    server = await startTestServer({
      apps: [
        {
          name: 'web',
          match: { hosts: ['web.example.com'] },
          oidc: { issuer: provider.issuer, clientId: 'web', clientSecret },
          // Due at once: every Check starts (or picks up) a refresh in the background.
          refresh: { skew: '10s' },
          session: { secrets: [testSessionSecret] },
          upstreamAssertion: { audience, ttl: '5m' },
        },
      ],
    });
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
  });

  after(async () => {
    envoy.close();
    await server.close();
    await provider.close();
  });

  it('signs anew for the refreshed session instead of handing out the one of the old tokens', async () => {
    const browser = new AppBrowser(envoy);
    await browser.login(`${web}/`);
    const grants = () => provider.counters().grants['refresh_token']?.['success'] ?? 0;
    const before = assertionOf(await browser.request(`${web}/x`, { navigate: false }));
    await waitFor('the background refresh', () => grants() >= 1);
    // This Check picks up the refreshed tokens; its assertion is far from half of its 5m.
    const refreshed = assertionOf(await browser.request(`${web}/y`, { navigate: false }));
    assert.notEqual(refreshed, before, 'the refreshed session is signed for itself');
    const [a, b] = [before, refreshed].map(
      (token) =>
        JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as JWTPayload,
    );
    assert.equal(b!.sub, a!.sub);
    assert.notEqual(b!.jti, a!.jti);
  });
});

describe('upstreamAssertion with one key shared by two replicas', () => {
  let provider: TestProvider;
  const replicas: TestServer[] = [];
  const key = ecPem();

  before(async () => {
    provider = await startTestProvider({ clients: [] });
    for (let i = 0; i < 2; i++) {
      replicas.push(
        await startTestServer({
          apps: [
            {
              name: 'web',
              match: { hosts: ['web.example.com'] },
              oidc: { issuer: provider.issuer, clientId: 'web', clientSecret },
              session: { secrets: [testSessionSecret] },
              bearer: { enabled: true, audiences: [audience] },
              upstreamAssertion: { audience, signingKey: key },
            },
          ],
        }),
      );
    }
  });

  after(async () => {
    for (const replica of replicas) await replica.close();
    await provider.close();
  });

  it("verifies an assertion of one replica against the other replica's JWKS", async () => {
    const token = await provider.signJwt(
      { sub: 'svc', aud: audience, azp: 'ci', exp: Math.floor(Date.now() / 1000) + 300 },
      { typ: 'at+jwt' },
    );
    const envoy = new EnvoyClient({ target: replicas[0]!.grpcTarget, protos, timeoutMs: 5_000 });
    try {
      const assertion = assertionOf(
        await envoy.check({ url: `${web}/api`, headers: [['authorization', `Bearer ${token}`]] }),
      );
      const other = createRemoteJWKSet(new URL(`${replicas[1]!.httpBase}/.well-known/jwks.json`));
      const { payload } = await jwtVerify(assertion, other, { issuer, audience });
      assert.equal(payload.sub, 'svc');
      assert.equal(payload['client_id'], 'ci');
    } finally {
      envoy.close();
    }
  });
});
