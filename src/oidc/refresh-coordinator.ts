/**
 * Refresh without storms (SPEC §5): exactly one token grant per refresh token, however many
 * requests and replicas want it at once.
 *
 * - In this process, callers for the same refresh token share one promise.
 * - Across replicas, a lease lock per refresh-token digest (owner token, renewed while the
 *   grant runs, released by its owner only) elects one leader; the others wait for the result
 *   it publishes instead of calling the provider.
 * - The result stays a short while, sealed with a key derived from the old refresh token, so a
 *   request still carrying the pre-rotation cookie gets the new tokens too, and the store never
 *   holds a usable token.
 * - `invalid_grant` is published as well, so the session ends once, not once per request.
 * - A caller waits at most `waitTimeout`; the grant it started runs on to completion and
 *   publishes its result, so a refresh token the provider rotated is never dropped, and the
 *   next request uses the result instead of spending the old refresh token again.
 * - Ahead of expiry ({@link RefreshCoordinator.refreshAhead}) no request waits: the grant runs
 *   in the background and the next request picks up the published result.
 *
 * What each fault does (docs/operations.md, "Refresh under faults", says it for operators):
 * - Slow provider: the grant has the long refresh-grant deadline (60 s), its lease renewed every
 *   `lockTtl / 3` meanwhile; callers get `unavailable` at their bound and the next request
 *   takes the published result. Slower than that deadline, a late rotation is lost.
 * - Store degraded (locks and results in each replica's memory, `deps.degraded()`): no refresh
 *   ahead starts, since the token still works. An expired token is refreshed, perhaps on
 *   several replicas at once; an `invalid_grant` obtained without a lock every replica saw
 *   (store degraded or within `storeRecovery` of it, or our lease lost) may be another
 *   replica's rotation, so it keeps the session (`unavailable`, never published as `ended`),
 *   and the provider is not asked again for that token until the store has settled. Results
 *   published while degraded are offered to the store until it takes them, and every attempt
 *   reads results first, so the loser gets the winner's tokens once the store is back. Results
 *   the store took before it went down are offered to it again too: it may come back empty.
 * - Lock holder killed: waiters answer `unavailable` at their own bound; whoever takes the lock
 *   once the lease lapses reads the published result before calling the provider. A grant
 *   the provider answered but the dead process never published is lost: the takeover gets
 *   `invalid_grant` (unless the provider allows reuse of the old refresh token for a while).
 * - Providers that revoke the whole grant on reuse of a rotated refresh token turn a loser's
 *   grant during a store outage into a revocation of the winner's tokens too: the session then
 *   ends at its next refresh. Nothing on our side can prevent that without a shared lock.
 * An `invalid_grant` under a lock held in a healthy, settled store ends the session, once.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { AuthzError } from '../errors.ts';
import { openDerived, sealDerived } from '../session/compact-jwe.ts';
import { parseTokens, plainTokens, type Session, type SessionTokens } from '../session/session.ts';
import { isRecord } from '../is-record.ts';
import type { AppConfig } from '../config/schema.ts';
import type { Keyspace } from '../store/keyspace.ts';
import type { CallBound } from '../store/store-backend.ts';
import { sha256Base64url } from '../digest.ts';
import type { Logger } from '../observability/logger.ts';
import type { OidcClient } from './oidc-client.ts';

export type RefreshOutcome =
  | {
      readonly kind: 'refreshed';
      readonly tokens: SessionTokens;
      readonly claims?: Readonly<Record<string, unknown>>;
    }
  /** The provider refused the grant (or there is nothing to refresh with): the session is over. */
  | { readonly kind: 'ended' }
  /** Not refreshed now (provider down, gates closed, waited too long); the session stays. */
  | {
      readonly kind: 'unavailable';
      readonly retryAfterSeconds: number;
      /** Why, for the log line: what the refresh is waiting for. */
      readonly cause: UnavailableCause;
    }
  /**
   * Not refreshed, on purpose: the store is down, so a grant could spend a refresh token another
   * replica is spending too; the session is served on its current tokens (within
   * `refresh.outageGrace` of their expiry) until the store is back.
   */
  | { readonly kind: 'deferred' };

