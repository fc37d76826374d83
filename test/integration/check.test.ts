import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { deniedHeader as header } from '../support/browser.ts';
import { EnvoyClient, HttpModeClient, type Outcome } from '../support/envoy-client.ts';
import { startTestServer, testApp, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos, type UpstreamCheckResponse } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();

/** The app named in the response's dynamic metadata, as Envoy would log it. */
function appOf(response: UpstreamCheckResponse | undefined): string | undefined {
  const fields = (
    response?.dynamic_metadata as { fields?: Record<string, { stringValue?: string }> }
  )?.fields;
  return fields?.['app']?.stringValue;
}

/** ENVOY.md §3, asserted on the message as Envoy's own protos decode it. */
function assertEnvoyRules(outcome: Outcome): void {
  assert.notEqual(outcome.kind, 'error', 'a decision, not a gRPC error');
  const response = (outcome as { response?: UpstreamCheckResponse }).response;
  assert.ok(response, 'a CheckResponse was decoded');
  const code = response.status?.code ?? 0;
  if (outcome.kind === 'allow') {
    assert.equal(code, 0);
    assert.ok(response.ok_response, 'allow carries ok_response');
    assert.equal(response.denied_response, undefined);
    for (const h of [
      ...(response.ok_response.headers ?? []),
      ...(response.ok_response.response_headers_to_add ?? []),
    ]) {
      assert.notEqual(h.append, undefined, `append is explicit on ${h.header?.key}`);
    }
    for (const h of response.ok_response.headers ?? [])
      assert.equal(h.append?.value ?? false, false);
    for (const h of response.ok_response.response_headers_to_add ?? [])
      assert.equal(h.append?.value, true);
  } else {
    assert.notEqual(code, 0, 'every deny carries a non-zero code');
    assert.ok(response.denied_response, 'deny carries denied_response');
    assert.ok(response.denied_response.status?.code, 'deny sets its HTTP status');
    for (const h of response.denied_response.headers ?? []) {
      assert.equal(h.append?.value, false, `deny header ${h.header?.key} has append: false`);
    }
  }
}

let provider: TestProvider;
before(async () => {
  provider = await startTestProvider({ clients: [] });
});
after(async () => {
  await provider.close();
});

