/** One app's DPoP machinery (RFC 9449), built once from `bearer.dpop`: proof checks, nonces, replay marks. */
import type { AppConfig } from '../config/schema.ts';
import { sha256Base64url } from '../digest.ts';
import type { Keyspace } from '../store/keyspace.ts';
import type { Mark } from '../store/keyspaces.ts';
import { DpopNonces } from './dpop-nonce.ts';
import { DpopProofVerifier } from './dpop-proof.ts';

export interface DpopRuntime {
  /** `bearer.dpop.required`: plain `Bearer` is refused. */
  readonly required: boolean;
  readonly proofs: DpopProofVerifier;
  /** Present when `bearer.dpop.nonce.enabled`. */
  readonly nonces: DpopNonces | undefined;
  /** The `algs` parameter of the `WWW-Authenticate: DPoP` challenge. */
  readonly algs: string;
  /**
   * Records a proof as used on every replica; `false` when it was used before.
   * @throws AuthzError `STORE_UNAVAILABLE` when the store cannot record it (then nothing is
   *   accepted: a proof whose use is not recorded could be replayed on another replica).
   */
  markUsed(jkt: string, jti: string): Promise<boolean>;
}

export interface DpopDeps {
  /** Replay marks; must reach the shared store or fail (the `durable` keyspace). */
  readonly proofs: Keyspace<string, Mark>;
  readonly now: () => number;
}

/** Builds the DPoP runtime of `app`, or `undefined` when DPoP is off for it. */
export function buildDpopRuntime(
  app: Pick<AppConfig, 'name' | 'bearer' | 'session'>,
  deps: DpopDeps,
): DpopRuntime | undefined {
  const config = app.bearer.dpop;
  if (!config.enabled) return undefined;
  const { now, proofs } = deps;
  // A proof is accepted while its `iat` is within the window; its mark must outlive that.
  const markTtl = config.maxAge + 2 * config.clockSkew;
  return {
    required: config.required,
    proofs: new DpopProofVerifier(
      { algs: config.algs, maxAgeMs: config.maxAge, clockSkewMs: config.clockSkew },
      now,
    ),
    nonces: config.nonce.enabled
      ? new DpopNonces(app.session.secrets[0] ?? '', app.name, config.nonce.lifetime, now)
      : undefined,
    algs: config.algs.join(' '),
    // RFC 9449 §11.1: `jti` is unique per key; keyed by both, one client cannot spend another's.
    markUsed: (jkt, jti) =>
      proofs.setIfAbsent(sha256Base64url(`${jkt}.${jti}`), { at: now() }, markTtl),
  };
}
