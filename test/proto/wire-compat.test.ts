/** Our protos against Envoy's upstream ones: every field Envoy sends or reads survives both ways. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { loadProtos, protoLoaderOptions } from '../../src/server/protos.ts';
import { EnvoyClient } from '../support/envoy-client.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const ours = loadProtos();
/** The server decodes Check requests straight to protobufjs messages; compare their content. */
const plainRequest = (message: unknown): unknown => {
  const decoded = message as protobuf.Message;
  return decoded.$type.toObject(decoded, protoLoaderOptions);
};
const upstream = loadUpstreamProtos();
const check = ours.authorization['Check']!;

/** Bytes that are not valid UTF-8, as raw_value and raw_body may carry. */
const notUtf8 = Buffer.from([0x61, 0xff, 0xfe, 0x00, 0x62]);

// Samples are written in decoded form (keepCase, longs as strings, enums as numbers, no
// defaults, oneof markers), so that decoding must reproduce them exactly.
const fullRequest = {
  attributes: {
    source: {
      address: {
        socket_address: {
          protocol: 0,
          address: '203.0.113.7',
          port_value: 51234,
          port_specifier: 'port_value',
        },
        address: 'socket_address',
      },
      service: 'frontend',
      labels: { app: 'web', version: 'v2' },
      principal: 'spiffe://cluster.local/ns/default/sa/web',
      certificate: '-----BEGIN%20CERTIFICATE-----',
    },
    destination: {
      address: {
        socket_address: {
          protocol: 1,
          address: '10.0.0.1',
          named_port: 'https',
          resolver_name: 'custom',
          ipv4_compat: true,
          port_specifier: 'named_port',
        },
        address: 'socket_address',
      },
      principal: 'spiffe://cluster.local/ns/default/sa/envoy',
    },
    request: {
      time: { seconds: '1700000000', nanos: 123456789 },
      http: {
        id: '18446744073709551615',
        method: 'POST',
        headers: {
          ':authority': 'app.example.com:8443',
          ':method': 'POST',
          ':path': '/a%20b/c?x=1&y=%2F',
          ':scheme': 'https',
          cookie: 'a=1,b=2',
          'x-request-id': 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6',
        },
        path: '/a%20b/c?x=1&y=%2F',
        host: 'app.example.com:8443',
        scheme: 'https',
        query: 'ignored=1',
        fragment: 'frag',
        size: '9007199254740993',
        protocol: 'HTTP/2',
        body: 'a=1&b=2',
        raw_body: notUtf8,
      },
    },
    context_extensions: { app: 'grafana', tier: 'gold' },
    metadata_context: {
      filter_metadata: {
        'envoy.filters.http.jwt_authn': {
          fields: {
            sub: { stringValue: 'alice', kind: 'stringValue' },
            n: { numberValue: 1.5, kind: 'numberValue' },
            ok: { boolValue: true, kind: 'boolValue' },
            none: { nullValue: 0, kind: 'nullValue' },
            nested: {
              structValue: { fields: { deep: { stringValue: 'x', kind: 'stringValue' } } },
              kind: 'structValue',
            },
            list: {
              listValue: {
                values: [
                  { stringValue: 'g1', kind: 'stringValue' },
                  { numberValue: 2, kind: 'numberValue' },
                ],
              },
              kind: 'listValue',
            },
          },
        },
      },
      typed_filter_metadata: {
        'com.example.typed': {
          type_url: 'type.googleapis.com/google.protobuf.StringValue',
          value: Buffer.from([0x0a, 0x02, 0x68, 0x69]),
        },
      },
    },
    tls_session: { sni: 'app.example.com' },
    route_metadata_context: {
      filter_metadata: {
        'com.example.route': { fields: { team: { stringValue: 'sre', kind: 'stringValue' } } },
      },
    },
  },
};

const rawHeadersRequest = {
  attributes: {
    source: {
      address: {
        pipe: { path: '/run/envoy.sock', mode: 0o660 },
        address: 'pipe',
      },
    },
    destination: {
      address: {
        envoy_internal_address: {
          server_listener_name: 'internal',
          endpoint_id: 'ep-1',
          address_name_specifier: 'server_listener_name',
        },
        address: 'envoy_internal_address',
      },
    },
    request: {
      http: {
        id: '42',
        method: 'GET',
        header_map: {
          headers: [
            { key: ':path', raw_value: Buffer.from('/x') },
            { key: 'cookie', raw_value: Buffer.from('a=1') },
            { key: 'cookie', raw_value: Buffer.from('b=2') },
            { key: 'x-bin', raw_value: notUtf8 },
            { key: 'x-text', value: 'plain' },
          ],
        },
        path: '/x',
        size: '0',
        protocol: 'HTTP/1.1',
      },
    },
  },
};

