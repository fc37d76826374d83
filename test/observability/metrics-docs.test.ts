/**
 * `/metrics` of a real server (a real oidc-provider, a real redis-server) against the table in
 * docs/operations.md: every `eoa_` series exposed is documented with its type and labels, and
 * every documented series is exposed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { AppBrowser } from '../support/browser.ts';
import { EnvoyClient } from '../support/envoy-client.ts';
import { startRedis, type RedisProcess } from '../support/redis-servers.ts';
import { signInAppConfig, startTestServer, type TestServer } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const clientSecret = 'metrics-docs-client-secret';
/** Node.js process metrics, documented as one row by prefix. */
const defaultPrefixes = ['eoa_process_', 'eoa_nodejs_'];

interface Row {
  readonly type: string;
  readonly labels: readonly string[];
}

/** The rows of the metrics table: name, type and label names (values in parentheses dropped). */
function documented(): Map<string, Row> {
  const text = readFileSync(new URL('../../../docs/operations.md', import.meta.url), 'utf8');
  const rows = new Map<string, Row>();
  for (const match of text.matchAll(/^\| `(eoa_[a-z_]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|/gm)) {
    const labels = [...match[3]!.replace(/\([^)]*\)/g, '').matchAll(/`(\w+)`/g)].map((m) => m[1]!);
    rows.set(match[1]!, { type: match[2]!, labels });
  }
  return rows;
}

const isDefault = (name: string): boolean => defaultPrefixes.some((p) => name.startsWith(p));

/** The families `/metrics` declares, by name, with their type and the label names of samples. */
function exposed(
  text: string,
): Map<string, { type: string; labels: Set<string>; samples: number }> {
  const families = new Map<string, { type: string; labels: Set<string>; samples: number }>();
  for (const match of text.matchAll(/^# TYPE (eoa_\w+) (\w+)$/gm)) {
    if (!isDefault(match[1]!))
      families.set(match[1]!, { type: match[2]!, labels: new Set(), samples: 0 });
  }
  for (const match of text.matchAll(/^(eoa_\w+?)(?:_bucket|_sum|_count)?(?:\{([^}]*)\})? \S+$/gm)) {
    const family =
      families.get(match[1]!) ?? families.get(match[1]!.replace(/_(bucket|sum|count)$/, ''));
    if (family === undefined) continue;
    family.samples += 1;
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="/g))
      if (pair[1] !== 'le') family.labels.add(pair[1]!);
  }
  return families;
}

describe('/metrics against docs/operations.md', () => {
  let provider: TestProvider;
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
    server = await startTestServer({
      apps: [
        signInAppConfig(
          { name: 'srv', clientSecret, session: { store: 'server' } },
          provider.issuer,
        ),
      ],
      store: { type: 'redis', redis: { url: redis.url } },
    });
    envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 10_000 });
  });
  after(async () => {
    envoy.close();
    await server.close();
    await redis.stop();
    await provider.close();
  });

  it('documents every series it exposes, with its type and labels, and exposes every one documented', async () => {
    const browser = new AppBrowser(envoy);
    await browser.login('https://srv.example.com/reports');
    await browser.request('https://srv.example.com/reports');
    await browser.request('https://nobody.example.com/');
    const text = await (await fetch(`${server.adminBase}/metrics`)).text();
    const rows = documented();
    const families = exposed(text);

    assert.ok(rows.size >= 20, `the table was read (${rows.size} rows)`);
    assert.deepEqual([...families.keys()].sort(), [...rows.keys()].sort());
    for (const [name, family] of families) {
      const row = rows.get(name)!;
      assert.equal(family.type, row.type, `${name}: type`);
      if (family.samples > 0)
        assert.deepEqual([...family.labels].sort(), [...row.labels].sort(), `${name}: labels`);
    }
    // What the Checks above must have produced, so the label checks above were not vacuous.
    for (const name of [
      'eoa_checks_total',
      'eoa_check_duration_seconds',
      'eoa_logins_total',
      'eoa_ready',
      'eoa_provider_request_duration_seconds',
      'eoa_store_command_duration_seconds',
      'eoa_breaker_state',
    ])
      assert.ok((families.get(name)?.samples ?? 0) > 0, `${name} has samples`);
    assert.match(text, /eoa_provider_request_duration_seconds_count\{endpoint="token"\} 1\n/);
    assert.match(text, /eoa_provider_request_duration_seconds_count\{endpoint="jwks"\} [1-9]/);
    assert.match(text, /eoa_provider_request_duration_seconds_count\{endpoint="discovery"\} [1-9]/);
    assert.match(text, /eoa_store_command_duration_seconds_count\{operation="set"\} [1-9]/);
    assert.match(text, /eoa_store_command_duration_seconds_count\{operation="get"\} [1-9]/);
    assert.match(text, /eoa_logins_total\{app="srv",outcome="ok"\} 1\n/);
    assert.match(text, /eoa_checks_total\{app="srv",verdict="allow",reason="session"\} 1\n/);
    assert.doesNotMatch(text, /example\.com|alice/, 'no host or user in a label');
  });
});
