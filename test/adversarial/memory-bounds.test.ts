/**
 * Memory bounds: 100,000 random session cookies and 100,000 random bearer tokens, each of a
 * different shape, from 100,000 client addresses and random hosts, through real Checks in
 * process (the authorizer both listeners call) against a real OpenID Provider. Nothing the
 * server keeps per distinct bad input may grow without bound: negative caches, JWKS `kid`
 * lookups, the bearer token cache, the failure throttle, the login redirect prefixes. The heap
 * after GC is measured at each quarter; its growth must stay under a fixed bound and stop.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { RawRequest } from '../../src/authz/parse-request.ts';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import type { ServerHandle } from '../../src/main.ts';
import { signInAppConfig, startTestServer, testConfig } from '../support/test-server.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const API = 'https://api.example.com/';
const perKind = 100_000;
/** Checks decided at once: enough to overlap the awaits, few enough to keep memory flat. */
const concurrency = 256;
const MiB = 1024 * 1024;

/**
 * The bound on heap growth after GC. What random input may legitimately fill is capped by
 * construction: the failure throttle (10,000 addresses, about 95 B each measured here, so
 * ~1 MiB), the login redirect prefixes (64 URLs), jose's one remote key set, the metric children
 * (per app and reason). Measured: 3.9 to 5.4 MiB, mostly the throttle and V8's own bookkeeping.
 * 8 MiB leaves room for noise; the throttle left unbounded (one entry per address) grew 9.4 MiB
 * and failed it.
 */
const maxGrowth = 8 * MiB;
/**
 * Growth allowed over the second pass, once every bounded structure is full: a per-input leak
 * grows there as much as in the first pass (the unbounded throttle: 4.6 MiB); a bounded one
 * does not grow at all (measured: 0.5 MiB).
 */
const maxLateGrowth = 3 * MiB;
/** Growth allowed over one row (7,700 to 8,400 inputs); the largest measured is 0.9 MiB. */
const maxRowGrowth = 3 * MiB;

function random(n: number): number {
  return Math.floor(Math.random() * n);
}

