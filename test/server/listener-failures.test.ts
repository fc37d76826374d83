/**
 * No exception escapes a request in any listener: whatever a step, a dependency or the answer's
 * encoding throws is logged once with the request id and answered (HTTP 500, gRPC UNAVAILABLE:
 * Envoy's error path), and the listener keeps serving. Failures are injected by composing the
 * listeners with failing steps and dependencies. An exception that escaped would fail this file
 * (the test runner reports uncaught exceptions and unhandled rejections).
 */
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { AppRuntime } from '../../src/authz/app-runtime.ts';
import { Authorizer } from '../../src/authz/authorizer.ts';
import { Pipeline, type Step } from '../../src/authz/pipeline.ts';
import { allow, type HeaderPair } from '../../src/authz/verdict.ts';
import { grpcLimitsSchema } from '../../src/config/schema.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createAdminServer } from '../../src/server/admin-server.ts';
import { createGrpcServer } from '../../src/server/grpc-server.ts';
import { HealthState } from '../../src/server/health-state.ts';
import { createHttpServer, type DirectRoute } from '../../src/server/http-server.ts';
import { loadProtos } from '../../src/server/protos.ts';
import { captureLog, type CapturedLog } from '../resilience/log-capture.ts';
import { EnvoyClient } from '../support/envoy-client.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

/** The pipeline reads only an app's name and match rules; the steps here read nothing else. */
const app = { name: 'web', match: { hosts: ['web.example.com', '127.0.0.1'], pathPrefix: '/' } };

/** Headers Node refuses to write (`ERR_INVALID_HTTP_TOKEN`) . */
const unwritable: readonly HeaderPair[] = [['not a header name', 'x']];
/** A header the response encoder cannot measure (not a string). */
const unencodable = [['x-broken', undefined as unknown as string]] as const;

/** Faults chosen per request by its `x-fault` header; without one, the request is allowed. */
const faultyStep: Step = ({ request }) => {
  switch (request.headers.get('x-fault')) {
    case 'throw':
      throw new Error('a step broke');
    case 'reject':
      return Promise.reject(new Error('a step broke later'));
    case 'unwritable':
      return allow('session', { upstreamHeaders: unwritable });
    case 'unwritable-later':
      return Promise.resolve(allow('session', { upstreamHeaders: unwritable }));
    case 'unencodable':
      return allow('session', { upstreamHeaders: unencodable });
    default:
      return allow('session', { upstreamHeaders: [['x-auth-request-user', 'alice']] });
  }
};

function authorizer(log: CapturedLog): Authorizer {
  const pipeline = new Pipeline({
    apps: [app as unknown as AppRuntime],
    allowUnmatched: false,
    steps: [faultyStep],
    budgetMs: 100,
  });
  return new Authorizer(
    { pipeline, parseOptions: { trustedHops: 0, maxHeaderBytes: 65_536 } },
    new Metrics({ defaultMetrics: false }),
    log.logger,
  );
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Log lines at error level carrying `requestId`. */
function errorsFor(log: CapturedLog, requestId: string): Record<string, unknown>[] {
  return log.lines().filter((line) => line['level'] === 'error' && line['requestId'] === requestId);
}

describe('the HTTP ext_authz listener survives whatever throws', () => {
  const log = captureLog('info');
  let server: Server;
  let base: string;
  const direct: DirectRoute = ({ path }) => {
    if (path === '/direct-throws') throw new Error('a direct route broke');
    if (path === '/direct-rejects') return Promise.reject(new Error('a direct route broke later'));
    return Promise.resolve(undefined);
  };

  before(async () => {
    server = createHttpServer({
      authorizer: authorizer(log),
      logger: log.logger,
      pathPrefix: '',
      direct,
      maxHeaderBytes: 65_536,
    });
    base = await listen(server);
  });
  after(() => close(server));

  const check = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, { headers });

  const rows = [
    { fault: 'throw', path: '/x' },
    { fault: 'reject', path: '/x' },
    { fault: 'unwritable', path: '/x' },
    { fault: 'unwritable-later', path: '/x' },
    { fault: '', path: '/direct-throws' },
    { fault: '', path: '/direct-rejects' },
  ];
  for (const { fault, path } of rows) {
    it(`answers 500 and logs once with the request id: ${fault || path}`, async () => {
      const requestId = `http-${fault || path.slice(1)}`;
      const headers: Record<string, string> = { 'x-request-id': requestId };
      if (fault !== '') headers['x-fault'] = fault;
      const failed = await check(path, headers);
      assert.equal(failed.status, 500);
      await failed.arrayBuffer();
      assert.equal(errorsFor(log, requestId).length, 1, JSON.stringify(log.lines()));

      const next = await check('/x');
      assert.equal(next.status, 200, 'the listener keeps serving');
      assert.equal(next.headers.get('x-auth-request-user'), 'alice');
    });
  }

  it('refuses a body over 64 KiB with 413 and one log line with the request id', async () => {
    const requestId = 'http-body-too-large';
    const refused = await fetch(`${base}/x`, {
      method: 'POST',
      headers: { 'x-request-id': requestId },
      body: 'b'.repeat(65 * 1024),
    });
    assert.equal(refused.status, 413);
    await refused.arrayBuffer();
    const lines = log.lines().filter((line) => line['requestId'] === requestId);
    assert.equal(lines.length, 1, JSON.stringify(log.lines()));
    assert.equal(lines[0]!['reason'], 'request body too large');
  });

  it('accepts 64 KiB of request headers, as gRPC mode does, and decides on more itself', async () => {
    const big = await check('/x', { 'x-padding': 'p'.repeat(64 * 1024 - 200) });
    assert.equal(big.status, 200);
    const over = await check('/x', { 'x-padding': 'p'.repeat(66 * 1024) });
    assert.equal(over.status, 400, 'the request model refuses it, as in gRPC mode');
    const far = await check('/x', { 'x-padding': 'p'.repeat(90 * 1024) });
    assert.equal(far.status, 431, 'Node refuses far more itself');
  });
});

