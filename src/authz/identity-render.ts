/** What an app sends for one identity besides its identity headers: dynamic metadata for Envoy. */
import type { TemplateContext } from '../config/template.ts';
import type { RenderedIdentity } from './allow-memo.ts';
import type { AppRuntime } from './app-runtime.ts';
import type { HeaderPair } from './verdict.ts';

/** How a request was authenticated, as templates read it (`auth.method`, `auth.client_id`). */
export type AuthContext = NonNullable<TemplateContext['auth']>;

/** The identity of a session or verified bearer token, as the app renders it. */
export interface IdentityInput {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly auth: AuthContext;
}

/**
 * `headers` (the identity headers already rendered) with the app's dynamic metadata for the
 * identity.
 */
export function completeIdentity(
  app: AppRuntime,
  headers: HeaderPair[],
  input: IdentityInput,
): RenderedIdentity {
  const metadata = app.dynamicMetadata.render({
    claims: input.claims,
    app: { name: app.name },
    auth: input.auth,
  });
  return { headers, metadata, renewAt: Infinity };
}
