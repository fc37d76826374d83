/** A provider outage is seen by the probes: new logins get 503 with Retry-After while it is down, and log in again once it is back. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startTestProvider } from '../../dev/test-provider.ts';
import { AppBrowser, assertProviderUnavailable, locationOf, statusOf } from '../support/browser.ts';
import { EnvoyClient } from '../support/envoy-client.ts';
import { startTestServer, testSessionSecret } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const protos = loadUpstreamProtos();
const origin = 'https://wiki.example.com';
const BREAKER = 'idp:wiki:discovery';

/** The value of `eoa_breaker_state` (0 closed, 1 half-open, 2 open) for the discovery breaker. */
async function discoveryBreakerState(adminBase: string): Promise<number> {
  const text = await (await fetch(`${adminBase}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`eoa_breaker_state{breaker="${BREAKER}"}`));
  return Number(line?.split(' ').at(-1));
}

/** Polls the metric until it reads `state`; the probes change it on their own schedule. */
async function waitForBreakerState(adminBase: string, state: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await discoveryBreakerState(adminBase)) !== state) {
    if (Date.now() > deadline) throw new Error(`${BREAKER} never reached state ${state}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('provider outage seen by the probes', () => {
  it('answers a login 503 idp_unavailable while the provider is down, and logs in once it is back', async () => {
    const provider = await startTestProvider({
      clients: [
        {
          clientId: 'wiki',
          clientSecret: 'wiki-client-secret-long-enough',
          redirectUris: [`${origin}/oauth2/callback`],
        },
      ],
    });
    const server = await startTestServer({
      apps: [
        {
          name: 'wiki',
          match: { hosts: ['wiki.example.com'] },
          oidc: {
            issuer: provider.issuer,
            clientId: 'wiki',
            clientSecret: 'wiki-client-secret-long-enough',
            probeInterval: '50ms',
          },
          session: { secrets: [testSessionSecret] },
        },
      ],
      // As with the defaults (a probe every 10 s, a 10 s window, 5 calls needed to open), fewer
      // probes fit in the rolling window than the volume threshold: counting alone never opens.
      breakers: { idp: { rollingWindow: '100ms', resetTimeout: '200ms' } },
    });
    const envoy = new EnvoyClient({ target: server.grpcTarget, protos, timeoutMs: 5_000 });
    try {
      const before = await new AppBrowser(envoy).request(`${origin}/pages/home`);
      assert.equal(statusOf(before), 302);
      assert.ok(locationOf(before)?.startsWith(`${provider.issuer}/auth`));

      await provider.stop();
      await waitForBreakerState(server.adminBase, 2);
      const down = await new AppBrowser(envoy).request(`${origin}/pages/home`);
      assertProviderUnavailable(down, 'a login while the provider is down');
      assert.equal(locationOf(down), undefined, 'no redirect to a dead provider');

      // Back, but answering slowly: while the breaker's probe is out (half-open), logins are
      // still refused rather than sent to a provider not yet known to be up.
      provider.injectFault({ target: 'discovery', latencyMs: 1_500, count: 1 });
      await provider.start();
      await waitForBreakerState(server.adminBase, 1);
      const probing = await new AppBrowser(envoy).request(`${origin}/pages/home`);
      assertProviderUnavailable(probing, 'a login while the probe is out');

      await waitForBreakerState(server.adminBase, 0);
      const location = await new AppBrowser(envoy).login(`${origin}/pages/home`);
      assert.equal(location, `${origin}/pages/home`);
    } finally {
      envoy.close();
      await server.close();
      await provider.close();
    }
  });
});
