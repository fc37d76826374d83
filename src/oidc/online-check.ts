/**
 * `check-config --online`: reads every app's discovery document once, without starting the
 * server, and reports what start-up would refuse (issuer mismatch, no common ID-token algorithm,
 * `oidc.par` at odds with what the provider announces of pushed authorization requests).
 */
import type { ServerMetadata } from 'openid-client';
import type { Config } from '../config/schema.ts';
import { issuerKey } from '../config/issuer-key.ts';
import { createIdpFetch } from './idp-fetch.ts';
import { classifyIdpFailure } from './oidc-errors.ts';
import { idTokenAlgMismatch, issuerMismatch, parMismatch } from './provider-checks.ts';
import { PROVIDER_FETCH_TIMEOUT_MS, readDiscoveryDocument } from './provider.ts';

/** The outcome: `output` is ready to print, one line per app and problem. */
export interface OnlineCheckResult {
  readonly ok: boolean;
  readonly output: string;
}

/**
 * Fetches each issuer's discovery document (once per issuer, in parallel), then checks each app
 * against it. A provider that cannot be reached is a failure too: the server would not be ready.
 */
export async function checkProvidersOnline(
  config: Config,
  timeoutMs = PROVIDER_FETCH_TIMEOUT_MS,
): Promise<OnlineCheckResult> {
  const documents = new Map<string, Promise<ServerMetadata | Error>>();
  for (const app of config.apps) {
    const key = issuerKey(app.oidc.issuer);
    if (documents.has(key)) continue;
    const fetch = createIdpFetch({
      timeoutMs,
      tlsInsecureSkipVerify: app.oidc.tlsInsecureSkipVerify,
    });
    documents.set(
      key,
      readDiscoveryDocument(app.oidc.issuer, fetch, timeoutMs).catch(
        (error: unknown) => classifyIdpFailure(error, 'discovery') as Error,
      ),
    );
  }

  const lines: string[] = [];
  let ok = true;
  for (const [index, app] of config.apps.entries()) {
    const at = `apps[${index}].oidc`;
    const document = await documents.get(issuerKey(app.oidc.issuer))!;
    if (document instanceof Error) {
      ok = false;
      lines.push(`${at}.issuer: discovery failed: ${document.message}`);
      continue;
    }
    const problems = [
      [`${at}.issuer`, issuerMismatch(app.oidc.issuer, document.issuer)],
      // An API-only app receives no ID token.
      [
        `${at}.idTokenAlgs`,
        app.browserLogin
          ? idTokenAlgMismatch(document.id_token_signing_alg_values_supported, app.oidc.idTokenAlgs)
          : undefined,
      ],
      [`${at}.par`, app.browserLogin ? parMismatch(document, app.oidc.par) : undefined],
    ] as const;
    let appOk = true;
    for (const [path, problem] of problems) {
      if (problem === undefined) continue;
      appOk = false;
      lines.push(`${path}: ${problem}`);
    }
    if (appOk) lines.push(`apps[${index}] ${app.name}: provider ${app.oidc.issuer} OK`);
    else ok = false;
  }
  return { ok, output: lines.join('\n') };
}
