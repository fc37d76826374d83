/** The one rule for whether something with a deadline is over. */

/**
 * Whether `deadline` has passed at `now` (both ms since the epoch): a deadline is already over
 * at the instant it names, so an entry stored "until t" is gone at t, and a token whose `exp` is
 * t no longer works at t (RFC 7519 §4.1.4: "on or after"). A `NaN` deadline never expires here;
 * callers validate deadlines where they are made.
 */
export function hasExpired(deadline: number, now: number): boolean {
  return now >= deadline;
}