describe('the admin listener survives whatever throws', () => {
  const log = captureLog('info');
  const health = new HealthState();
  let probeThrows = false;
  let server: Server;
  let base: string;

  before(async () => {
    health.setProbes([
      {
        name: 'store',
        waitingFor: () => {
          if (probeThrows) throw new Error('a readiness probe broke');
          return undefined;
        },
      },
    ]);
    server = createAdminServer(health, new Metrics({ defaultMetrics: false }), log.logger);
    base = await listen(server);
  });
  after(() => close(server));

  it('answers 500 for a probe that throws, logs once, and keeps serving', async () => {
    probeThrows = true;
    const failed = await fetch(`${base}/readyz`, { headers: { 'x-request-id': 'admin-1' } });
    assert.equal(failed.status, 500);
    await failed.arrayBuffer();
    assert.equal(errorsFor(log, 'admin-1').length, 1);
    const alive = await fetch(`${base}/healthz`);
    assert.equal(alive.status, 200);
    probeThrows = false;
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
  });
});

describe('the gRPC listener survives whatever throws', () => {
  const log = captureLog('info');
  const grpc = createGrpcServer({
    protos: loadProtos(),
    authorizer: authorizer(log),
    health: new HealthState(),
    logger: log.logger,
    limits: grpcLimitsSchema.parse({}),
  });
  let envoy: EnvoyClient;

  before(async () => {
    await new Promise<void>((resolve) => grpc.server.listen(0, '127.0.0.1', resolve));
    const { port } = grpc.server.address() as AddressInfo;
    envoy = new EnvoyClient({
      target: `127.0.0.1:${port}`,
      protos: loadUpstreamProtos(),
      timeoutMs: 5_000,
    });
  });
  after(async () => {
    envoy.close();
    await grpc.shutdown(1_000);
  });

  for (const fault of ['throw', 'reject', 'unencodable']) {
    it(`answers UNAVAILABLE (Envoy's error path) and logs once with the request id: ${fault}`, async () => {
      const before = log.lines().length;
      const outcome = await envoy.check({
        url: 'https://web.example.com/x',
        headers: [['x-fault', fault]],
      });
      assert.equal(outcome.kind, 'error');
      assert.equal(outcome.kind === 'error' && outcome.grpcCode, 14);
      const lines = log
        .lines()
        .slice(before)
        .filter((line) => line['level'] === 'error');
      assert.equal(lines.length, 1, JSON.stringify(lines));
      assert.match(String(lines[0]!['requestId']), /^\d+$/, "Envoy's stream id");

      const next = await envoy.check({ url: 'https://web.example.com/x' });
      assert.equal(next.kind, 'allow', 'the listener keeps serving');
    });
  }
});
