/** Why the request policy refuses a request outright: a 400 with a short reason safe to show the client. */

/**
 * The reasons, a bounded set (they end up in response bodies, never with request data in them).
 * An unreadable host is refused earlier, as a malformed request (`parse-request.ts`).
 */
export type PolicyRefusalReason = 'ambiguous path' | 'path too long' | 'invalid path encoding';

/** A request the policy will not decide on, because upstreams could read it in ways that differ. */
export interface PolicyRefusal {
  readonly kind: 'refused';
  readonly reason: PolicyRefusalReason;
}

function refusal(reason: PolicyRefusalReason): PolicyRefusal {
  return Object.freeze({ kind: 'refused', reason });
}

/** One shared, frozen value per reason: refusing allocates nothing. */
export const refusals: Readonly<Record<PolicyRefusalReason, PolicyRefusal>> = Object.freeze({
  'ambiguous path': refusal('ambiguous path'),
  'path too long': refusal('path too long'),
  'invalid path encoding': refusal('invalid path encoding'),
});

/** True for a refusal, whatever else `value` could be. */
export function isRefusal(value: unknown): value is PolicyRefusal {
  return (
    typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'refused'
  );
}
