/**
 * Tracing end to end: real servers over a real OpenID Provider (and a real redis-server) export
 * their spans to an OTLP/HTTP receiver in this process. A Check continues the W3C or B3 trace
 * Envoy sends, starts its own when the headers are missing or malformed, follows the caller's
 * sampling, and has provider and store calls as child spans; a collector that is down, slow or
 * failing costs Checks nothing and leaves one log line.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { captureLog } from '../resilience/log-capture.ts';
import { AppBrowser, statusOf } from '../support/browser.ts';
import { EnvoyClient } from '../support/envoy-client.ts';
import {
  startOtlpReceiver,
  type OtlpReceiver,
  type ReceivedSpan,
} from '../support/otlp-receiver.ts';
import { freePort, startRedis, waitFor, type RedisProcess } from '../support/redis-servers.ts';
import {
  signInAppConfig,
  startTestServer,
  testConfig,
  type TestServer,
} from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const clientSecret = 'tracing-client-secret-0123456789';
const quiet = { probeInterval: '1h' };
const xhr: [string, string][] = [['accept', 'application/json']];

const hex = (bytes: number): string =>
  randomUUID()
    .replaceAll('-', '')
    .slice(0, bytes * 2);
const newTraceId = (): string => hex(16);
const newSpanId = (): string => hex(8);

/** The tracing section of a test server: exports at once, to `endpoint`. */
function tracing(endpoint: string, more: Record<string, unknown> = {}): Record<string, unknown> {
  return { enabled: true, endpoint, flushInterval: '10ms', ...more };
}

/** The Check span of the request to `path` (each test request has a path of its own). */
const isCheck = (path: string) => (span: ReceivedSpan) =>
  span.name === 'Check' && span.attributes['url.path'] === path;

/** The Check span in trace `traceId`. */
const isCheckIn = (traceId: string) => (span: ReceivedSpan) =>
  span.name === 'Check' && span.traceId === traceId;

