/** What an app sends for one identity besides its identity headers: a signed assertion, and dynamic metadata for Envoy. */
import type { RenderedIdentity } from './allow-memo.ts';
import type { AppRuntime } from './app-runtime.ts';
import type { AssertionRequest, IdentityInput } from './upstream-assertion.ts';
import type { HeaderPair } from './verdict.ts';

/**
 * `headers` (the identity headers already rendered) with the app's upstream assertion, kept
 * under `identity` (see `UpstreamAssertion.issue`), and its dynamic metadata for the identity.
 * `now` in ms since the epoch.
 */
export function completeIdentity(
  app: AppRuntime,
  headers: HeaderPair[],
  input: IdentityInput,
  identity: object,
  now: number,
  request?: AssertionRequest,
): RenderedIdentity {
  const metadata = app.dynamicMetadata.render({
    claims: input.claims,
    app: { name: app.name },
    auth: input.auth,
  });
  const assertion = app.assertion;
  if (assertion === undefined) return { headers, metadata, renewAt: Infinity };
  const issued = assertion.issue(identity, input, now, request);
  headers.push([assertion.header, issued.token]);
  return { headers, metadata, renewAt: issued.renewAt };
}