const allowResponse = {
  status: { code: 0, message: 'ok' },
  ok_response: {
    headers: [
      { header: { key: 'x-auth-request-user', value: 'alice' }, append: { value: false } },
      { header: { key: 'x-forwarded-groups', value: 'g1' }, append: { value: true } },
      { header: { key: 'x-unset-append', value: 'v' } },
      {
        header: { key: 'x-action', value: 'v' },
        append_action: 2,
        keep_empty_value: true,
      },
      { header: { key: 'x-raw', raw_value: notUtf8 }, append: { value: false } },
    ],
    headers_to_remove: ['authorization', 'x-id-token'],
    response_headers_to_add: [
      { header: { key: 'set-cookie', value: '_eoa=abc; Path=/' }, append: { value: true } },
      { header: { key: 'set-cookie', value: '_eoa.1=def; Path=/' }, append: { value: true } },
      { header: { key: 'cache-control', value: 'no-store' }, append: { value: false } },
    ],
    query_parameters_to_set: [
      { key: 'b', value: '2' },
      { key: 'a', value: '' },
    ],
    query_parameters_to_remove: ['code', 'state'],
    dynamic_metadata: {
      fields: { legacy: { stringValue: 'yes', kind: 'stringValue' } },
    },
  },
  http_response: 'ok_response',
  dynamic_metadata: {
    fields: {
      user: { stringValue: 'alice', kind: 'stringValue' },
      claims: {
        structValue: {
          fields: {
            groups: {
              listValue: {
                values: [
                  { stringValue: 'admins', kind: 'stringValue' },
                  {
                    structValue: {
                      fields: { level: { numberValue: 3, kind: 'numberValue' } },
                    },
                    kind: 'structValue',
                  },
                ],
              },
              kind: 'listValue',
            },
            verified: { boolValue: false, kind: 'boolValue' },
          },
        },
        kind: 'structValue',
      },
    },
  },
};

const denyResponse = {
  status: { code: 16, message: 'login required' },
  denied_response: {
    status: { code: 302 },
    headers: [
      {
        header: { key: 'location', value: 'https://idp.example.com/auth?x=1' },
        append: { value: false },
      },
      { header: { key: 'set-cookie', value: 'st1=a; HttpOnly' }, append: { value: false } },
      { header: { key: 'set-cookie', value: 'st2=b; HttpOnly' }, append: { value: false } },
    ],
    body: '<a href="https://idp.example.com/auth?x=1">login</a>',
  },
  http_response: 'denied_response',
  dynamic_metadata: { fields: { reason: { stringValue: 'login', kind: 'stringValue' } } },
};

const teapotDeny = {
  status: { code: 7 },
  denied_response: { status: { code: 418 }, body: 'not a status we name' },
  http_response: 'denied_response',
};

test('a full CheckRequest encoded by Envoy decodes with our protos without loss', () => {
  for (const sample of [fullRequest, rawHeadersRequest]) {
    const wire = upstream.encode(upstream.CheckRequest, sample);
    assert.deepEqual(upstream.decode(upstream.CheckRequest, wire), sample);
    const decoded = plainRequest(check.requestDeserialize(wire));
    assert.deepEqual(decoded, sample);
    assert.deepEqual(Buffer.from(check.requestSerialize(decoded)), wire);
  }
});

test('a CheckRequest encoded by our protos decodes with Envoy protos without loss', () => {
  const wire = Buffer.from(check.requestSerialize(fullRequest));
  assert.deepEqual(upstream.decode(upstream.CheckRequest, wire), fullRequest);
  assert.deepEqual(upstream.encode(upstream.CheckRequest, fullRequest), wire);
});

test('header_map raw_value bytes survive untouched, duplicates kept apart', () => {
  const wire = upstream.encode(upstream.CheckRequest, rawHeadersRequest);
  const decoded = plainRequest(check.requestDeserialize(wire)) as typeof rawHeadersRequest;
  const headers = decoded.attributes.request.http.header_map.headers;
  assert.deepEqual(
    headers.map((h) => h.key),
    [':path', 'cookie', 'cookie', 'x-bin', 'x-text'],
  );
  assert.ok(Buffer.isBuffer(headers[3]!.raw_value));
  assert.deepEqual(headers[3]!.raw_value, notUtf8);
});

