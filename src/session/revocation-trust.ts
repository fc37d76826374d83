/** What was found not revoked (a session, a bearer token's `jti`), trusted for a while without asking the store again. */
import { StampedLru } from '../stamped-lru.ts';

/** Options of {@link RevocationTrust}. */
export interface RevocationTrustOptions {
  /** ms since the epoch. */
  readonly now: () => number;
  /**
   * How long an answer "not revoked" is trusted, ms: briefly over a store other replicas write
   * to; `Infinity` over one only this process writes to, where every revocation goes through
   * {@link RevocationTrust.revoking}; 0 trusts nothing.
   */
  readonly recheckAfterMs: number;
  /** Most answers kept; the least recently used goes first. Default 100,000. */
  readonly maxEntries?: number;
}

/**
 * Answers "not revoked" for one kind of record of one app. One per kind and app for the whole
 * process, not per configuration: a revocation taken by the runtime a reload replaced still
 * reaches the answers its successor trusts.
 */
export class RevocationTrust {
  readonly #now: () => number;
  readonly #recheckAfterMs: number;
  /**
   * Keys found not revoked. A revocation invalidates, so a look-up that was under way meanwhile
   * (it may have read the store before the write) does not fill it.
   */
  readonly #trusted: StampedLru<true>;

  constructor(options: RevocationTrustOptions) {
    this.#now = options.now;
    this.#recheckAfterMs = options.recheckAfterMs;
    this.#trusted = new StampedLru({
      maxEntries: options.recheckAfterMs > 0 ? (options.maxEntries ?? 100_000) : 0,
      now: options.now,
    });
  }

  /** True while `key` is trusted as not revoked. */
  has(key: string): boolean {
    return this.#trusted.get(key) === true;
  }

  /** Taken before a look-up and handed to {@link trust} with its answer. */
  startLookUp(): LookUp {
    return { at: this.#now(), stamp: this.#trusted.stamp() };
  }

  /** Trusts `key` as not revoked, unless a revocation was recorded since `lookUp` began. */
  trust(key: string, lookUp: LookUp): void {
    this.#trusted.set(key, true, lookUp.at + this.#recheckAfterMs, lookUp.stamp);
  }

  /**
   * Runs `write`, the store write that revokes `key` (or records no key names, every session of
   * a `sid` or `sub`, when `undefined`). Its trust is forgotten before the write and again once
   * written: a look-up in between may have read the store before the write landed.
   */
  async revoking(key: string | undefined, write: () => Promise<void>): Promise<void> {
    this.#forget(key);
    try {
      await write();
    } finally {
      this.#forget(key);
    }
  }

  #forget(key: string | undefined): void {
    if (key === undefined) this.#trusted.invalidateAll();
    else this.#trusted.invalidate(key);
  }
}

/** When a look-up began, for {@link RevocationTrust.trust}. */
export interface LookUp {
  readonly at: number;
  readonly stamp: number;
}

/**
 * The trust of every app and kind in the process, made on first use and kept across reloads:
 * `local` when no other process writes to the store (`store.type: memory`).
 */
export class RevocationTrusts {
  readonly #byName = new Map<string, RevocationTrust>();
  readonly #now: () => number;
  readonly #local: boolean;

  constructor(now: () => number, local: boolean) {
    this.#now = now;
    this.#local = local;
  }

  /**
   * The trust of app `app`'s sessions: over a shared store, {@link sharedStoreRecheckMs}; over
   * a local one, until a logout here.
   */
  sessions(app: string): RevocationTrust {
    return this.#get(`sessions ${app}`, this.#local ? Infinity : sharedStoreRecheckMs);
  }

  /**
   * The trust of app `app`'s bearer token ids over a local store, until a revocation here;
   * `undefined` over a shared one, where nothing is trusted (a revocation is in effect on every
   * replica once acknowledged), so each Check reads the store and keeps no trust of its own.
   */
  bearerTokens(app: string): RevocationTrust | undefined {
    return this.#local ? this.#get(`bearer ${app}`, Infinity) : undefined;
  }

  #get(name: string, recheckAfterMs: number): RevocationTrust {
    let trust = this.#byName.get(name);
    if (trust === undefined) {
      trust = new RevocationTrust({ now: this.#now, recheckAfterMs });
      this.#byName.set(name, trust);
    }
    return trust;
  }
}

/**
 * How long a session found not revoked is trusted without asking a shared store again, in ms.
 * Keeps a hot session from costing three store reads per request while a logout on another
 * replica still takes effect well within the one second SPEC §11 allows.
 */
export const sharedStoreRecheckMs = 250;
