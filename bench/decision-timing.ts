/**
 * Times one decision in process, without a transport: `Authorizer.check`, the CheckResponse
 * built from its verdict and the protobuf encoding of that response, for the paths SPEC §13
 * measures (hot cookie session, hot bearer JWT, unauthenticated navigation → 302), and a hot
 * DPoP-bound JWT with a fresh proof per Check (its signature verified, its `jti` marked in the
 * memory store), and 10,000 distinct cookie sessions in turn (`cookies`: beyond the allow memo,
 * within the decoded-session cache).
 *
 * Run after `npm run build`: `node dist/bench/decision-timing.js [--only cookie,cookies,bearer,dpop,login]
 * [--iterations 20000] [--tracing] [--assertions]`; `--assertions` turns on signed upstream
 * assertions (`upstreamAssertion`) for both apps. Add `--cpu-prof` to node for a profile of the
 * timed loops.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Authorizer, Outcome } from '../src/authz/authorizer.ts';
import type { RawRequest } from '../src/authz/parse-request.ts';
import { startTestProvider } from '../dev/test-provider.ts';
import type { Verdict } from '../src/authz/verdict.ts';
import { CheckResponseEncoder } from '../src/server/check-response.ts';
import { toCheckResponse } from '../test/support/check-response.ts';
import { loadCheckTypes, type CheckRequest } from '../src/server/protos.ts';
import { AppBrowser } from '../test/support/browser.ts';
import { EnvoyClient, normaliseRequest } from '../test/support/envoy-client.ts';
import { startTestServer, type TestServer } from '../test/support/test-server.ts';
import { loadUpstreamProtos } from '../test/support/upstream-protos.ts';
import { benchDpopClient } from './dpop-signer.ts';
import { mintedUser, mintSessions } from './session-minting.ts';
import { navigation } from './realistic-workloads.ts';
import {
  benchBearerToken,
  benchDpopToken,
  clientSecret,
  memoryServerConfig,
} from './server-configs.ts';

type CaseId = 'cookie' | 'cookies' | 'bearer' | 'dpop' | 'login';

/** Distinct cookie sessions the `cookies` case rotates through. */
const distinctSessions = 10_000;

interface Case {
  readonly id: CaseId;
  readonly title: string;
  readonly raw: RawRequest;
  /** The request of each further run, when no two may be the same (a DPoP proof is used once). */
  readonly next?: () => RawRequest;
  /**
   * Distinct requests `next` cycles through, when that is more than one: the warm-up runs all of
   * them, so the timed Checks find each in the caches a long-running server would have it in.
   */
  readonly rotation?: number;
  /** What is wrong with the encoded answer, or `undefined` when it is the expected verdict. */
  readonly wrong: (decoded: Record<string, unknown>) => string | undefined;
}

/** Per-Check figures of one case. */
export interface DecisionTiming {
  readonly id: CaseId;
  readonly title: string;
  readonly iterations: number;
  readonly medianUs: number;
  readonly p99Us: number;
  /** Wall time of the whole timed loop divided by the Checks: includes GC pauses. */
  readonly meanUs: number;
  /** Process CPU time (user + system) over the timed loop divided by the Checks. */
  readonly cpuUs: number;
  /** Heap bytes allocated per Check (median over GC-free batches). */
  readonly allocatedBytes: number;
  readonly gcsPer10k: number;
  readonly responseBytes: number;
}

