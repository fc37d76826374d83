/** The Envoy-like client's own logic, against canned answers from a tiny Check server and an HTTP server. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { EnvoyClient, HttpModeClient, rewriteQuery, type Outcome } from '../../dev/envoy-client.ts';
import {
  loadUpstreamProtos,
  type UpstreamCheckRequest,
  type UpstreamCheckResponse,
} from '../../dev/upstream-protos.ts';

const protos = loadUpstreamProtos();

/** What the canned Check server answers next: a response, an error, or a late response. */
type Canned =
  | { readonly response: UpstreamCheckResponse; readonly delayMs?: number }
  | { readonly error: grpc.StatusObject['code'] };

interface CheckServer {
  readonly target: string;
  answer(canned: Canned): void;
  readonly received: { request: UpstreamCheckRequest; deadline: grpc.Deadline }[];
  close(): Promise<void>;
}

async function startCheckServer(): Promise<CheckServer> {
  const server = new grpc.Server();
  let next: Canned = { response: {} };
  const received: CheckServer['received'] = [];
  server.addService(protos.AuthorizationClient.service, {
    Check(
      call: grpc.ServerUnaryCall<UpstreamCheckRequest, UpstreamCheckResponse>,
      callback: grpc.sendUnaryData<UpstreamCheckResponse>,
    ) {
      received.push({ request: call.request, deadline: call.getDeadline() });
      const canned = next;
      if ('error' in canned) {
        callback({ code: canned.error, details: 'canned failure' });
        return;
      }
      if (canned.delayMs === undefined) callback(null, canned.response);
      else setTimeout(() => callback(null, canned.response), canned.delayMs);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    target: `127.0.0.1:${port}`,
    answer: (canned) => {
      next = canned;
    },
    received,
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

/**
 * The deadline of clients whose test is not about deadlines: Envoy's default 200 ms can pass
 * while a busy machine sets up the first connection.
 */
const patientMs = 10_000;

const overwrite = { value: false };
const addLine = { value: true };
const opt = (key: string, value: string, append?: { value: boolean }) =>
  append === undefined ? { header: { key, value } } : { header: { key, value }, append };

function expectKind<K extends Outcome['kind']>(
  outcome: Outcome,
  kind: K,
): Extract<Outcome, { kind: K }> {
  assert.equal(outcome.kind, kind, JSON.stringify(outcome));
  return outcome as Extract<Outcome, { kind: K }>;
}

describe('EnvoyClient (gRPC mode)', () => {
  let stub: CheckServer;
  let client: EnvoyClient;
  const fixedNow = 1_700_000_000_123;

  before(async () => {
    stub = await startCheckServer();
    client = new EnvoyClient({
      target: stub.target,
      protos,
      timeoutMs: patientMs,
      now: () => fixedNow,
      contextExtensions: { app: 'vhost-app', tier: 'vhost' },
    });
  });
  after(async () => {
    client.close();
    await stub.close();
  });

  it('normalises the request as the connection manager does before the filter', async () => {
    stub.answer({ response: {} });
    await client.check(
      {
        method: 'post',
        url: 'https://app.example.com:8443/a/../b%20c?x=1&y=2',
        headers: [
          ['Host', 'app.example.com:8443'],
          ['Connection', 'keep-alive, X-Hop'],
          ['Keep-Alive', 'timeout=5'],
          ['X-Hop', 'secret-hop'],
          ['Transfer-Encoding', 'chunked'],
          ['Upgrade', 'h2c'],
          ['Accept', 'text/html'],
          ['X-Dup', 'a'],
          ['x-dup', 'b'],
          ['Cookie', 'a=1'],
          ['Cookie', 'b=2'],
        ],
        sourceAddress: '203.0.113.9',
        sourcePort: 40000,
        principal: 'spiffe://cluster.local/ns/a/sa/b',
        sni: 'app.example.com',
      },
      { contextExtensions: { app: 'route-app' } },
    );
    const sent = stub.received.at(-1)!;
    const attributes = sent.request.attributes!;
    const httpReq = attributes.request!.http!;
    const headers = httpReq.headers!;
    assert.equal(headers[':authority'], 'app.example.com:8443');
    assert.equal(headers[':path'], '/a/../b%20c?x=1&y=2');
    assert.equal(headers[':method'], 'POST');
    assert.equal(headers[':scheme'], 'https');
    assert.equal(headers['host'], undefined);
    for (const gone of ['connection', 'keep-alive', 'x-hop', 'transfer-encoding', 'upgrade']) {
      assert.equal(headers[gone], undefined, gone);
    }
    assert.equal(headers['x-dup'], 'a,b');
    assert.equal(headers['cookie'], 'a=1,b=2');
    assert.equal(headers['accept'], 'text/html');
    assert.equal(headers['x-forwarded-proto'], 'https');
    assert.match(headers['x-request-id']!, /^[0-9a-f-]{36}$/);
    assert.ok(Object.keys(headers).every((k) => k === k.toLowerCase()));

    assert.equal(httpReq.method, 'POST');
    assert.equal(httpReq.path, '/a/../b%20c?x=1&y=2');
    assert.equal(httpReq.host, 'app.example.com:8443');
    assert.equal(httpReq.scheme, 'https');
    assert.equal(httpReq.protocol, 'HTTP/1.1');
    assert.equal(httpReq.query, undefined);
    assert.equal(httpReq.fragment, undefined);
    assert.equal(
      httpReq.size,
      undefined,
      'size is 0 (absent on the wire) without with_request_body',
    );
    assert.equal(httpReq.body, undefined);
    assert.match(httpReq.id!, /^\d+$/);
    assert.ok(BigInt(httpReq.id!) < 2n ** 64n);

    assert.deepEqual(attributes.request!.time, { seconds: '1700000000', nanos: 123_000_000 });
    assert.deepEqual(attributes.source!.address!.socket_address, {
      address: '203.0.113.9',
      port_value: 40000,
      port_specifier: 'port_value',
    });
    assert.equal(attributes.source!.principal, 'spiffe://cluster.local/ns/a/sa/b');
    assert.equal(attributes.destination!.address!.socket_address!.port_value, 8443);
    assert.deepEqual(attributes.tls_session, { sni: 'app.example.com' });
    assert.deepEqual(attributes.context_extensions, { app: 'route-app', tier: 'vhost' });
  });

  it('keeps client-set x-forwarded-proto and x-request-id, and joins HTTP/2 cookies with "; "', async () => {
    stub.answer({ response: {} });
    await client.check({
      url: 'http://a.example/',
      protocol: 'HTTP/2',
      headers: [
        ['x-forwarded-proto', 'https'],
        ['x-request-id', 'given'],
        ['cookie', 'a=1'],
        ['cookie', 'b=2'],
      ],
    });
    const httpReq = stub.received.at(-1)!.request.attributes!.request!.http!;
    assert.equal(httpReq.headers!['x-forwarded-proto'], 'https');
    assert.equal(httpReq.headers!['x-request-id'], 'given');
    assert.equal(httpReq.headers!['cookie'], 'a=1; b=2');
    assert.equal(httpReq.headers![':authority'], 'a.example');
    assert.equal(httpReq.protocol, 'HTTP/2');
  });

  it('keeps upgrade and connection for a WebSocket upgrade only', async () => {
    stub.answer({ response: {} });
    await client.check({
      url: 'ws://a.example/socket',
      headers: [
        ['connection', 'Upgrade'],
        ['upgrade', 'websocket'],
      ],
    });
    const headers = stub.received.at(-1)!.request.attributes!.request!.http!.headers!;
    assert.equal(headers['upgrade'], 'websocket');
    assert.equal(headers['connection'], 'Upgrade');
    assert.equal(headers[':scheme'], 'http');
  });

  it('sends the deadline as grpc-timeout (200 ms by default)', async () => {
    const plain = new EnvoyClient({ target: stub.target, protos });
    try {
      stub.answer({ response: {} });
      // A call that spent its 200 ms connecting never arrives: measure the first that does.
      for (let attempt = 1; ; attempt++) {
        const arrived = stub.received.length;
        const before = Date.now();
        await plain.check({ url: 'http://a.example/' });
        if (stub.received.length === arrived) {
          assert.ok(attempt < 50, 'a call arrives once connected');
          continue;
        }
        const deadline = stub.received.at(-1)!.deadline;
        const ms = (deadline instanceof Date ? deadline.getTime() : deadline) - before;
        assert.ok(ms > 150 && ms <= 1000, `deadline ${ms} ms ahead`);
        break;
      }
    } finally {
      plain.close();
    }
  });

  it('encode_raw_headers sends header_map with duplicates apart and no headers map', async () => {
    const raw = new EnvoyClient({
      target: stub.target,
      protos,
      timeoutMs: patientMs,
      encodeRawHeaders: true,
    });
    try {
      stub.answer({ response: {} });
      await raw.check({
        url: 'http://a.example/p',
        headers: [
          ['cookie', 'a=1'],
          ['cookie', 'b=2'],
        ],
      });
      const httpReq = stub.received.at(-1)!.request.attributes!.request!.http!;
      assert.equal(httpReq.headers, undefined);
      const entries = httpReq.header_map!.headers!.map((h) => [h.key, h.raw_value!.toString()]);
      assert.deepEqual(entries.slice(0, 4), [
        [':authority', 'a.example'],
        [':path', '/p'],
        [':method', 'GET'],
        [':scheme', 'http'],
      ]);
      assert.deepEqual(
        entries.filter(([k]) => k === 'cookie'),
        [
          ['cookie', 'a=1'],
          ['cookie', 'b=2'],
        ],
      );
    } finally {
      raw.close();
    }
  });

  it('with_request_body sends body, size and x-envoy-auth-partial-body', async () => {
    const withBody = new EnvoyClient({
      target: stub.target,
      protos,
      timeoutMs: patientMs,
      withRequestBody: true,
    });
    try {
      stub.answer({ response: {} });
      await withBody.check({ method: 'POST', url: 'http://a.example/form', body: 'a=1&é=2' });
      const httpReq = stub.received.at(-1)!.request.attributes!.request!.http!;
      assert.equal(httpReq.body, 'a=1&é=2');
      assert.equal(httpReq.size, '8');
      assert.equal(httpReq.headers!['x-envoy-auth-partial-body'], 'false');
      assert.equal(httpReq.headers!['content-length'], '8');
    } finally {
      withBody.close();
    }
  });

  it('an empty CheckResponse allows the request untouched', async () => {
    stub.answer({ response: {} });
    const outcome = expectKind(
      await client.check({ url: 'http://a.example/x?q=1', headers: [['x-a', '1']] }),
      'allow',
    );
    assert.equal(outcome.upstream.path, '/x?q=1');
    assert.equal(outcome.upstream.headers.get('x-a'), '1');
    assert.deepEqual(outcome.responseHeaders, []);
  });

  it('applies ok_response in Envoy order: sets, appends-if-present, removes, query', async () => {
    stub.answer({
      response: {
        status: { code: 0 },
        ok_response: {
          headers: [
            opt('X-Set', 'new', overwrite),
            opt('x-unset-append', 'replaced'),
            opt('x-existing', 'more', addLine),
            opt('x-absent', 'ignored', addLine),
            opt('x-set-then-removed', 'v', overwrite),
          ],
          headers_to_remove: ['X-Set-Then-Removed', 'authorization', ':path', 'host', ':authority'],
          response_headers_to_add: [
            opt('set-cookie', 'a=1', addLine),
            opt('set-cookie', 'b=2', addLine),
            opt('cache-control', 'private', addLine),
            opt('cache-control', 'no-store', overwrite),
            opt('x-unset', 'v'),
          ],
          query_parameters_to_set: [
            { key: 'z', value: '26' },
            { key: 'b', value: 'new' },
          ],
          query_parameters_to_remove: ['drop'],
        },
      },
    });
    const outcome = expectKind(
      await client.check({
        url: 'http://a.example/path?b=old&drop=1&a=1&a=2',
        headers: [
          ['x-set', 'old'],
          ['x-unset-append', 'old'],
          ['x-existing', 'one'],
          ['authorization', 'Bearer t'],
        ],
      }),
      'allow',
    );
    const headers = outcome.upstream.headers;
    assert.equal(headers.get('x-set'), 'new');
    assert.equal(headers.get('x-unset-append'), 'replaced');
    assert.equal(headers.get('x-existing'), 'one,more');
    assert.equal(headers.has('x-absent'), false);
    assert.equal(headers.has('x-set-then-removed'), false);
    assert.equal(headers.has('authorization'), false);
    assert.equal(outcome.upstream.authority, 'a.example');
    assert.equal(outcome.upstream.path, '/path?a=1&a=2&b=new&z=26');
    assert.deepEqual(outcome.responseHeaders, [
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['cache-control', 'no-store'],
      ['x-unset', 'v'],
    ]);
    assert.equal(outcome.response?.ok_response?.headers?.length, 5);
  });

  it('denies with 403 by default, drops append:true entries, keeps every set-cookie', async () => {
    stub.answer({
      response: {
        status: { code: 16 },
        denied_response: {
          headers: [
            opt('set-cookie', 'a=1', overwrite),
            opt('set-cookie', 'b=2', overwrite),
            opt('x-dropped', 'v', addLine),
            opt('x-unset', 'kept'),
          ],
          body: 'go away',
        },
      },
    });
    const outcome = expectKind(await client.check({ url: 'http://a.example/' }), 'deny');
    assert.equal(outcome.status, 403);
    assert.equal(outcome.body, 'go away');
    assert.equal(outcome.grpcStatus, undefined);
    assert.deepEqual(outcome.headers, [
      ['content-length', '7'],
      ['content-type', 'text/plain'],
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['x-unset', 'kept'],
    ]);
  });

  it('a deny status and content-type from the server replace Envoy defaults', async () => {
    stub.answer({
      response: {
        status: { code: 16 },
        denied_response: {
          status: { code: 401 },
          headers: [opt('content-type', 'application/json', overwrite)],
          body: '{}',
        },
      },
    });
    const outcome = expectKind(await client.check({ url: 'http://a.example/' }), 'deny');
    assert.equal(outcome.status, 401);
    assert.deepEqual(outcome.headers, [
      ['content-length', '2'],
      ['content-type', 'application/json'],
    ]);
  });

  it('maps deny statuses to grpc-status for gRPC downstreams only', async () => {
    const table: [number, number][] = [
      [401, 16],
      [403, 7],
      [404, 12],
      [429, 14],
      [502, 14],
      [503, 14],
      [504, 14],
      [400, 2],
      [302, 2],
      [500, 2],
    ];
    for (const [httpStatus, grpcStatus] of table) {
      stub.answer({
        response: { status: { code: 7 }, denied_response: { status: { code: httpStatus } } },
      });
      const outcome = expectKind(
        await client.check({
          method: 'POST',
          url: 'http://a.example/pkg.Svc/Method',
          headers: [['content-type', 'application/grpc+proto']],
        }),
        'deny',
      );
      assert.equal(outcome.grpcStatus, grpcStatus, `HTTP ${httpStatus}`);
    }
    stub.answer({
      response: {
        status: { code: 16 },
        denied_response: {
          status: { code: 401 },
          headers: [opt('grpc-status', '9', overwrite)],
        },
      },
    });
    const explicit = expectKind(
      await client.check({
        url: 'http://a.example/pkg.Svc/Method',
        headers: [['content-type', 'application/grpc']],
      }),
      'deny',
    );
    assert.equal(explicit.grpcStatus, 9);
  });

  it('an RPC error takes the error path with status_on_error (default 403)', async () => {
    stub.answer({ error: grpc.status.INTERNAL });
    const outcome = expectKind(await client.check({ url: 'http://a.example/' }), 'error');
    assert.equal(outcome.status, 403);
    assert.equal(outcome.grpcCode, grpc.status.INTERNAL);

    const custom = new EnvoyClient({
      target: stub.target,
      protos,
      timeoutMs: patientMs,
      statusOnError: 503,
    });
    try {
      const configured = expectKind(await custom.check({ url: 'http://a.example/' }), 'error');
      assert.equal(configured.status, 503);
    } finally {
      custom.close();
    }
  });

  it('a late answer is a deadline error; failure_mode_allow forwards untouched', async () => {
    const quick = new EnvoyClient({ target: stub.target, protos, timeoutMs: 50 });
    const open = new EnvoyClient({
      target: stub.target,
      protos,
      timeoutMs: 50,
      failureModeAllow: true,
    });
    try {
      const late = { status: { code: 7 }, denied_response: { body: 'too late' } };
      stub.answer({ response: late, delayMs: 150 });
      const failed = expectKind(await quick.check({ url: 'http://a.example/' }), 'error');
      assert.equal(failed.grpcCode, grpc.status.DEADLINE_EXCEEDED);
      const allowed = expectKind(
        await open.check({ url: 'http://a.example/x', headers: [['x-a', '1']] }),
        'allow',
      );
      assert.equal(allowed.failedOpen !== undefined, true);
      assert.equal(allowed.upstream.headers.get('x-a'), '1');
      assert.equal(allowed.response, undefined);
    } finally {
      quick.close();
      open.close();
      await sleep(150);
    }
  });

  it('an unreachable server is an error, not a hang', async () => {
    const nowhere = new EnvoyClient({ target: '127.0.0.1:1', protos, timeoutMs: 100 });
    try {
      const outcome = expectKind(await nowhere.check({ url: 'http://a.example/' }), 'error');
      assert.ok(outcome.grpcCode === grpc.status.UNAVAILABLE || outcome.grpcCode === 4);
    } finally {
      nowhere.close();
    }
  });
});

describe('rewriteQuery', () => {
  it('rebuilds with keys sorted, set before remove, raw values kept', () => {
    assert.equal(
      rewriteQuery('/p?b=2&a=%2F&c', [{ key: 'c', value: 'x y' }], ['b']),
      '/p?a=%2F&c=x y',
    );
    assert.equal(rewriteQuery('/p?a=1', [], ['a']), '/p');
    assert.equal(rewriteQuery('/p', [{ key: 'k', value: 'v' }], []), '/p?k=v');
  });
});

interface AuthzAnswer {
  readonly status: number;
  readonly headers?: [string, string][];
  readonly body?: string;
  readonly delayMs?: number;
}

describe('HttpModeClient', () => {
  let server: http.Server;
  let next: AuthzAnswer = { status: 200 };
  const seen: { method: string; url: string; headers: string[] }[] = [];
  let baseUrl = '';

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.rawHeaders });
      const answer = next;
      const reply = () => {
        const flat = (answer.headers ?? []).flat();
        res.writeHead(answer.status, flat);
        res.end(answer.body ?? '');
      };
      if (answer.delayMs === undefined) reply();
      else setTimeout(reply, answer.delayMs);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const downstream = {
    method: 'PUT',
    url: 'https://app.example.com/api/x?y=1',
    headers: [
      ['authorization', 'Bearer t'],
      ['cookie', '_eoa=1'],
      ['x-not-allowed', 'secret'],
      ['x-remove-me', 'r'],
      ['x-user', 'forged'],
    ] as [string, string][],
  };

  it('sends method, prefixed path and only allowed headers; 200 allows and maps headers', async () => {
    const client = new HttpModeClient({
      baseUrl,
      timeoutMs: patientMs,
      pathPrefix: '/authz',
      allowedHeaders: ['Cookie'],
      allowedUpstreamHeaders: ['x-user'],
      allowedClientHeadersOnSuccess: ['set-cookie'],
    });
    try {
      next = {
        status: 200,
        headers: [
          ['x-user', 'alice'],
          ['set-cookie', 'a=1'],
          ['set-cookie', 'b=2'],
          ['x-envoy-auth-headers-to-remove', 'x-remove-me, cookie'],
          ['x-other', 'not-forwarded'],
        ],
      };
      const outcome = expectKind(await client.check(downstream), 'allow');
      const request = seen.at(-1)!;
      assert.equal(request.method, 'PUT');
      assert.equal(request.url, '/authz/api/x?y=1');
      const names = request.headers.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      assert.deepEqual(names.sort(), [
        'authorization',
        'connection',
        'content-length',
        'cookie',
        'host',
      ]);
      const value = (name: string) =>
        request.headers[request.headers.findIndex((n) => n.toLowerCase() === name) + 1];
      assert.equal(value('host'), 'app.example.com');
      assert.equal(value('content-length'), '0');

      assert.equal(outcome.upstream.headers.get('x-user'), 'alice');
      assert.equal(outcome.upstream.headers.has('x-remove-me'), false);
      assert.equal(outcome.upstream.headers.has('cookie'), false);
      assert.equal(outcome.upstream.headers.has('x-other'), false);
      assert.equal(outcome.upstream.headers.get('x-not-allowed'), 'secret');
      assert.deepEqual(outcome.responseHeaders, [
        ['set-cookie', 'a=1'],
        ['set-cookie', 'b=2'],
      ]);
    } finally {
      client.close();
    }
  });

  it('anything but 200 below 500 denies with every set-cookie line', async () => {
    const all = new HttpModeClient({ baseUrl, timeoutMs: patientMs });
    const listed = new HttpModeClient({
      baseUrl,
      timeoutMs: patientMs,
      allowedClientHeaders: ['set-cookie'],
    });
    try {
      next = {
        status: 302,
        headers: [
          ['location', 'https://idp.example/auth'],
          ['set-cookie', 's1=a'],
          ['set-cookie', 's2=b'],
          ['x-extra', 'e'],
        ],
        body: 'redirecting',
      };
      const denied = expectKind(await all.check(downstream), 'deny');
      assert.equal(denied.status, 302);
      assert.equal(denied.body, 'redirecting');
      const cookies = denied.headers.filter(([n]) => n === 'set-cookie').map(([, v]) => v);
      assert.deepEqual(cookies, ['s1=a', 's2=b']);
      assert.ok(denied.headers.some(([n]) => n === 'x-extra'));
      assert.ok(!denied.headers.some(([n]) => n === 'connection'));

      const filtered = expectKind(await listed.check(downstream), 'deny');
      assert.ok(!filtered.headers.some(([n]) => n === 'x-extra'));
      assert.ok(filtered.headers.some(([n]) => n === 'location'));
      assert.equal(filtered.headers.filter(([n]) => n === 'set-cookie').length, 2);

      next = { status: 204 };
      expectKind(await all.check(downstream), 'deny');
      next = { status: 401 };
      const grpcDeny = expectKind(
        await all.check({ url: 'http://a/x', headers: [['content-type', 'application/grpc']] }),
        'deny',
      );
      assert.equal(grpcDeny.grpcStatus, 16);
    } finally {
      all.close();
      listed.close();
    }
  });

  it('5xx and no answer in time take the error path', async () => {
    const client = new HttpModeClient({ baseUrl, timeoutMs: 50, statusOnError: 500 });
    const open = new HttpModeClient({ baseUrl, timeoutMs: 50, failureModeAllow: true });
    try {
      next = { status: 503, body: 'down' };
      assert.equal(expectKind(await client.check(downstream), 'error').status, 500);
      next = { status: 200, delayMs: 150 };
      assert.equal(expectKind(await client.check(downstream), 'error').status, 500);
      const allowed = expectKind(await open.check(downstream), 'allow');
      assert.ok(allowed.failedOpen !== undefined);
      assert.equal(allowed.upstream.headers.get('x-user'), 'forged');
    } finally {
      client.close();
      open.close();
      await sleep(150);
    }
  });
});