describe('tracing', () => {
  let provider: TestProvider;
  let receiver: OtlpReceiver;
  let server: TestServer;
  let envoy: EnvoyClient;
  let browser: AppBrowser;

  before(async () => {
    provider = await startTestProvider({
      clients: ['web', 'srv'].map((name) => ({
        clientId: name,
        clientSecret,
        redirectUris: [`https://${name}.example.com/oauth2/callback`],
      })),
    });
    receiver = await startOtlpReceiver();
    server = await startTestServer({
      tracing: tracing(receiver.endpoint, {
        serviceName: 'authz-under-test',
        headers: { authorization: 'Bearer collector-credential-0123456789' },
      }),
      apps: [signInAppConfig({ name: 'web', clientSecret, oidc: quiet }, provider.issuer)],
    });
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 });
    browser = new AppBrowser(envoy);
    await browser.login('https://web.example.com/');
  });
  after(async () => {
    envoy.close();
    await server.close();
    await receiver.close();
    await provider.close();
  });

  /** One cookie Check with extra headers, to a path of its own; returns the path once allowed. */
  async function cookieCheck(headers: readonly (readonly [string, string])[]): Promise<string> {
    const path = `/reports/${randomUUID()}`;
    const answer = await browser.request(`https://web.example.com${path}?code=abc&state=xyz`, {
      headers,
    });
    assert.equal(statusOf(answer), 'allow');
    return path;
  }

  it('continues a W3C traceparent: same trace, the caller span as parent, tracestate kept', async () => {
    const traceId = newTraceId();
    const parent = newSpanId();
    const path = await cookieCheck([
      ['traceparent', `00-${traceId}-${parent}-01`],
      ['tracestate', 'envoy=abc,other=1'],
    ]);
    const span = await receiver.span('the Check span', isCheck(path));
    assert.equal(span.traceId, traceId);
    assert.equal(span.parentSpanId, parent);
    assert.equal(span.traceState, 'envoy=abc,other=1');
    assert.match(span.spanId, /^[0-9a-f]{16}$/);
    assert.notEqual(span.spanId, parent);
    assert.equal(span.kind, 2);
    assert.equal(span.serviceName, 'authz-under-test');
    assert.match(String(span.attributes['eoa.request_id']), /^\d+$/, "Envoy's request id");
    assert.deepEqual(span.attributes, {
      'eoa.request_id': span.attributes['eoa.request_id'],
      'http.request.method': 'GET',
      'server.address': 'web.example.com',
      'url.path': path,
      'eoa.app': 'web',
      'eoa.verdict': 'allow',
      'eoa.reason': 'session',
      'http.response.status_code': 200,
    });
    assert.deepEqual(span.status, {});
    assert.ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano));
    const startedMs = Number(BigInt(span.startTimeUnixNano) / 1_000_000n);
    assert.ok(Math.abs(startedMs - Date.now()) < 60_000, 'times are Unix epoch nanoseconds');
  });

  it('sends the configured headers and never the cookie, the query or the credential in a span', () => {
    assert.ok(receiver.requests.length > 0);
    for (const headers of receiver.requests) {
      assert.equal(headers['authorization'], 'Bearer collector-credential-0123456789');
      assert.equal(headers['content-type'], 'application/json');
    }
    const text = receiver.bodies.join('\n');
    for (const value of browser.cookies.values()) assert.ok(!text.includes(value), 'no cookie');
    assert.ok(!text.includes('code=abc') && !text.includes('xyz'), 'no query');
    assert.ok(!text.includes('collector-credential'), 'no collector credential');
  });

  it('continues B3 multi-header and single-header parents', async () => {
    const multiTrace = newTraceId();
    const multiParent = newSpanId();
    const multi = await cookieCheck([
      ['x-b3-traceid', multiTrace],
      ['x-b3-spanid', multiParent],
      ['x-b3-parentspanid', newSpanId()],
      ['x-b3-sampled', '1'],
    ]);
    const singleTrace = hex(8);
    const singleParent = newSpanId();
    const single = await cookieCheck([['b3', `${singleTrace}-${singleParent}-1-${newSpanId()}`]]);
    const multiSpan = await receiver.span('the B3 multi Check', isCheck(multi));
    assert.equal(multiSpan.traceId, multiTrace);
    assert.equal(multiSpan.parentSpanId, multiParent);
    const singleSpan = await receiver.span('the B3 single Check', isCheck(single));
    assert.equal(singleSpan.traceId, `0000000000000000${singleTrace}`, '64-bit ids are padded');
    assert.equal(singleSpan.parentSpanId, singleParent);
  });

  it('starts a new trace without a parent', async () => {
    const path = await cookieCheck([]);
    const span = await receiver.span('the root Check', isCheck(path));
    assert.match(span.traceId, /^[0-9a-f]{32}$/);
    assert.doesNotMatch(span.traceId, /^0+$/);
    assert.equal(span.parentSpanId, undefined);
  });

  it('starts a new trace for every malformed parent, and the Check is decided as usual', async () => {
    const traceId = newTraceId();
    const spanId = newSpanId();
    const malformed: readonly (readonly (readonly [string, string])[])[] = [
      [['traceparent', `00-${traceId.toUpperCase()}-${spanId}-01`]],
      [['traceparent', `ff-${traceId}-${spanId}-01`]],
      [['traceparent', `00-${'0'.repeat(32)}-${spanId}-01`]],
      [['traceparent', `00-${traceId}-${'0'.repeat(16)}-01`]],
      [['traceparent', `00-${traceId}-${spanId}-01-${'a'.repeat(8000)}`]],
      [['traceparent', `00-${traceId.slice(4)}-${spanId}-01`]],
      [['traceparent', `00-${traceId}-${spanId}-zz`]],
      [['traceparent', 'ünïcödé-🙂']],
      [
        ['traceparent', `00-${traceId}-${spanId}-01`],
        ['traceparent', `00-${newTraceId()}-${spanId}-01`],
      ],
      [['b3', `${traceId}-${spanId.toUpperCase()}-1`]],
      [['b3', `${traceId}-${spanId}-x`]],
      [['b3', 'garbage']],
      [
        ['x-b3-traceid', `${traceId}00`],
        ['x-b3-spanid', spanId],
      ],
      [
        ['x-b3-traceid', traceId],
        ['x-b3-spanid', 'not-hex-at-all!'],
      ],
      [['x-b3-spanid', spanId]],
    ];
    for (const headers of malformed) {
      const path = await cookieCheck(headers);
      const span = await receiver.span(
        `the Check with ${JSON.stringify(headers).slice(0, 80)}`,
        isCheck(path),
      );
      assert.notEqual(span.traceId, traceId, JSON.stringify(headers).slice(0, 80));
      assert.equal(span.parentSpanId, undefined);
      assert.equal(span.attributes['eoa.verdict'], 'allow');
    }
  });

  it('exports nothing for a caller that did not sample, W3C or B3', async () => {
    const unsampled = [newTraceId(), newTraceId(), newTraceId(), newTraceId()];
    await cookieCheck([['traceparent', `00-${unsampled[0]}-${newSpanId()}-00`]]);
    await cookieCheck([
      ['x-b3-traceid', unsampled[1]!],
      ['x-b3-spanid', newSpanId()],
      ['x-b3-sampled', '0'],
    ]);
    await cookieCheck([['b3', `${unsampled[2]}-${newSpanId()}-0`]]);
    await cookieCheck([
      ['traceparent', `00-${unsampled[3]}-${newSpanId()}-00`],
      ['b3', '1'],
    ]);
    await cookieCheck([['b3', '0']]);
    // Spans leave in order: once a later Check's span is in, an earlier one would be too.
    const later = await cookieCheck([]);
    await receiver.span('a later Check', isCheck(later));
    const traces = new Set(receiver.spans.map((span) => span.traceId));
    for (const traceId of unsampled) assert.ok(!traces.has(traceId), traceId);
    const checks = receiver.spans.filter((span) => span.name === 'Check');
    const requestIds = new Set(checks.map((span) => span.attributes['eoa.request_id']));
    assert.equal(requestIds.size, checks.length, 'one span per Check');
  });

  it('has the token endpoint call of a login as a child span of the callback Check', async () => {
    const fresh = new AppBrowser(envoy);
    const { callbackUrl } = await fresh.startAndAuthenticate('https://web.example.com/a');
    const traceId = newTraceId();
    const answer = await fresh.request(callbackUrl.href, {
      headers: [['traceparent', `00-${traceId}-${newSpanId()}-01`]],
    });
    assert.equal(statusOf(answer), 302);
    const check = await receiver.span('the callback Check', isCheckIn(traceId));
    assert.equal(check.attributes['eoa.reason'], 'callback');
    assert.equal(check.attributes['url.path'], '/oauth2/callback');
    const token = await receiver.span(
      'the token call',
      (span) => span.traceId === traceId && span.name === 'provider token',
    );
    assert.equal(token.parentSpanId, check.spanId);
    assert.equal(token.kind, 3);
    assert.equal(token.attributes['eoa.provider.endpoint'], 'token');
    assert.deepEqual(token.status, {});
    assert.ok(BigInt(token.startTimeUnixNano) >= BigInt(check.startTimeUnixNano));
    assert.ok(BigInt(token.endTimeUnixNano) <= BigInt(check.endTimeUnixNano));
    const code = callbackUrl.searchParams.get('code') ?? '';
    assert.ok(code.length > 0 && !receiver.bodies.join('').includes(code), 'no code in a span');
  });

  it('traces a Check that came to the HTTP listener', async () => {
    const traceId = newTraceId();
    const parent = newSpanId();
    const requestId = randomUUID();
    // node:http, not fetch(): fetch sets `host` itself.
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${server.httpBase}/private?token=secret-query`,
        {
          headers: {
            host: 'web.example.com',
            'x-request-id': requestId,
            traceparent: `00-${traceId}-${parent}-01`,
            accept: 'application/json',
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 401);
    const span = await receiver.span('the HTTP Check', isCheckIn(traceId));
    assert.equal(span.traceId, traceId);
    assert.equal(span.parentSpanId, parent);
    assert.equal(span.attributes['url.path'], '/private');
    assert.equal(span.attributes['eoa.request_id'], requestId);
  });

  it('traces a malformed request too, continuing its caller', async () => {
    const traceId = newTraceId();
    const answer = await envoy.check({
      url: 'https://web.example.com/x',
      headers: [
        ['traceparent', `00-${traceId}-${newSpanId()}-01`],
        ['cookie', 'bad name=1'],
      ],
    });
    assert.equal(statusOf(answer), 400);
    const span = await receiver.span('the refused Check', isCheckIn(traceId));
    assert.equal(span.traceId, traceId);
    assert.equal(span.attributes['eoa.reason'], 'bad_request');
  });
});

describe('tracing a server session on redis-server', () => {
  let provider: TestProvider;
  let receiver: OtlpReceiver;
  let redis: RedisProcess;
  let server: TestServer;
  let envoy: EnvoyClient;

  before(async () => {
    redis = await startRedis();
    provider = await startTestProvider({
      clients: [
        {
          clientId: 'srv',
          clientSecret,
          redirectUris: ['https://srv.example.com/oauth2/callback'],
        },
      ],
    });
    receiver = await startOtlpReceiver();
    server = await startTestServer({
      tracing: tracing(receiver.endpoint),
      store: { type: 'redis', redis: { url: redis.url } },
      apps: [
        signInAppConfig(
          { name: 'srv', clientSecret, oidc: quiet, session: { store: 'server' } },
          provider.issuer,
        ),
      ],
    });
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 });
  });
  after(async () => {
    envoy.close();
    await server.close();
    await receiver.close();
    await provider.close();
    await redis.stop();
  });

  it('has the store calls of a Check as its child spans', async () => {
    const browser = new AppBrowser(envoy);
    await browser.login('https://srv.example.com/');
    // Sent until one reads the session from the store: a session this replica read or wrote
    // within its short reuse window is served from memory.
    const traceId = newTraceId();
    const again = new AppBrowser(envoy);
    for (const [name, value] of browser.cookies) again.cookies.set(name, value);
    await waitFor('the session to be read from the store again', async () => {
      const answer = await again.request('https://srv.example.com/api', {
        navigate: false,
        headers: [...xhr, ['traceparent', `00-${traceId}-${newSpanId()}-01`]],
      });
      assert.equal(statusOf(answer), 'allow');
      return receiver.spans.some(
        (span) => span.traceId === traceId && span.name.startsWith('store '),
      );
    });
    const check = await receiver.span(
      'the Check',
      (span) => span.traceId === traceId && span.name === 'Check',
    );
    const stores = receiver.spans.filter(
      (span) => span.traceId === traceId && span.name.startsWith('store '),
    );
    assert.ok(stores.length > 0);
    for (const store of stores) {
      assert.equal(store.kind, 3);
      assert.ok(
        receiver.spans.some((span) => span.spanId === store.parentSpanId && span.name === 'Check'),
      );
      assert.equal(typeof store.attributes['eoa.store.operation'], 'string');
    }
    assert.equal(check.attributes['eoa.verdict'], 'allow');
  });
});

describe('tracing with a collector that fails', () => {
  let provider: TestProvider;

  before(async () => {
    provider = await startTestProvider({
      clients: [
        {
          clientId: 'web',
          clientSecret,
          redirectUris: ['https://web.example.com/oauth2/callback'],
        },
      ],
    });
  });
  after(async () => {
    await provider.close();
  });

  /** The value of one `eoa_trace_spans_dropped_total` series. */
  async function dropped(server: TestServer, reason: string): Promise<number> {
    const text = await (await fetch(`${server.adminBase}/metrics`)).text();
    const line = new RegExp(`^eoa_trace_spans_dropped_total\\{reason="${reason}"\\} (\\d+)$`, 'm');
    return Number(line.exec(text)?.[1] ?? NaN);
  }

  /** A server exporting to `endpoint`; Checks are sent to it and must all be decided at once. */
  async function checksWith(
    what: string,
    endpoint: string,
    more: Record<string, unknown> = {},
  ): Promise<void> {
    const log = captureLog();
    const server = await startTestServer(
      {
        tracing: tracing(endpoint, { exportTimeout: '200ms', maxBatchSize: 1, ...more }),
        apps: [signInAppConfig({ name: 'web', clientSecret, oidc: quiet }, provider.issuer)],
      },
      { logger: log.logger },
    );
    const envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 1_000 });
    try {
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        const answer = await envoy.check({ url: 'https://web.example.com/page', headers: xhr });
        assert.equal(statusOf(answer), 401, what);
        assert.ok(
          performance.now() - started < 500,
          `${what}: a Check does not wait for the export`,
        );
      }
      await waitFor(
        `${what}: spans counted as dropped`,
        async () => (await dropped(server, 'export_failed')) >= 3,
      );
      const failures = log.matching(/^trace export/);
      assert.equal(failures.length, 1, `${what}: ${JSON.stringify(failures)}`);
      assert.equal(failures[0]?.['level'], 'warn');
      assert.equal(failures[0]?.['component'], 'tracing');
      assert.equal(typeof failures[0]?.['error'], 'string');
      assert.ok(!log.text().includes('collector-credential'), 'no credential in the log');
    } finally {
      envoy.close();
      await server.close();
    }
  }

  it('a collector that is down', async () => {
    await checksWith('down', `http://127.0.0.1:${await freePort()}/v1/traces`, {
      headers: { authorization: 'Bearer collector-credential-0123456789' },
    });
  });

  it('a collector that answers 500', async () => {
    const receiver = await startOtlpReceiver('fail');
    try {
      await checksWith('500', receiver.endpoint);
    } finally {
      await receiver.close();
    }
  });

  it('a collector that does not answer', async () => {
    const receiver = await startOtlpReceiver('hold');
    try {
      await checksWith('slow', receiver.endpoint);
    } finally {
      await receiver.close();
    }
  });

  it('counts the spans a full queue drops, and never waits for room', async () => {
    const receiver = await startOtlpReceiver('hold');
    const server = await startTestServer({
      tracing: tracing(receiver.endpoint, {
        maxQueueSize: 2,
        maxBatchSize: 1,
        exportTimeout: '30s',
      }),
      apps: [signInAppConfig({ name: 'web', clientSecret, oidc: quiet }, provider.issuer)],
    });
    const envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 1_000 });
    try {
      // One export held by the collector, two spans queued behind it: the rest are dropped.
      await envoy.check({ url: 'https://web.example.com/page', headers: xhr });
      await waitFor('the first export to arrive', () => receiver.bodies.length === 1);
      for (let i = 0; i < 6; i++) {
        const answer = await envoy.check({ url: 'https://web.example.com/page', headers: xhr });
        assert.equal(statusOf(answer), 401);
      }
      assert.equal(await dropped(server, 'queue_full'), 4);
    } finally {
      envoy.close();
      await receiver.close();
      await server.close();
    }
  });
});