describe('Check over gRPC', () => {
  let server: TestServer;
  let envoy: EnvoyClient;

  before(async () => {
    server = await startTestServer({
      apps: [
        testApp(
          'grafana',
          {
            match: { hosts: ['grafana.example.com'] },
            publicPaths: [{ prefix: '/public/' }, { exact: '/healthz', methods: ['GET'] }],
          },
          provider.issuer,
        ),
        testApp('wild', { match: { hosts: ['*.wild.example.com'] } }, provider.issuer),
        testApp(
          'api',
          { match: { hosts: ['shared.example.com'], pathPrefix: '/api/' } },
          provider.issuer,
        ),
        testApp(
          'web',
          { match: { hosts: ['shared.example.com'], pathPrefix: '/' } },
          provider.issuer,
        ),
        testApp('internal', { match: { hosts: ['internal.invalid'] } }, provider.issuer),
      ],
    });
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 2000 });
  });

  after(async () => {
    envoy.close();
    await server.close();
  });

  const check = (
    url: string,
    init: { headers?: [string, string][]; method?: string } = {},
    contextExtensions?: Record<string, string>,
  ) => envoy.check({ url, ...init }, contextExtensions ? { contextExtensions } : {});

  it('chooses the app by exact host, port ignored', async () => {
    const outcome = await check('https://grafana.example.com:8443/d/abc');
    assertEnvoyRules(outcome);
    assert.equal(appOf((outcome as { response?: UpstreamCheckResponse }).response), 'grafana');
  });

  it('chooses the app by wildcard host, but not for the bare parent domain', async () => {
    const hit = await check('https://a.b.wild.example.com/');
    assert.equal(appOf((hit as { response?: UpstreamCheckResponse }).response), 'wild');
    const bare = await check('https://wild.example.com/');
    assert.equal(bare.kind, 'deny');
    assert.equal(appOf((bare as { response?: UpstreamCheckResponse }).response), undefined);
  });

  it('chooses the app by path prefix, first match wins', async () => {
    const api = await check('https://shared.example.com/api/v1/users');
    const web = await check('https://shared.example.com/index.html');
    assert.equal(appOf((api as { response?: UpstreamCheckResponse }).response), 'api');
    assert.equal(appOf((web as { response?: UpstreamCheckResponse }).response), 'web');
  });

  it('lets context_extensions.app win over host matching', async () => {
    const outcome = await check('https://grafana.example.com/', {}, { app: 'internal' });
    assertEnvoyRules(outcome);
    assert.equal(appOf((outcome as { response?: UpstreamCheckResponse }).response), 'internal');
  });

  it('denies an unknown app named by a route instead of falling back to the host', async () => {
    const outcome = await check('https://grafana.example.com/', {}, { app: 'nope' });
    assertEnvoyRules(outcome);
    assert.equal(outcome.kind === 'deny' && outcome.status, 403);
  });

  it('denies an unmatched host with 403 and a non-zero gRPC code', async () => {
    const outcome = await check('https://unknown.example.org/');
    assertEnvoyRules(outcome);
    assert.equal(outcome.kind, 'deny');
    assert.equal(outcome.kind === 'deny' && outcome.status, 403);
    const response = (outcome as { response?: UpstreamCheckResponse }).response!;
    assert.equal(response.status?.code, 7);
    assert.match(outcome.kind === 'deny' ? outcome.body : '', /no app for host/);
  });

  it('allows a public path with forged identity headers removed', async () => {
    const outcome = await check('https://grafana.example.com/public/app.js', {
      headers: [
        ['x-auth-request-user', 'admin'],
        ['X-Auth-Request-Email', 'admin@example.com'],
        ['x-unrelated', 'kept'],
      ],
    });
    assertEnvoyRules(outcome);
    assert.equal(outcome.kind, 'allow');
    if (outcome.kind !== 'allow') return;
    assert.equal(outcome.upstream.headers.get('x-auth-request-user'), undefined);
    assert.equal(outcome.upstream.headers.get('x-auth-request-email'), undefined);
    assert.equal(outcome.upstream.headers.get('x-unrelated'), 'kept');
    assert.ok(outcome.response?.ok_response?.headers_to_remove?.includes('x-auth-request-user'));
  });

  it('honours methods on public paths and never lets dot segments borrow them', async () => {
    assert.equal((await check('https://grafana.example.com/healthz')).kind, 'allow');
    assert.equal(
      (await check('https://grafana.example.com/healthz', { method: 'POST' })).kind,
      'deny',
    );
    assert.equal((await check('https://grafana.example.com/public/../admin')).kind, 'deny');
  });

  it('answers a request without a session with 401 and a challenge (login comes later)', async () => {
    const outcome = await check('https://grafana.example.com/d/abc', {
      headers: [['accept', 'application/json']],
    });
    assertEnvoyRules(outcome);
    assert.equal(outcome.kind === 'deny' && outcome.status, 401);
    assert.equal(header(outcome, 'www-authenticate'), 'Bearer realm="grafana"');
    assert.equal(header(outcome, 'content-type'), 'application/json');
    assert.equal((outcome as { response?: UpstreamCheckResponse }).response?.status?.code, 16);
  });

  it('gives gRPC callers grpc-status 16', async () => {
    const outcome = await check('https://grafana.example.com/pkg.Service/Method', {
      method: 'POST',
      headers: [['content-type', 'application/grpc']],
    });
    assert.equal(outcome.kind, 'deny');
    assert.equal(outcome.kind === 'deny' && outcome.grpcStatus, 16);
  });

  it('denies malformed input with 400 and a short reason, never a gRPC error', async () => {
    const { response, error } = await envoy.checkRaw({
      attributes: {
        request: {
          http: {
            method: 'GET',
            path: 'http://evil.example/',
            host: 'grafana.example.com',
            scheme: 'https',
          },
        },
      },
    });
    assert.equal(error, undefined);
    assert.equal(response?.denied_response?.status?.code, 400);
    assert.match(response?.denied_response?.body ?? '', /origin form/);
    assert.notEqual(response?.status?.code ?? 0, 0);
  });

  it('accepts header_map (encode_raw_headers) as well as headers', async () => {
    const raw = new EnvoyClient({
      target: server.grpcTarget,
      protos,
      timeoutMs: 2000,
      encodeRawHeaders: true,
    });
    try {
      const outcome = await raw.check({
        url: 'https://grafana.example.com/public/x',
        headers: [['x-auth-request-user', 'forged']],
      });
      assert.equal(outcome.kind, 'allow');
      assert.equal(
        outcome.kind === 'allow' && outcome.upstream.headers.get('x-auth-request-user'),
        undefined,
      );
    } finally {
      raw.close();
    }
  });

  it('counts checks by app, verdict and reason on /metrics', async () => {
    await check('https://grafana.example.com/public/x');
    const text = await (await fetch(`${server.adminBase}/metrics`)).text();
    assert.match(
      text,
      /eoa_checks_total\{app="grafana",verdict="allow",reason="public_path"\} [1-9]/,
    );
    assert.match(text, /eoa_checks_total\{app="-",verdict="deny",reason="no_app"\} [1-9]/);
    assert.match(
      text,
      /eoa_check_duration_seconds_bucket\{le="0.001",app="grafana",verdict="allow"\}/,
    );
    assert.match(text, /eoa_checks_in_flight 0/);
    assert.doesNotMatch(text, /example\.com|admin@/, 'no host, path or user in labels');
  });

  it('serves /healthz and /readyz', async () => {
    assert.equal((await fetch(`${server.adminBase}/healthz`)).status, 200);
    const ready = await fetch(`${server.adminBase}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { ready: true, draining: false, waiting: [] });
  });
});

describe('Check over HTTP (ext_authz http_service)', () => {
  let server: TestServer;
  let client: HttpModeClient;

  before(async () => {
    server = await startTestServer({
      apps: [
        testApp(
          'grafana',
          {
            match: { hosts: ['grafana.example.com'] },
            publicPaths: [{ prefix: '/public/' }],
          },
          provider.issuer,
        ),
      ],
    });
    client = new HttpModeClient({
      baseUrl: server.httpBase,
      allowedHeaders: [
        'cookie',
        'accept',
        'x-forwarded-proto',
        'x-auth-request-user',
        'content-type',
      ],
      allowedUpstreamHeaders: ['x-auth-request-user', 'x-auth-request-email'],
      allowedClientHeadersOnSuccess: ['set-cookie'],
      timeoutMs: 2000,
    });
  });

  after(async () => {
    client.close();
    await server.close();
  });

  it('allows a public path with 200 and lists the identity headers to remove', async () => {
    const outcome = await client.check({
      url: 'https://grafana.example.com/public/a.css',
      headers: [['x-auth-request-user', 'forged']],
    });
    assert.equal(outcome.kind, 'allow');
    if (outcome.kind !== 'allow') return;
    assert.equal(outcome.authzResponse?.status, 200);
    assert.equal(outcome.upstream.headers.get('x-auth-request-user'), undefined);
  });

  it('denies without a session with 401 and the same body as gRPC mode', async () => {
    const outcome = await client.check({
      url: 'https://grafana.example.com/x',
      headers: [['accept', 'application/json']],
    });
    assert.equal(outcome.kind, 'deny');
    if (outcome.kind !== 'deny') return;
    assert.equal(outcome.status, 401);
    assert.deepEqual(JSON.parse(outcome.body), {
      error: 'unauthenticated',
      message: 'authentication required',
    });
    assert.equal(
      outcome.headers.find(([n]) => n === 'www-authenticate')?.[1],
      'Bearer realm="grafana"',
    );
  });

  it('denies an unmatched host with 403', async () => {
    const outcome = await client.check({ url: 'https://nobody.example.org/' });
    assert.equal(outcome.kind === 'deny' && outcome.status, 403);
  });
});

describe('allowUnmatched', () => {
  it('lets requests no app claims through untouched', async () => {
    const server = await startTestServer({
      allowUnmatched: true,
      apps: [testApp('a', { match: { hosts: ['a.example'] } }, provider.issuer)],
    });
    const envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 2000 });
    try {
      const outcome = await envoy.check({
        url: 'https://b.example/',
        headers: [['x-auth-request-user', 'x']],
      });
      assert.equal(outcome.kind, 'allow');
      assert.equal(
        outcome.kind === 'allow' && outcome.upstream.headers.get('x-auth-request-user'),
        'x',
      );
    } finally {
      envoy.close();
      await server.close();
    }
  });
});