/** The transport-neutral request from a decoded CheckRequest, as a gRPC transport makes it. */
function rawFromCheck(check: CheckRequest): RawRequest {
  const http = check.attributes?.request?.http;
  const headers = Object.entries(http?.headers ?? {});
  return {
    id: http?.id ?? '',
    method: http?.method ?? '',
    path: http?.path ?? '',
    authority: http?.host ?? '',
    scheme: http?.scheme || 'http',
    headers,
    peerAddress: check.attributes?.source?.address?.socket_address?.address ?? '',
    contextExtensions: Object.entries(check.attributes?.context_extensions ?? {}),
    body: http?.body ?? '',
  };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

async function timeCase(
  authorizer: Authorizer,
  encode: (verdict: Verdict, app: string | undefined) => Uint8Array,
  one: Case,
  iterations: number,
): Promise<DecisionTiming> {
  const encodeOutcome = ({ app, verdict }: Outcome): Uint8Array => encode(verdict, app);
  // Awaited only when the decision was asynchronous, as a transport would.
  const next = one.next ?? (() => one.raw);
  const run = (): Uint8Array | Promise<Uint8Array> => {
    const decided = authorizer.decide(next());
    return decided instanceof Promise ? decided.then(encodeOutcome) : encodeOutcome(decided);
  };
  const bytes = await run();
  for (let i = 0; i < Math.max(Math.min(5_000, iterations), one.rotation ?? 0); i++) {
    const pending = run();
    if (pending instanceof Promise) await pending;
  }

  let gcs = 0;
  const observer = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  observer.observe({ entryTypes: ['gc'] });
  const samples = new Float64Array(iterations);
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    const pending = run();
    if (pending instanceof Promise) await pending;
    samples[i] = Number(process.hrtime.bigint() - t0) / 1_000;
  }
  const totalUs = Number(process.hrtime.bigint() - started) / 1_000;
  const cpu = process.cpuUsage(cpuBefore);
  await new Promise((resolve) => setTimeout(resolve, 50));
  gcs += observer.takeRecords().length;
  observer.disconnect();
  samples.sort();

  // Allocation: heap growth over small batches; a batch a GC ran in shrinks or stays flat, so
  // the median of many batches is the steady allocation.
  const batch = 50;
  const deltas: number[] = [];
  for (let b = 0; b < 200; b++) {
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < batch; i++) {
      const pending = run();
      if (pending instanceof Promise) await pending;
    }
    const delta = process.memoryUsage().heapUsed - before;
    if (delta > 0) deltas.push(delta / batch);
  }
  deltas.sort((a, b) => a - b);

  return {
    id: one.id,
    title: one.title,
    iterations,
    medianUs: percentile(samples, 0.5),
    p99Us: percentile(samples, 0.99),
    meanUs: totalUs / iterations,
    cpuUs: (cpu.user + cpu.system) / iterations,
    allocatedBytes: Math.round(deltas[deltas.length >> 1] ?? Number.NaN),
    gcsPer10k: (gcs * 10_000) / iterations,
    responseBytes: bytes.length,
  };
}

function headerValue(options: unknown, name: string): string | undefined {
  const list = (options as { header?: { key?: string; value?: string } }[] | undefined) ?? [];
  return list.find((o) => o.header?.key === name)?.header?.value;
}

function expectAllow(user: string, reason: string, assertion: boolean) {
  return (decoded: Record<string, unknown>): string | undefined => {
    const response = decoded as {
      status?: { code?: number };
      ok_response?: { headers?: unknown };
      dynamic_metadata?: { fields?: Record<string, { stringValue?: string }> };
    };
    if ((response.status?.code ?? 0) !== 0) return `denied: ${JSON.stringify(decoded)}`;
    const got = headerValue(response.ok_response?.headers, 'x-auth-request-user');
    if (got !== user) return `x-auth-request-user ${got ?? 'missing'}`;
    const signed = headerValue(response.ok_response?.headers, 'x-auth-request-assertion');
    if (assertion && signed === undefined) return 'no upstream assertion';
    const why = response.dynamic_metadata?.fields?.['reason']?.stringValue;
    return why === reason ? undefined : `reason ${why ?? 'missing'}`;
  };
}

function expectRedirect(decoded: Record<string, unknown>): string | undefined {
  const response = decoded as {
    denied_response?: { status?: { code?: number }; headers?: unknown };
  };
  if (response.denied_response?.status?.code !== 302)
    return `not a 302: ${JSON.stringify(decoded)}`;
  const location = headerValue(response.denied_response.headers, 'location') ?? '';
  return location.includes('code_challenge=') ? undefined : 'no authorization URL';
}

/** What the provider process prints once it listens. */
interface ProviderReady {
  readonly issuer: string;
  readonly bearerToken: string;
  /** Bound to the key whose thumbprint the provider process was given (`--dpop-jkt`). */
  readonly dpopToken: string;
}

/** Runs of one case: the warm-up, the timed loop and the allocation batches, plus the check. */
function runsOf(iterations: number): number {
  return 1 + Math.min(5_000, iterations) + iterations + 200 * 50 + 1;
}

/**
 * Runs the provider in a process of its own, as in production: oidc-provider keeps an
 * AsyncLocalStorage, whose promise hooks would otherwise slow down every promise of the server
 * measured here. The child prints one JSON line and lives until its stdin closes.
 */