describe('tracing turned on and off by a reload', () => {
  it('traces from the reload that turns it on, and not after the one that turns it off', async () => {
    const provider = await startTestProvider({
      clients: [
        {
          clientId: 'web',
          clientSecret,
          redirectUris: ['https://web.example.com/oauth2/callback'],
        },
      ],
    });
    const receiver = await startOtlpReceiver();
    const log = captureLog();
    const app = signInAppConfig({ name: 'web', clientSecret, oidc: quiet }, provider.issuer);
    const server = await startTestServer({ apps: [app] }, { logger: log.logger });
    const envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 });
    const check = async (traceId: string): Promise<void> => {
      const answer = await envoy.check({
        url: 'https://web.example.com/page',
        headers: [...xhr, ['traceparent', `00-${traceId}-${newSpanId()}-01`]],
      });
      assert.equal(statusOf(answer), 401);
    };
    try {
      const before = newTraceId();
      await check(before);
      server.handle.reload(testConfig({ tracing: tracing(receiver.endpoint), apps: [app] }));
      const on = newTraceId();
      await check(on);
      await receiver.span('the first traced Check', isCheckIn(on));
      server.handle.reload(testConfig({ apps: [app] }));
      const off = newTraceId();
      await check(off);
      server.handle.reload(testConfig({ tracing: tracing(receiver.endpoint), apps: [app] }));
      const again = newTraceId();
      await check(again);
      await receiver.span('the Check after tracing is on again', isCheckIn(again));
      const traces = new Set(receiver.spans.map((span) => span.traceId));
      assert.ok(!traces.has(before) && !traces.has(off), 'no span while tracing is off');
      assert.deepEqual(
        log.matching(/^tracing settings applied$/).map((line) => line['tracing']),
        ['on', 'off', 'on'],
      );
    } finally {
      envoy.close();
      await server.close();
      await receiver.close();
      await provider.close();
    }
  });
});