export interface RefreshMetrics {
  /**
   * A grant at the provider finished: `ok`, `invalid_grant` (the provider refused it),
   * `unavailable`, or `id_token_invalid` (the provider granted, but the new ID token failed
   * verification: not the provider's refusal, so never counted as `invalid_grant`).
   * `invalid_grant_unconfirmed`: refused while the lock was not shared (store degraded, or the
   * lease lost), so another replica may just have rotated the token: the session is kept.
   */
  grant(
    outcome:
      'ok' | 'invalid_grant' | 'invalid_grant_unconfirmed' | 'unavailable' | 'id_token_invalid',
  ): void;
  /** A caller was served without a grant of its own: by this process, a replica, or late. */
  follower(source: 'process' | 'replica' | 'late'): void;
  /** A caller found another replica's lock and waited for it. */
  lockWait(): void;
  /**
   * A refresh was not attempted because a gate was closed: `budget` (attempts), `concurrency`,
   * or `store` (the store is degraded, so the refresh waits for it).
   */
  gated(gate: 'budget' | 'concurrency' | 'store'): void;
}

/** The app's `refresh` settings the coordinator reads (times in ms), and the app's name. */
export type RefreshCoordinatorOptions = Pick<
  AppConfig['refresh'],
  'lockTtl' | 'waitTimeout' | 'maxAttempts' | 'cooldown' | 'resultTtl'
> & {
  readonly appName: string;
  /**
   * ms after the store was last seen degraded during which an `invalid_grant` is not trusted and
   * no refresh ahead starts: the time every replica needs to see the store back and write the
   * results it published while it was down (the store breaker's reset timeout, and a margin).
   */
  readonly storeRecovery: number;
  /**
   * `refresh.outageGrace`, ms: how long past its access token's expiry a session is served on
   * its current tokens while the store is down, rather than refreshed without a shared lock.
   */
  readonly outageGrace: number;
};

export interface RefreshCoordinatorDeps {
  readonly oidc: OidcClient;
  readonly locks: Keyspace<string, string>;
  readonly results: Keyspace<string, string>;
  readonly metrics: RefreshMetrics;
  /** Concurrent grants of the whole process, shared by every app. */
  readonly grants: GrantLimiter;
  readonly now: () => number;
  /** Where a refreshed ID token that fails verification is reported. */
  readonly logger?: Logger;
  /**
   * True while `locks` and `results` live in this process's memory because the store is down
   * (`SharedStore.degraded`): a lock taken now is not seen by other replicas. Default never.
   */
  readonly degraded?: () => boolean;
  /**
   * Milliseconds since the store was last degraded (`SharedStore.msSinceDegraded`): a
   * degradation too short to be seen by {@link degraded} (one call timed out and went to memory,
   * perhaps a lock, the next answered) still unsettles the store for `storeRecovery`. Default:
   * only what {@link degraded} shows.
   */
  readonly msSinceDegraded?: () => number;
}

