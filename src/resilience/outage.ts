/** Tells an outage of a dependency apart from a verdict it gave, so only outages trip a breaker. */
import { AuthzError, StoreUnavailableError } from '../errors.ts';

// Redis replies that mean "the server cannot serve right now" rather than "your command is wrong":
// a node loading its dataset, a replica that lost its master, a cluster without quorum, a server
// busy running a script; and a server that refuses our credentials (a rotated password, an ACL
// user changed or removed): no command of ours can succeed until the credentials are fixed, so for
// the breaker, `eoa_store_degraded` and readiness it is as down as an unreachable one.
const UNAVAILABLE_REPLIES =
  /^(LOADING|READONLY|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|NOAUTH|WRONGPASS|NOPERM)\b/;

/**
 * `true` when a Redis error reply (its message) says the server cannot serve right now (`LOADING`,
 * `READONLY`, `CLUSTERDOWN`, `MASTERDOWN`, `TRYAGAIN`, `BUSY`, `NOREPLICAS`), or refuses our
 * credentials (`NOAUTH`, `WRONGPASS`, `NOPERM`): an outage, not a verdict on the command. The one rule for both the Redis adapter and the breakers.
 */
export function isUnavailableReply(message: string): boolean {
  return UNAVAILABLE_REPLIES.test(message);
}

/**
 * `true` when `error` says the dependency is down (unreachable, timing out, failing server-side);
 * `false` when the dependency answered and refused, or when the error is a bug of ours.
 *
 * - catalogue errors: only `IDP_UNAVAILABLE` and `STORE_UNAVAILABLE` are outages; `IDP_ERROR`
 *   (`invalid_grant` and other OAuth errors), `TOKEN_INVALID` and the rest are verdicts;
 * - Redis error replies are verdicts (ioredis' `ReplyError`, or the store adapter's error with
 *   code `REDIS_REPLY`), except those {@link isUnavailableReply} says are an outage;
 * - `RangeError`, and `TypeError` without a cause, are argument mistakes on our side, not
 *   outages (Node's `fetch` reports network failures as a `TypeError` with a `cause`: outage);
 * - anything else (connection refused, command timeout, socket closed) is an outage.
 */
export function isOutage(error: unknown): boolean {
  if (error instanceof AuthzError) {
    return error.code === 'IDP_UNAVAILABLE' || error.code === 'STORE_UNAVAILABLE';
  }
  if (!(error instanceof Error)) return true;
  if (error.name === 'ReplyError') return isUnavailableReply(error.message);
  // The Redis adapter already tells replies from outages; its other codes are outages.
  if ((error as { code?: unknown }).code === 'REDIS_REPLY') return false;
  if (error instanceof RangeError) return false;
  if (error instanceof TypeError) return error.cause !== undefined;
  return true;
}

/**
 * `true` for a store call given up because its request ran out of time (a budget nearly spent
 * before the call), not because the store was slow: that request falls back, but breakers and
 * the store's degraded mode do not count it, or a busy moment would make a healthy store look
 * down.
 */
export function isRequestDeadline(error: unknown): boolean {
  return error instanceof StoreUnavailableError && error.reason === 'request_deadline';
}

/**
 * `true` for a store write refused or left unconfirmed because too few replicas hold it (the Redis
 * adapter's `REDIS_NOT_REPLICATED`, with `replicaAcks`). For that write it is an outage (503,
 * memory fallback), but the store answered and still serves reads: breakers do not count it, or
 * losing a replica would take every read down with the writes.
 */
export function isUnreplicated(error: unknown): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === 'REDIS_NOT_REPLICATED';
}
