/** Signing keys of a bearer-only issuer, resolved at its first token: its JWKS URL (configured, or from discovery), then a cached key set like a provider's. */
import { IdpUnavailableError } from '../errors.ts';
import { isLoopbackHost } from '../loopback-host.ts';
import { isRecord } from '../is-record.ts';
import type { IdpCallGuard } from './idp-call-guard.ts';
import { classifyIdpFailure } from './oidc-errors.ts';
import {
  createProviderKeys,
  type ProviderKeyGetter,
  type ProviderKeysOptions,
} from './provider-keys.ts';

export interface IssuerKeysOptions extends Omit<ProviderKeysOptions, 'guard'> {
  /** The guard of this issuer's calls, made at its first token (breakers cost memory). */
  readonly guard: () => IdpCallGuard;
  /** Least time between two discovery attempts after one failed, ms. */
  readonly retryIntervalMs: number;
}

/** True for an https URL, or http on loopback: where keys may come from. */
function isKeySource(url: URL | null): url is URL {
  if (url === null) return false;
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
}

/**
 * The key getter of one bearer issuer. Nothing is fetched and nothing is built until a token
 * that names this issuer arrives; then the JWKS URL is `jwksUri` or the discovery document's
 * `jwks_uri` (whose `issuer` must be `issuer` exactly), fetched once (concurrent tokens share
 * the fetch) and, after a failure, not again for `retryIntervalMs`, so a flood of tokens for an
 * issuer that is down costs one fetch per interval. From then on the set behaves as a
 * provider's ({@link createProviderKeys}).
 */
export function createIssuerKeys(
  issuer: string,
  jwksUri: string | undefined,
  options: IssuerKeysOptions,
): ProviderKeyGetter {
  let keys: ProviderKeyGetter | undefined;
  let pending: Promise<ProviderKeyGetter> | undefined;
  let failure: { readonly at: number; readonly error: unknown } | undefined;
  let guard: IdpCallGuard | undefined;

  const discoverJwksUri = async (run: IdpCallGuard): Promise<string> =>
    run('discovery', async () => {
      try {
        const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
        const response = await options.fetch(url, {
          method: 'GET',
          headers: { accept: 'application/json' },
          redirect: 'manual',
        });
        const text = response.status === 200 ? await response.text() : '';
        if (response.status !== 200) await response.body?.cancel();
        let document: unknown;
        try {
          document = JSON.parse(text);
        } catch {
          document = undefined;
        }
        if (!isRecord(document) || document['issuer'] !== issuer) {
          throw new IdpUnavailableError('discovery', 'invalid_response', {
            detail: 'discovery document missing or for another issuer',
          });
        }
        const found = document['jwks_uri'];
        if (typeof found !== 'string' || !isKeySource(URL.parse(found))) {
          throw new IdpUnavailableError('discovery', 'invalid_response', { detail: 'no jwks_uri' });
        }
        return found;
      } catch (err) {
        throw classifyIdpFailure(err, 'discovery');
      }
    });

  const resolve = (): Promise<ProviderKeyGetter> => {
    if (keys !== undefined) return Promise.resolve(keys);
    if (pending !== undefined) return pending;
    if (failure !== undefined && options.now() - failure.at < options.retryIntervalMs) {
      return Promise.reject(classifyIdpFailure(failure.error, 'discovery'));
    }
    guard ??= options.guard();
    const run = guard;
    const current = (async () => {
      const uri = jwksUri ?? (await discoverJwksUri(run));
      return createProviderKeys(new URL(uri), { ...options, guard: run });
    })().then(
      (built) => {
        keys = built;
        failure = undefined;
        return built;
      },
      (err: unknown) => {
        failure = { at: options.now(), error: err };
        throw err;
      },
    );
    pending = current;
    const clear = () => {
      if (pending === current) pending = undefined;
    };
    current.then(clear, clear);
    return current;
  };

  const getKey = async (...args: Parameters<ProviderKeyGetter>) => (await resolve())(...args);
  return Object.assign(getKey, {
    refetchAfterFailure: (error: unknown) =>
      keys?.refetchAfterFailure?.(error) ?? Promise.resolve(false),
  });
}