async function startProviderProcess(
  dpopJkt: string,
): Promise<{ ready: ProviderReady; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    // One argument: a thumbprint may start with `-`, which parseArgs refuses as a value.
    [fileURLToPath(import.meta.url), '--provider', `--dpop-jkt=${dpopJkt}`],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout });
  const ready = await new Promise<ProviderReady>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`provider process exited with ${code}`)));
    lines.once('line', (line) => resolve(JSON.parse(line) as ProviderReady));
  });
  return { ready, child };
}

async function serveProvider(dpopJkt: string): Promise<void> {
  const provider = await startTestProvider({
    clients: ['web', 'api'].map((name) => ({
      clientId: name,
      clientSecret,
      redirectUris: [`https://${name}.example.com/oauth2/callback`],
    })),
    accessTokenTtlSeconds: 3_600,
  });
  const bearerToken = await benchBearerToken(provider);
  const dpopToken = await benchDpopToken(provider, dpopJkt);
  const ready: ProviderReady = { issuer: provider.issuer, bearerToken, dpopToken };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once('end', resolve));
  await provider.close();
}

/** Starts a provider and a server, logs in, and times each wanted case. */
export async function timeDecisions(
  iterations: number,
  wanted: (id: CaseId) => boolean = () => true,
  encoding: 'direct' | 'protobufjs' = 'direct',
  tracing = false,
  assertions = false,
): Promise<DecisionTiming[]> {
  let provider: ChildProcess | undefined;
  let server: TestServer | undefined;
  let envoy: EnvoyClient | undefined;
  let collector: Server | undefined;
  try {
    const dpopClient = benchDpopClient();
    const started = await startProviderProcess(dpopClient.jkt);
    provider = started.child;
    const { issuer, bearerToken: token, dpopToken } = started.ready;
    // With `tracing`, every Check is sampled and its span sent to a collector that takes all.
    collector = tracing ? await startSinkCollector() : undefined;
    server = await startTestServer({
      ...memoryServerConfig(issuer, { assertions }),
      ...(collector === undefined
        ? {}
        : {
            tracing: {
              enabled: true,
              endpoint: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`,
            },
          }),
    });
    const upstream = loadUpstreamProtos();
    envoy = new EnvoyClient({ target: server.grpcTarget, protos: upstream, timeoutMs: 5_000 });
    const browser = new AppBrowser(envoy);
    await browser.login('https://web.example.com/');
    const cookie = browser.cookieHeader();
    if (cookie === undefined) throw new Error('no session cookie after logging in');

    const types = loadCheckTypes();
    const encoder = new CheckResponseEncoder();
    const encode =
      encoding === 'direct'
        ? (verdict: Verdict, app: string | undefined): Uint8Array => encoder.encode(verdict, app)
        : (verdict: Verdict, app: string | undefined): Uint8Array =>
            types.response.encode(toCheckResponse(verdict, app)).finish();
    const decodeResponse = (bytes: Uint8Array): Record<string, unknown> =>
      upstream.decode(upstream.CheckResponse, Buffer.from(bytes));
    const client = envoy;
    const rawFor = (url: string, headers: readonly (readonly [string, string])[]): RawRequest => {
      const check = client.buildCheckRequest(normaliseRequest({ url, headers }), {
        sourcePort: 40_000,
      });
      const frame = upstream.encode(upstream.CheckRequest, check as Record<string, unknown>);
      return rawFromCheck(types.request.decode(frame) as CheckRequest);
    };
    /** The DPoP requests are made before the timing starts: signing is the client's cost. */
    const dpopCase = (): Case => {
      const url = 'https://api.example.com/v1/things?limit=20';
      const htu = 'https://api.example.com/v1/things';
      const requestFor = () =>
        rawFor(url, [
          ['accept', 'application/json'],
          ['authorization', `DPoP ${dpopToken}`],
          ['dpop', dpopClient.proof(htu, dpopToken)],
          ['user-agent', 'bench-client/1.0'],
        ]);
      const requests = wanted('dpop')
        ? Array.from({ length: runsOf(iterations) }, requestFor)
        : [requestFor()];
      let at = 0;
      return {
        id: 'dpop',
        title: 'hot DPoP-bound JWT, fresh proof',
        raw: requests[0]!,
        next: () => requests[at++ % requests.length]!,
        wrong: expectAllow('svc-bench', 'bearer', assertions),
      };
    };
    /** Sessions sealed with the app's own codec, one user each, sent in turn. */
    const distinctCookiesCase = async (): Promise<Case> => {
      const count = wanted('cookies') ? distinctSessions : 1;
      const cookies = await mintSessions(memoryServerConfig(issuer, { assertions }), 'web', count);
      const requests = cookies.map((c) =>
        rawFor('https://web.example.com/dashboard/overview', [
          ...navigation,
          ['cookie', `${c}; _ga=GA1.2.3456789.1234567890`],
        ]),
      );
      let at = 0;
      return {
        id: 'cookies',
        title: `${count} distinct cookie sessions in turn`,
        raw: requests[0]!,
        next: () => requests[at++ % requests.length]!,
        rotation: requests.length,
        // Checked on the first request only: the user differs per session.
        wrong: expectAllow(mintedUser(0), 'session', assertions),
      };
    };
    const cases: Case[] = [
      {
        id: 'cookie',
        title: 'hot cookie session',
        raw: rawFor('https://web.example.com/dashboard/overview', [
          ...navigation,
          ['cookie', `${cookie}; _ga=GA1.2.3456789.1234567890`],
        ]),
        wrong: expectAllow('alice', 'session', assertions),
      },
      {
        id: 'bearer',
        title: 'hot bearer JWT',
        raw: rawFor('https://api.example.com/v1/things?limit=20', [
          ['accept', 'application/json'],
          ['authorization', `Bearer ${token}`],
          ['user-agent', 'bench-client/1.0'],
        ]),
        wrong: expectAllow('svc-bench', 'bearer', assertions),
      },
      dpopCase(),
      await distinctCookiesCase(),
      {
        id: 'login',
        title: 'unauthenticated navigation (302)',
        raw: rawFor('https://web.example.com/dashboard/overview', navigation),
        wrong: expectRedirect,
      },
    ];

    const authorizer = server.handle.authorizer;
    const results: DecisionTiming[] = [];
    for (const one of cases) {
      if (!wanted(one.id)) continue;
      const outcome = await authorizer.decide(one.next?.() ?? one.raw);
      const wrong = one.wrong(decodeResponse(encode(outcome.verdict, outcome.app)));
      if (wrong !== undefined) throw new Error(`${one.title}: ${wrong}`);
      results.push(await timeCase(authorizer, encode, one, iterations));
    }
    return results;
  } finally {
    envoy?.close();
    await server?.close();
    collector?.close();
    if (provider !== undefined) {
      const exited = new Promise((resolve) => provider?.once('exit', resolve));
      provider.stdin?.end();
      await exited;
    }
  }
}

/** An OTLP/HTTP endpoint that reads and accepts every export. */
async function startSinkCollector(): Promise<Server> {
  const collector = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  return collector;
}

function fixed(value: number): string {
  return value.toFixed(1);
}

const isMain = process.argv[1]?.endsWith('decision-timing.js') === true;
const { values } = isMain
  ? parseArgs({
      options: {
        only: { type: 'string' },
        iterations: { type: 'string', default: '20000' },
        provider: { type: 'boolean', default: false },
        'dpop-jkt': { type: 'string', default: '' },
        /** `protobufjs`: build the response object and encode it with protobufjs instead. */
        encoder: { type: 'string', default: 'direct' },
        /** Trace every Check, exporting to a collector in this process. */
        tracing: { type: 'boolean', default: false },
        /** Print the results as one JSON line instead of a table. */
        json: { type: 'boolean', default: false },
        /** Sign an upstream assertion for every allow (`upstreamAssertion` on both apps). */
        assertions: { type: 'boolean', default: false },
      },
    })
  : { values: undefined };
if (values?.provider === true) {
  await serveProvider(values['dpop-jkt']);
} else if (values !== undefined) {
  const only = values.only === undefined ? undefined : new Set(values.only.split(','));
  const results = await timeDecisions(
    Number(values.iterations),
    (id) => only === undefined || only.has(id),
    values.encoder === 'protobufjs' ? 'protobufjs' : 'direct',
    values.tracing === true,
    values.assertions === true,
  );
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify(results)}\n`);
    process.exit(0);
  }
  const rows = results.map((r) => ({
    case: r.title,
    'median µs': fixed(r.medianUs),
    'p99 µs': fixed(r.p99Us),
    'mean µs': fixed(r.meanUs),
    'CPU µs': fixed(r.cpuUs),
    'alloc B': r.allocatedBytes,
    'GCs/10k': fixed(r.gcsPer10k),
    'response B': r.responseBytes,
  }));
  console.table(rows);
}
