/** The keys upstream assertions are signed with, across reloads: rotation keeps old public keys until their last token expires. */
import type { AppConfig } from '../config/schema.ts';
import {
  generateSigningKeys,
  readSigningKeys,
  type PublishedKey,
  type SigningKeys,
} from '../config/signing-keys.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../observability/logger.ts';

/** Clock difference between this server and an upstream that a retired key is kept for, ms. */
const RETIRED_KEY_SKEW_MS = 60_000;

type AssertionConfig = NonNullable<AppConfig['upstreamAssertion']>;

interface Current {
  readonly keys: SigningKeys;
  readonly ttl: number;
}

/** A JWK Set as served at `/.well-known/jwks.json`. */
export interface JwkSet {
  readonly keys: readonly PublishedKey['jwk'][];
}

/**
 * One per process, kept across reloads. Each app signs with its configured key, or with one
 * generated the first time the app asks and kept for the life of the process. When a reload
 * gives an app another key (or none any more), the key it signed with stays published until
 * every token it signed has expired: `ttl` plus a minute of clock skew.
 */
export class AssertionKeyring {
  readonly #now: Clock;
  readonly #logger: Logger;
  readonly #current = new Map<string, Current>();
  readonly #generated = new Map<string, SigningKeys>();
  /** Public keys no app signs with any more, until when they stay published (ms). */
  readonly #retired = new Map<string, { readonly key: PublishedKey; readonly until: number }>();

  constructor(now: Clock, logger: Logger) {
    this.#now = now;
    this.#logger = logger;
  }

  /**
   * The keys `app` signs with under `config` (validated at load, so a key that cannot be read
   * here is a loader bug). A different key than before retires the previous one.
   */
  keysFor(app: string, config: AssertionConfig): SigningKeys {
    const keys = this.#keysOf(app, config);
    const previous = this.#current.get(app);
    if (previous !== undefined && previous.keys.signing.kid !== keys.signing.kid) {
      this.#retire(previous);
      this.#logger.info(
        { app, kid: keys.signing.kid, retiredKid: previous.keys.signing.kid },
        'upstream assertion signing key rotated: the previous key stays published until its tokens expire',
      );
    }
    this.#current.set(app, { keys, ttl: config.ttl });
    this.#retired.delete(keys.signing.kid);
    return keys;
  }

  /** After a (re)build: apps not in `apps` sign no more, and their keys are retired. */
  keepOnly(apps: ReadonlySet<string>): void {
    for (const [app, current] of this.#current) {
      if (apps.has(app)) continue;
      this.#retire(current);
      this.#current.delete(app);
    }
  }

  /** Whether any key is published. */
  get empty(): boolean {
    return this.#current.size === 0 && this.#retired.size === 0;
  }

  /** Every key an upstream may meet in a valid assertion, each once. */
  jwks(): JwkSet {
    const now = this.#now();
    const byKid = new Map<string, PublishedKey['jwk']>();
    for (const { keys } of this.#current.values()) {
      byKid.set(keys.signing.kid, keys.signing.jwk);
      for (const extra of keys.alsoPublished) byKid.set(extra.kid, extra.jwk);
    }
    for (const [kid, { key, until }] of this.#retired) {
      if (until <= now) this.#retired.delete(kid);
      else if (!byKid.has(kid)) byKid.set(kid, key.jwk);
    }
    return { keys: [...byKid.values()] };
  }

  #keysOf(app: string, config: AssertionConfig): SigningKeys {
    if (config.signingKey !== undefined) {
      const keys = readSigningKeys(config.signingKey, config.alg);
      if (typeof keys === 'string') throw new Error(`upstreamAssertion.signingKey: ${keys}`);
      return keys;
    }
    const alg = config.alg ?? 'ES256';
    let keys = this.#generated.get(app);
    if (keys === undefined || keys.signing.alg !== alg) {
      keys = generateSigningKeys(alg);
      this.#generated.set(app, keys);
      this.#logger.warn(
        { app, kid: keys.signing.kid },
        'upstreamAssertion has no signingKey: a key was generated at start, which suits one replica only (other replicas sign with keys of their own that this one does not publish)',
      );
    }
    return keys;
  }

  #retire({ keys, ttl }: Current): void {
    const until = this.#now() + ttl + RETIRED_KEY_SKEW_MS;
    for (const key of [keys.signing, ...keys.alsoPublished]) {
      const kept = this.#retired.get(key.kid);
      if (kept === undefined || kept.until < until) this.#retired.set(key.kid, { key, until });
    }
  }
}
