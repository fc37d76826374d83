/** An app as the pipeline uses it: its config plus everything built from it once, at start. */
import { DEFAULT_UPSTREAM_HEADERS } from '../config/schema.ts';
import { PublicPaths, type PublicPathRule } from './public-paths.ts';

/** The part of an app's config the pipeline reads. */
export interface AppSettings {
  readonly name: string;
  readonly match: { readonly hosts: readonly string[]; readonly pathPrefix: string };
  readonly publicPaths: readonly PublicPathRule[];
  /** Header → template, defaults merged in (a default turned off is absent). */
  readonly upstreamHeaders: Readonly<Record<string, string>>;
  readonly passAccessToken: boolean;
  readonly passIdToken: boolean;
}

export interface AppRuntime {
  readonly name: string;
  readonly match: AppSettings['match'];
  readonly settings: AppSettings;
  readonly publicPaths: PublicPaths;
  /**
   * Every header this app sets upstream. Removed from each incoming request before anything
   * else, so a client can never forge one (SPEC §4.3).
   */
  readonly identityHeaders: readonly string[];
}

export function buildAppRuntime(settings: AppSettings): AppRuntime {
  // The default identity headers are scrubbed even when an app turns one off: an upstream
  // written for the defaults must never trust a forged copy.
  const identityHeaders = [
    ...Object.keys(DEFAULT_UPSTREAM_HEADERS),
    ...Object.keys(settings.upstreamHeaders),
  ].map((name) => name.toLowerCase());
  if (settings.passAccessToken) identityHeaders.push('authorization');
  if (settings.passIdToken) identityHeaders.push('x-id-token');
  return {
    name: settings.name,
    match: settings.match,
    settings,
    publicPaths: new PublicPaths(settings.publicPaths),
    identityHeaders: Object.freeze([...new Set(identityHeaders)]),
  };
}
