/** How a user's `sub` appears in log lines: as sent, or as a keyed hash the same on every replica. */
import { createHmac, hkdfSync } from 'node:crypto';

/** `log.subject`. */
export type SubjectLogging = 'plain' | 'hash';

/** Turns a `sub` into what a log line shows of it. */
export type SubjectLabel = (sub: string) => string;

/** Domain separation: this key is used for nothing but log labels. */
const LABEL_INFO = 'envoy-oidc-authz log subject v1';

/**
 * `plain` returns the `sub` as is; `hash` an HMAC-SHA256 of it under a key derived (HKDF) from
 * `secret` (the app's first session secret), base64url, 16 characters: replicas sharing the
 * secret label a user alike, and the label cannot be reversed or recomputed without the secret.
 */
export function createSubjectLabel(mode: SubjectLogging, secret: string): SubjectLabel {
  if (mode === 'plain') return (sub) => sub;
  const key = Buffer.from(hkdfSync('sha256', secret, '', LABEL_INFO, 32));
  return (sub) => createHmac('sha256', key).update(sub, 'utf8').digest('base64url').slice(0, 16);
}