test('every CheckResponse field we send reaches Envoy as sent', () => {
  for (const sample of [allowResponse, denyResponse, teapotDeny]) {
    const wire = Buffer.from(check.responseSerialize(sample));
    const seen = upstream.decode(upstream.CheckResponse, wire);
    assert.deepEqual(seen, sample);
    assert.deepEqual(upstream.encode(upstream.CheckResponse, sample), wire);
  }
});

test('append stays a three-state wrapper: true, false and unset are distinct on the wire', () => {
  const wire = Buffer.from(check.responseSerialize(allowResponse));
  const seen = upstream.decode(upstream.CheckResponse, wire) as typeof allowResponse;
  const appendOf = (i: number) => (seen.ok_response.headers[i] as { append?: unknown }).append;
  assert.deepEqual(appendOf(0), { value: false });
  assert.deepEqual(appendOf(1), { value: true });
  assert.equal(appendOf(2), undefined);
});

test('a CheckResponse encoded by Envoy protos decodes with ours, byte-equal on re-encode', () => {
  for (const sample of [allowResponse, denyResponse, teapotDeny]) {
    const wire = upstream.encode(upstream.CheckResponse, sample);
    const decoded = check.responseDeserialize(wire);
    assert.deepEqual(decoded, sample);
    assert.deepEqual(Buffer.from(check.responseSerialize(decoded)), wire);
  }
});

test('dynamic_metadata as a plain JSON object would be lost, which is why it is a Struct', () => {
  const wire = Buffer.from(
    check.responseSerialize({ status: { code: 0 }, dynamic_metadata: { user: 'alice' } }),
  );
  const seen = upstream.decode(upstream.CheckResponse, wire);
  assert.deepEqual(seen.dynamic_metadata, {});
});

test('error_response (field 5) is encoded by us and skipped by a pre-1.37 Envoy', () => {
  const sample = {
    status: { code: 14 },
    error_response: { status: { code: 503 }, body: 'try later' },
    http_response: 'error_response',
  };
  const wire = Buffer.from(check.responseSerialize(sample));
  // Field 5, length-delimited: tag byte 0x2a.
  assert.ok(wire.includes(Buffer.from([0x2a])));
  assert.deepEqual(check.responseDeserialize(wire), sample);
  const seen = upstream.decode(upstream.CheckResponse, wire);
  assert.deepEqual(seen, { status: { code: 14 } });
});

test('the Check method has the path and streaming shape Envoy calls', () => {
  const theirs = upstream.AuthorizationClient.service['Check']!;
  assert.equal(check.path, '/envoy.service.auth.v3.Authorization/Check');
  assert.equal(check.path, theirs.path);
  assert.equal(check.requestStream, false);
  assert.equal(check.responseStream, false);
});

test('health protos follow grpc.health.v1: paths, streaming and field numbers', () => {
  const healthCheck = ours.health['Check']!;
  const watch = ours.health['Watch']!;
  assert.equal(healthCheck.path, '/grpc.health.v1.Health/Check');
  assert.equal(watch.path, '/grpc.health.v1.Health/Watch');
  assert.equal(healthCheck.responseStream, false);
  assert.equal(watch.responseStream, true);
  // service = 1 (string); status = 1 (enum): the bytes every health client sends and expects.
  assert.deepEqual(
    Buffer.from(healthCheck.requestSerialize({ service: 'x' })),
    Buffer.from([0x0a, 0x01, 0x78]),
  );
  for (const [status, byte] of [
    [1, 0x01],
    [2, 0x02],
    [3, 0x03],
  ] as const) {
    assert.deepEqual(
      Buffer.from(healthCheck.responseSerialize({ status })),
      Buffer.from([0x08, byte]),
    );
    assert.deepEqual(watch.responseDeserialize(Buffer.from([0x08, byte])), { status });
  }
});

test('over real gRPC, a server on our protos and a client on Envoy protos see the same messages', async () => {
  const server = new grpc.Server();
  const received: unknown[] = [];
  server.addService(ours.authorization, {
    Check(call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
      received.push(plainRequest(call.request));
      callback(null, received.length === 1 ? allowResponse : denyResponse);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  const client = new EnvoyClient({
    target: `127.0.0.1:${port}`,
    protos: upstream,
    timeoutMs: 2000,
  });
  try {
    const first = await client.checkRaw(fullRequest);
    assert.equal(first.error, undefined);
    assert.deepEqual(first.response, allowResponse);
    const second = await client.checkRaw(rawHeadersRequest);
    assert.deepEqual(second.response, denyResponse);
    assert.deepEqual(received, [fullRequest, rawHeadersRequest]);
  } finally {
    client.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  }
});