/** The per-process cap on concurrent refresh grants (SPEC §5 gates). */
export class GrantLimiter {
  readonly #max: number;
  #running = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /** Takes a slot, or returns false when every slot is in use. */
  tryAcquire(): boolean {
    if (this.#running >= this.#max) return false;
    this.#running++;
    return true;
  }

  release(): void {
    this.#running--;
  }
}

/** What a published result record holds, sealed. */
export type PublishedResult = Exclude<
  RefreshOutcome,
  { readonly kind: 'unavailable' } | { readonly kind: 'deferred' }
>;

/** How often results published while the store was degraded are offered to it again, ms. */
const UNSHARED_RETRY_MS = 250;
/** Most refresh tokens tracked per map (failures, unconfirmed refusals, unshared results). */
const MAX_TRACKED = 10_000;

/** What a refresh answered `unavailable` is waiting for, in words for its log line. */
export type UnavailableCause = string;

export class RefreshCoordinator {
  readonly #options: RefreshCoordinatorOptions;
  readonly #deps: RefreshCoordinatorDeps;
  readonly #inFlight = new Map<string, Promise<RefreshOutcome>>();
  /** Failed attempts per refresh-token digest: count and when the window began. */
  readonly #failures = new Map<string, { count: number; since: number }>();
  /**
   * Refresh tokens whose last grant got an `invalid_grant` that could not be trusted (the lock
   * was not shared): the provider is not asked again for them until the store has settled.
   */
  readonly #unconfirmed = new Set<string>();
  /**
   * What a running refresh waits for, when not the store: another replica's grant (its lock) or
   * its own grant at the provider. Read when a caller's wait runs out, to answer it.
   */
  readonly #waitingOn = new Map<string, 'replica' | 'provider'>();
  /** Results published while the store was degraded: written to it again once it is back. */
  readonly #unshared = new Map<string, { sealed: string; expiresAt: number }>();
  /**
   * Results the store took, kept until they expire there: a store that goes down afterwards may
   * come back without them (a Redis restarted empty). A refresh ahead answered its own request
   * with the old tokens, so until a later request read the result, the old refresh token is all
   * the browser holds, and the provider has rotated it. Offered to the store again once this
   * process sees it degraded, as the unshared ones are.
   */
  readonly #shared = new Map<string, { sealed: string; expiresAt: number; at: number }>();
  #unsharedTimer: NodeJS.Timeout | undefined;
  #sharing = false;
  /** When this process last saw the store degraded. */
  #degradedSeenAt = -Infinity;

  constructor(options: RefreshCoordinatorOptions, deps: RefreshCoordinatorDeps) {
    this.#options = options;
    this.#deps = deps;
  }

  /** True when the access token has less than `skew` ms left. */
  static isDue(session: Session, now: number, skew: number): boolean {
    return session.tokens.expiresAt - now <= skew;
  }

  /**
   * Refreshes the session's tokens, or joins the refresh already running for them. Waits at most
   * `waitTimeout`, and at most `waitMs` (what the request has left of its budget); then
   * `unavailable`. The refresh itself runs on and publishes its result. With `bound` (the
   * request's store calls), a request whose store call already ran out of time does not wait:
   * the refresh needs the store too, and the answer is the same as at the end of a wait.
   */
  refresh(session: Session, waitMs = Infinity, bound?: CallBound): Promise<RefreshOutcome> {
    const refreshToken = session.tokens.refreshToken;
    if (refreshToken === undefined) return Promise.resolve({ kind: 'ended' });
    const wait = bound?.storeTimedOut === true ? 0 : Math.min(waitMs, this.#options.waitTimeout);
    // The wait ends `wait` from now, however long starting the refresh takes: a caller's budget
    // runs from when it asked, and its own deadline comes right after.
    const until = performance.now() + wait;
    const id = sha256Base64url(refreshToken);
    if (!this.#inFlight.has(id) && this.#deferrable(session)) {
      return this.#bounded(this.#deferred(id, refreshToken, bound), id, session, until);
    }
    return this.#bounded(this.#start(session, refreshToken), id, session, until);
  }

  /**
   * Whether a refresh of this session waits for the store: the store is down (or just back),
   * so no lock is shared and two replicas could spend the same rotating refresh token — which
   * some providers answer by revoking the whole grant — and its tokens expired less than
   * `outageGrace` ago.
   */
  #deferrable(session: Session): boolean {
    return !this.#storeSettled() && this.#withinGrace(session);
  }

  /**
   * Whether this process saw the store degraded less than `outageGrace` ago: here, or by any
   * other call (server sessions fail at their load while the store is down, before a refresh is
   * ever asked for).
   */
  #recentlyDegraded(): boolean {
    const since = Math.min(
      this.#deps.now() - this.#degradedSeenAt,
      this.#deps.msSinceDegraded?.() ?? Number.POSITIVE_INFINITY,
    );
    return since < this.#options.outageGrace;
  }