function b64(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

function json64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A random client address, so that every request is a new address to the throttle. */
function address(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

interface Shape {
  readonly kind: 'cookie' | 'token';
  /** The attack the row stands for. */
  readonly name: string;
  /** The cookie value or bearer token for the `i`-th request. */
  make(i: number): string;
}

function jwe(kid: string): string {
  return [
    json64({ alg: 'dir', enc: 'A256GCM', kid }),
    '',
    b64(12),
    b64(32 + random(2000)),
    b64(16),
  ].join('.');
}

function jwt(header: Record<string, unknown>, i: number, signatureBytes: number): string {
  const payload = json64({
    iss: `https://issuer-${i}.example.com`,
    sub: b64(12),
    aud: API,
    exp: Math.floor(Date.now() / 1000) + 600,
    jti: b64(16),
  });
  return `${json64(header)}.${payload}.${signatureBytes === 0 ? '' : b64(signatureBytes)}`;
}

/** The table: each row an input shape; the safe outcome is a refusal and no memory kept for it. */
function shapes(realCookieKid: string, realTokenKid: string): readonly Shape[] {
  return [
    { kind: 'cookie', name: 'random bytes, 8 B to 3 KB', make: () => b64(8 + random(3000)) },
    { kind: 'cookie', name: 'a JWE naming a random kid', make: () => jwe(b64(4 + random(40))) },
    {
      kind: 'cookie',
      name: 'a JWE under a real kid, failing its tag',
      make: () => jwe(realCookieKid),
    },
    {
      kind: 'cookie',
      name: 'a server-session ticket <id>.<key>',
      make: () => `${b64(16)}.${b64(32)}`,
    },
    { kind: 'cookie', name: 'a quoted value', make: () => `"${b64(20)}"` },
    { kind: 'cookie', name: 'three dotted parts', make: () => `${b64(10)}.${b64(10)}.${b64(10)}` },
    { kind: 'token', name: 'an opaque token', make: () => b64(16 + random(200)) },
    {
      kind: 'token',
      name: 'a JWT with a random kid (JWKS miss)',
      make: (i) => jwt({ alg: 'RS256', typ: 'at+jwt', kid: b64(8 + random(60)) }, i, 256),
    },
    {
      kind: 'token',
      name: "a JWT under the provider's kid, forged signature",
      make: (i) => jwt({ alg: 'RS256', typ: 'at+jwt', kid: realTokenKid }, i, 256),
    },
    {
      kind: 'token',
      name: 'alg none and HS256',
      make: (i) => jwt({ alg: i % 2 === 0 ? 'none' : 'HS256', kid: b64(8) }, i, 0),
    },
    {
      kind: 'token',
      name: 'embedded jwk and jku',
      make: (i) =>
        jwt(
          { alg: 'ES256', kid: b64(8), jku: `https://${b64(6)}.example/jwks`, jwk: { kty: 'EC' } },
          i,
          64,
        ),
    },
    {
      kind: 'token',
      name: 'crit and a random typ',
      make: (i) => jwt({ alg: 'PS256', kid: b64(8), crit: [b64(4)], typ: b64(5) }, i, 256),
    },
    {
      kind: 'token',
      name: 'oversized (17 KB) or not base64',
      make: (i) =>
        i % 2 === 0 ? 'x'.repeat(17_000 + random(100)) : `${b64(10)}..${'%'.repeat(10)}`,
    },
  ];
}

describe('memory bounds under 100k random cookies and 100k random tokens', () => {
  let provider: TestProvider;
  let handle: ServerHandle;
  let cookieNames: string[];
  /** Heap after GC: after the warm-up, then after each pass over the table. */
  const heap: number[] = [];
  /** Largest heap growth after GC over one row's inputs, by row. */
  const rows = new Map<string, number>();
  let names: string[] = [];
  let seconds = 0;

  before(async () => {
    provider = await startTestProvider({
      defaultResource: API,
      clients: [
        {
          clientId: 'grafana',
          clientSecret: 'grafana-client-secret-long-enough',
          redirectUris: ['https://grafana.example.com/oauth2/callback'],
        },
        {
          clientId: 'wiki',
          clientSecret: 'wiki-client-secret-long-enough',
          redirectUris: ['https://wiki.example.com/oauth2/callback'],
        },
      ],
    });
    const app = (name: string, store: 'cookie' | 'server') =>
      signInAppConfig(
        {
          name,
          clientSecret: `${name}-client-secret-long-enough`,
          session: { store },
          app: { bearer: { enabled: true, audiences: [API] } },
        },
        provider.issuer,
      );
    const document = { apps: [app('grafana', 'cookie'), app('wiki', 'server')] };
    cookieNames = testConfig(document).apps.flatMap((a) => [
      a.session.cookieName,
      `__Host-${a.session.cookieName}`,
    ]);
    handle = (await startTestServer(document)).handle;

    const table = shapes(b64(8), provider.keys.RS256.kid);
    let sequence = 0;
    const requestFor = (shape: Shape): RawRequest => {
      const i = sequence++;
      const host = ['grafana.example.com', 'wiki.example.com', `${b64(6)}.example.com`][i % 3]!;
      const navigation = i % 4 === 0;
      const headers: [string, string][] = [
        ['accept', navigation ? 'text/html' : 'application/json'],
        ['x-request-id', b64(12)],
      ];
      if (shape.kind === 'cookie') {
        const base = cookieNames[i % cookieNames.length]!;
        // Every fifth one as a chunk of a split cookie.
        const name = i % 5 === 0 ? `${base}.${i % 3}` : base;
        headers.push(['cookie', `${name}=${shape.make(i)}; theme=${b64(4)}`]);
      } else {
        headers.push(['authorization', `Bearer ${shape.make(i)}`]);
      }
      return {
        id: String(i),
        method: 'GET',
        path: `/${b64(4)}?q=${b64(8)}`,
        authority: host,
        scheme: 'https',
        headers,
        peerAddress: address(i),
        // Some routes name the app whatever the host (envoy.yaml does, per virtual host).
        contextExtensions: i % 7 === 0 ? [['app', 'grafana']] : [],
        body: '',
      };
    };

    const run = async (shape: Shape, count: number): Promise<void> => {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < count) {
          next++;
          const outcome = await handle.authorizer.decide(requestFor(shape));
          assert.notEqual(outcome.verdict.kind, 'allow', `${shape.name} let in`);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
    };
    const settle = (): number => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };

    // Warm-up: code paths compiled, one-time structures (JWKS, prefixes, metric children) built.
    for (const shape of table) await run(shape, 500);
    heap.push(settle());
    const started = performance.now();
    // Two passes over the table, so the second shows whether anything still grows.
    for (let pass = 0; pass < 2; pass++) {
      for (const shape of table) {
        const count = Math.ceil(perKind / table.filter((s) => s.kind === shape.kind).length / 2);
        const before = settle();
        await run(shape, count);
        const growth = settle() - before;
        rows.set(shape.name, Math.max(rows.get(shape.name) ?? 0, growth));
      }
      heap.push(settle());
    }
    seconds = (performance.now() - started) / 1000;
    names = table.map((shape) => `${shape.kind}: ${shape.name}`);
  });

  after(async () => {
    await handle.close();
    await provider.close();
  });

  it(`keeps heap growth after GC under ${maxGrowth / MiB} MiB`, (t) => {
    const growth = heap[heap.length - 1]! - heap[0]!;
    t.diagnostic(
      `heap after GC (MiB): ${heap.map((h) => (h / MiB).toFixed(1)).join(' → ')}; ` +
        `growth ${(growth / MiB).toFixed(2)} MiB over ${2 * perKind} inputs in ${seconds.toFixed(1)} s; ` +
        `largest row ${(Math.max(...rows.values()) / MiB).toFixed(2)} MiB`,
    );
    assert.ok(growth < maxGrowth, `${(growth / MiB).toFixed(1)} MiB`);
  });

  it(`stops growing: under ${maxLateGrowth / MiB} MiB over the second pass`, () => {
    const late = heap[2]! - heap[1]!;
    assert.ok(late < maxLateGrowth, `${(late / MiB).toFixed(2)} MiB`);
  });

  it('ran every row', () => {
    assert.equal(rows.size, names.length);
  });

  // One row per input shape: its inputs refused, and the heap after GC not grown by them.
  for (const [index, row] of [
    'cookie: random bytes, 8 B to 3 KB',
    'cookie: a JWE naming a random kid',
    'cookie: a JWE under a real kid, failing its tag',
    'cookie: a server-session ticket <id>.<key>',
    'cookie: a quoted value',
    'cookie: three dotted parts',
    'token: an opaque token',
    'token: a JWT with a random kid (JWKS miss)',
    "token: a JWT under the provider's kid, forged signature",
    'token: alg none and HS256',
    'token: embedded jwk and jku',
    'token: crit and a random typ',
    'token: oversized (17 KB) or not base64',
  ].entries()) {
    it(`${row}: refused, heap growth under ${maxRowGrowth / MiB} MiB`, () => {
      assert.equal(names[index], row);
      const growth = rows.get(row.slice(row.indexOf(': ') + 2))!;
      assert.ok(growth < maxRowGrowth, `${(growth / MiB).toFixed(2)} MiB`);
    });
  }
});