  /**
   * For a wait that ran out on the store or another replica: `deferred` (served on its current
   * tokens) while they expired less than `outageGrace` ago, else `unavailable` for `cause`.
   */
  #onTokens(session: Session, cause: UnavailableCause): RefreshOutcome {
    return this.#withinGrace(session) ? { kind: 'deferred' } : this.#waitForStore(session, cause);
  }

  #withinGrace(session: Session): boolean {
    return this.#deps.now() < session.tokens.expiresAt + this.#options.outageGrace;
  }

  /**
   * A refresh that cannot go on until the store is back: `deferred` (served on its tokens) while
   * they expired less than `outageGrace` ago, else `unavailable`.
   */
  #waitForStore(session: Session, cause: UnavailableCause): RefreshOutcome {
    if (this.#deferrable(session)) return { kind: 'deferred' };
    return unavailable(
      1_000,
      this.#withinGrace(session)
        ? cause
        : `${cause}, and the tokens expired beyond refresh.outageGrace`,
    );
  }

  /** While the store is down: a result already published for the token, else `deferred`. */
  async #deferred(
    id: string,
    refreshToken: string,
    bound: CallBound | undefined,
  ): Promise<RefreshOutcome> {
    const published = await this.#readResult(id, refreshToken, bound);
    if (published !== undefined) {
      this.#deps.metrics.follower('late');
      return published;
    }
    this.#deps.metrics.gated('store');
    return { kind: 'deferred' };
  }

  /**
   * For a session due for refresh whose access token still works: the result of a refresh that
   * already finished for its refresh token (here or on a replica), if there is one; otherwise
   * starts the refresh in the background (coalesced as {@link refresh}) and returns `undefined`
   * at once, so the request is served with the current tokens. While the store is degraded (and
   * for `storeRecovery` after) no refresh starts here: the token still works, and a lock taken
   * now would not keep other replicas from spending the same refresh token. `bound`: the store
   * calls of the request (its read of a published result waits no longer than they may).
   */
  async refreshAhead(session: Session, bound?: CallBound): Promise<PublishedResult | undefined> {
    const refreshToken = session.tokens.refreshToken;
    if (refreshToken === undefined) return { kind: 'ended' };
    const id = sha256Base64url(refreshToken);
    // Running in this process: its result is not published yet.
    if (this.#inFlight.has(id)) return undefined;
    const published = await this.#readResult(id, refreshToken, bound);
    if (published !== undefined) {
      this.#deps.metrics.follower('late');
      return published;
    }
    if (!this.#storeSettled()) {
      this.#deps.metrics.gated('store');
      return undefined;
    }
    if (!this.#inFlight.has(id)) {
      this.#start(session, refreshToken).catch(() => undefined);
    }
    return undefined;
  }

  /** The refresh of this refresh token: the running one, or a new one. Never rejects. */
  #start(session: Session, refreshToken: string): Promise<RefreshOutcome> {
    const id = sha256Base64url(refreshToken);
    const running = this.#inFlight.get(id);
    if (running !== undefined) {
      this.#deps.metrics.follower('process');
      return running;
    }
    const promise = this.#coordinate(session, refreshToken, id)
      .catch((error: unknown) => {
        // Nobody may be waiting any more (a background refresh, a timed-out caller): one line.
        this.#deps.logger?.error(
          { app: this.#options.appName, error: error instanceof Error ? error.message : 'unknown' },
          'refresh failed',
        );
        return unavailable(1_000, 'the refresh failed');
      })
      .finally(() => {
        // Cleared only by the promise that filled the slot.
        if (this.#inFlight.get(id) === promise) {
          this.#inFlight.delete(id);
          this.#waitingOn.delete(id);
        }
      });
    this.#inFlight.set(id, promise);
    return promise;
  }

  /**
   * `running`, or once the caller has waited for it until `until` (on `performance.now()`'s
   * clock): `deferred` while what it waits on is the store (found down meanwhile, or not
   * answering before the grant: a store that has just hung is not known down yet) and the tokens
   * expired less than `outageGrace` ago, else `unavailable`.
   */
  #bounded(
    running: Promise<RefreshOutcome>,
    id: string,
    session: Session,
    until: number,
  ): Promise<RefreshOutcome> {
    const waitMs = Math.max(0, until - performance.now());
    let timer: NodeJS.Timeout | undefined;
    let halfway: NodeJS.Timeout | undefined;
    const timedOut = new Promise<RefreshOutcome>((resolve) => {
      // Halfway through, a wait whose answer at the end would be `deferred` (held by the store,
      // behind another replica's lock, or by a grant right after an outage, the tokens within
      // refresh.outageGrace) is answered then: waiting longer only holds the request, and a
      // herd of them answered together at the budget's edge reaches Envoy late.
      halfway = setTimeout(() => {
        const answer = this.#lateAnswer(id, session);
        if (answer.kind === 'deferred') resolve(answer);
      }, waitMs / 2);
      timer = setTimeout(() => {
        resolve(this.#lateAnswer(id, session));
      }, waitMs);
    });
    return Promise.race([running, timedOut]).finally(() => {
      clearTimeout(timer);
      clearTimeout(halfway);
    });
  }

  /**
   * The answer to a caller whose wait ran out. A refresh held by the store (a store that has just
   * hung is not known down yet) is deferred while its tokens expired less than `outageGrace`
   * ago; so is one waiting on another replica's grant, and one held by its own grant right after
   * an outage, when every session whose tokens expired during it is refreshed at once. Otherwise
   * the provider is late: `unavailable`.
   */
  #lateAnswer(id: string, session: Session): RefreshOutcome {
    const waitingOn = this.#waitingOn.get(id);
    if (waitingOn === undefined) return this.#onTokens(session, 'the store did not answer in time');
    // Another replica's grant may never end (a replica killed mid-grant holds the lock until its
    // lease lapses): like the store, it is ours, and the session is served meanwhile.
    if ((waitingOn === 'replica' || this.#recentlyDegraded()) && this.#withinGrace(session)) {
      return { kind: 'deferred' };
    }
    return unavailable(
      1_000,
      waitingOn === 'provider'
        ? 'the provider did not answer the refresh in time'
        : "another replica's refresh of these tokens did not finish in time",
    );
  }

  /** `grant`, marking its refresh token as waiting on the provider until it settles. */
  #atProvider<T>(id: string, grant: Promise<T>): Promise<T> {
    this.#waitingOn.set(id, 'provider');
    return grant.finally(() => this.#waitingOn.delete(id));
  }

  async #coordinate(session: Session, refreshToken: string, id: string): Promise<RefreshOutcome> {
    const early = await this.#readResult(id, refreshToken);
    if (early !== undefined) {
      this.#deps.metrics.follower('late');
      return early;
    }
    if (this.#deferrable(session)) {
      // That read found the store down (a hung store answers nothing): no lock is shared now.
      this.#deps.metrics.gated('store');
      return { kind: 'deferred' };
    }

    const owner = randomBytes(16).toString('base64url');
    const deadline = this.#deps.now() + this.#options.waitTimeout;
    let waited = false;
    while (!(await this.#deps.locks.setIfAbsent(id, owner, this.#options.lockTtl))) {
      if (!waited) {
        waited = true;
        this.#waitingOn.set(id, 'replica');
        this.#deps.metrics.lockWait();
      }
      await delay(25);
      const published = await this.#readResult(id, refreshToken);
      if (published !== undefined) {
        this.#deps.metrics.follower('replica');
        return published;
      }
      if (this.#deps.now() > deadline) {
        // As for a caller whose own wait ran out on that grant (see #lateAnswer): a replica
        // killed mid-grant holds the lock until its lease lapses, and every request that joined
        // this refresh is served on its tokens meanwhile, within outageGrace.
        this.#deps.logger?.warn(
          { app: this.#options.appName },
          "refresh gave up on another replica's lock after refresh.waitTimeout: its sessions are served on their tokens until the lease lapses",
        );
        return this.#onTokens(session, "another replica's refresh did not finish in time");
      }
    }
    this.#waitingOn.delete(id);

    try {
      // Another replica may have finished between our first read and taking the lock.
      const published = await this.#readResult(id, refreshToken);
      if (published !== undefined) {
        this.#deps.metrics.follower('replica');
        return published;
      }
      // We waited on another replica's lock and got ours only because the store went down: that
      // replica is likely still granting. Its result reaches us once the store is back.
      if (waited && !this.#storeSettled()) {
        this.#deps.metrics.gated('store');
        return this.#waitForStore(
          session,
          "another replica's refresh lock was lost with the store",
        );
      }
      return await this.#lead(session, refreshToken, id, owner);
    } finally {
      await this.#deps.locks.deleteIfEquals(id, owner).catch(() => undefined);
    }
  }

  /** The leader's grant: gates first, then the provider, then the published result. */
  async #lead(
    session: Session,
    refreshToken: string,
    id: string,
    owner: string,
  ): Promise<RefreshOutcome> {
    const cooling = this.#coolingFor(id);
    if (cooling > 0) {
      this.#deps.metrics.gated('budget');
      return unavailable(cooling, 'recent grants for this session failed');
    }
    if (this.#unconfirmed.has(id)) {
      // Our last grant was refused while the lock was not shared: another replica may have
      // rotated this token, and its result reaches the store once the store is back (read
      // before this). Until the store has settled, asking the provider again cannot help.
      if (!this.#storeSettled()) {
        this.#deps.metrics.gated('store');
        return this.#waitForStore(session, 'an untrusted refusal waits for the store');
      }
      this.#unconfirmed.delete(id);
    }
    if (this.#deferrable(session)) {
      // The store went down while this refresh was starting: wait for it, as refresh() does.
      this.#deps.metrics.gated('store');
      return { kind: 'deferred' };
    }
    if (!this.#deps.grants.tryAcquire()) {
      this.#deps.metrics.gated('concurrency');
      return unavailable(1_000, 'too many grants at the provider at once');
    }
    // Taken before the grant: a lock taken while the store was degraded was never shared, even
    // when the store answered again since (the lock itself may have gone to memory).
    const sharedLock = this.#storeSettled();
    const renew = setInterval(
      () => {
        this.#deps.locks.expireIfEquals(id, owner, this.#options.lockTtl).catch(() => undefined);
      },
      Math.max(50, Math.floor(this.#options.lockTtl / 3)),
    );
    // A grant running after its callers gave up must not hold the process open at shutdown.
    renew.unref();
    try {
      const result = await this.#atProvider(
        id,
        this.#deps.oidc.refresh(refreshToken, {
          expectedSubject: session.sub,
          currentClaims: session.claims,
        }),
      );
      this.#deps.metrics.grant('ok');
      this.#failures.delete(id);
      const tokens = plainTokens({
        accessToken: result.tokens.accessToken,
        refreshToken: result.tokens.refreshToken ?? refreshToken,
        idToken: result.tokens.idToken ?? session.tokens.idToken,
        // Without expires_in or a new ID token, keep the old deadline rather than invent one.
        expiresAt: result.tokens.expiresAt ?? session.tokens.expiresAt,
      });
      const outcome: PublishedResult =
        result.claims === undefined
          ? { kind: 'refreshed', tokens }
          : { kind: 'refreshed', tokens, claims: result.claims };
      await this.#publish(id, refreshToken, outcome);
      return outcome;
    } catch (error) {
      if (!(error instanceof AuthzError)) throw error;
      if (error.code === 'IDP_UNAVAILABLE') {
        this.#deps.metrics.grant('unavailable');
        this.#recordFailure(id);
        return {
          kind: 'unavailable',
          retryAfterSeconds: error.retryAfterSeconds,
          cause: 'the provider is unavailable',
        };
      }
      if (error.code === 'TOKEN_INVALID') {
        // The grant ran and spent the refresh token; only our check of its ID token failed
        // (after one JWKS refetch), so this is not the provider's invalid_grant.
        this.#deps.metrics.grant('id_token_invalid');
        this.#deps.logger?.warn(
          { app: this.#options.appName, code: error.code, error: error.message },
          'refreshed ID token failed verification: the session ends',
        );
      } else {
        // A result published meanwhile (by a replica that took over a lapsed lease, or that
        // rotated the token while the store was down) wins over our refusal.
        const published = await this.#readResult(id, refreshToken);
        if (published?.kind === 'refreshed') {
          this.#deps.metrics.follower('replica');
          return published;
        }
        if (!sharedLock || !(await this.#stillHeld(id, owner))) {
          // Without a lock every replica saw, another one may just have spent this refresh
          // token: keep the session and wait for its result (or a trusted answer).
          this.#deps.metrics.grant('invalid_grant_unconfirmed');
          this.#recordFailure(id);
          this.#track(this.#unconfirmed, id);
          this.#deps.logger?.warn(
            { app: this.#options.appName, code: error.code },
            'refresh refused while the refresh lock was not shared: the session is kept until the store is back',
          );
          return this.#waitForStore(session, 'refused while the refresh lock was not shared');
        }
        // invalid_grant and every other refusal, under a lock every replica saw: the refresh
        // token is dead.
        this.#deps.metrics.grant('invalid_grant');
      }
      await this.#publish(id, refreshToken, { kind: 'ended' });
      return { kind: 'ended' };
    } finally {
      clearInterval(renew);
      this.#deps.grants.release();
    }
  }

  /**
   * True when the lock and results are shared with every replica, and have been for
   * `storeRecovery`: long enough for the results others published while the store was down to
   * have reached it. Records when the store was last seen degraded, and offers the results it
   * took before then to it again (see {@link #shared}).
   */
  #storeSettled(): boolean {
    const now = this.#deps.now();
    if (this.#deps.degraded?.() === true) {
      this.#degradedSeenAt = now;
      this.#reshare(0);
      return false;
    }
    // A degradation too short to have been seen here (one timed-out call) counts as well.
    const since = this.#deps.msSinceDegraded?.() ?? Number.POSITIVE_INFINITY;
    if (since < this.#options.storeRecovery) {
      this.#reshare(since);
      return false;
    }
    return now - this.#degradedSeenAt >= this.#options.storeRecovery;
  }

  /** True while the store is settled and still holds our lease (it never lapsed). */
  async #stillHeld(id: string, owner: string): Promise<boolean> {
    const held = await this.#deps.locks
      .expireIfEquals(id, owner, this.#options.lockTtl)
      .catch(() => false);
    return held && this.#storeSettled();
  }

  /** Adds `id`, forgetting the oldest entry when too many sessions are tracked at once. */
  #track(set: Set<string>, id: string): void {
    if (set.size >= MAX_TRACKED && !set.has(id)) {
      const oldest = set.values().next().value;
      if (oldest !== undefined) set.delete(oldest);
    }
    set.add(id);
  }

  /**
   * ms until this refresh token may be tried again (0: now). Checked before an attempt is
   * recorded, so a closed gate never counts as an attempt.
   */
  #coolingFor(id: string): number {
    const entry = this.#failures.get(id);
    if (entry === undefined) return 0;
    const left = entry.since + this.#options.cooldown - this.#deps.now();
    if (left <= 0) {
      this.#failures.delete(id);
      return 0;
    }
    return entry.count < this.#options.maxAttempts ? 0 : left;
  }

  #recordFailure(id: string): void {
    const entry = this.#failures.get(id);
    if (entry === undefined) {
      // Bounded: forget the oldest when too many sessions are failing at once.
      if (this.#failures.size >= MAX_TRACKED) {
        const oldest = this.#failures.keys().next().value;
        if (oldest !== undefined) this.#failures.delete(oldest);
      }
      this.#failures.set(id, { count: 1, since: this.#deps.now() });
    } else {
      entry.count++;
    }
  }

  async #publish(id: string, refreshToken: string, result: PublishedResult): Promise<void> {
    const sealed = sealDerived(refreshToken, ...resultKeyParts, result);
    const degraded = () => this.#deps.degraded?.() === true;
    const before = degraded();
    await this.#deps.results.set(id, sealed).catch(() => undefined);
    if (before || degraded()) this.#keepUnshared(id, sealed);
    else this.#keepShared(id, sealed);
  }

  /** Remembers a result the store took (see {@link #shared}), oldest first. */
  #keepShared(
    id: string,
    sealed: string,
    expiresAt = this.#deps.now() + this.#options.resultTtl,
  ): void {
    const now = this.#deps.now();
    this.#shared.delete(id);
    // Expired ones (at the front) go, and the oldest when too many refreshes ran meanwhile.
    for (const [key, entry] of this.#shared) {
      if (entry.expiresAt > now && this.#shared.size < MAX_TRACKED) break;
      this.#shared.delete(key);
    }
    this.#shared.set(id, { sealed, expiresAt, at: now });
  }

  /**
   * The store was degraded `since` ms ago (0: it is now): the results it took before then may be
   * gone with it, so they are offered to it again until it takes them.
   */
  #reshare(since: number): void {
    const now = this.#deps.now();
    for (const [id, entry] of this.#shared) {
      if (entry.at > now - since) break;
      this.#shared.delete(id);
      if (entry.expiresAt > now) this.#keepUnshared(id, entry.sealed, entry.expiresAt);
    }
  }

  /**
   * Remembers a result that went to this process's memory only, and offers it to the store
   * every {@link UNSHARED_RETRY_MS} until the store takes it (or it expires): a replica whose
   * own grant was refused meanwhile finds it there, instead of ending the session.
   */
  #keepUnshared(
    id: string,
    sealed: string,
    expiresAt = this.#deps.now() + this.#options.resultTtl,
  ): void {
    if (this.#unshared.size >= MAX_TRACKED && !this.#unshared.has(id)) {
      const oldest = this.#unshared.keys().next().value;
      if (oldest !== undefined) this.#unshared.delete(oldest);
    }
    this.#unshared.set(id, { sealed, expiresAt });
    if (this.#unsharedTimer === undefined) {
      this.#unsharedTimer = setInterval(() => void this.#share(), UNSHARED_RETRY_MS);
      // Results nobody may still need must not hold the process open at shutdown.
      this.#unsharedTimer.unref();
    }
  }

  /**
   * Writes the unshared results again. The write goes to the store when it answers (and
   * retires memory's copy), else to memory again; it is also what lets the store breaker see
   * the store back when nothing else calls it. Stops at the first write the store did not take.
   */
  async #share(): Promise<void> {
    if (this.#sharing) return;
    this.#sharing = true;
    try {
      for (const [id, entry] of this.#unshared) {
        const left = entry.expiresAt - this.#deps.now();
        if (left > 0) {
          await this.#deps.results.set(id, entry.sealed, left).catch(() => undefined);
          if (this.#deps.degraded?.() === true) break;
          // Taken now, it may yet be lost with the store again.
          this.#keepShared(id, entry.sealed, entry.expiresAt);
        }
        this.#unshared.delete(id);
      }
    } finally {
      this.#sharing = false;
      if (this.#unshared.size === 0 && this.#unsharedTimer !== undefined) {
        clearInterval(this.#unsharedTimer);
        this.#unsharedTimer = undefined;
      }
    }
  }

  async #readResult(
    id: string,
    refreshToken: string,
    bound?: CallBound,
  ): Promise<PublishedResult | undefined> {
    const sealed = await this.#deps.results.get(id, bound).catch(() => undefined);
    return sealed === undefined
      ? undefined
      : parsePublished(openDerived(refreshToken, ...resultKeyParts, sealed));
  }
}

function unavailable(retryAfterMs: number, cause: UnavailableCause): RefreshOutcome {
  return {
    kind: 'unavailable',
    retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)),
    cause,
  };
}

/**
 * HKDF salt and info of the key that seals a result, derived from the old refresh token, which
 * only its holders know.
 */
const resultKeyParts = ['eoa refresh result', 'v1'] as const;

function parsePublished(data: unknown): PublishedResult | undefined {
  if (!isRecord(data)) return undefined;
  if (data['kind'] === 'ended') return { kind: 'ended' };
  const tokens = data['kind'] === 'refreshed' ? parseTokens(data['tokens']) : undefined;
  if (tokens === undefined) return undefined;
  const { claims } = data;
  return isRecord(claims) ? { kind: 'refreshed', tokens, claims } : { kind: 'refreshed', tokens };
}
