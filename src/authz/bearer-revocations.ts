/** Revoked bearer token ids (`jti`), shared by every replica through the store (SPEC §8). */
import type { Keyspace } from '../store/keyspace.ts';
import type { RevokedToken } from '../store/keyspaces.ts';
import type { CallBound } from '../store/store-backend.ts';

/**
 * The revocation list of one app. Reads go to a keyspace that may fall back to process memory
 * while the store is down (so bearer traffic keeps flowing); writes go to one that must reach
 * the shared store or fail, so a revocation that was acknowledged is seen by every replica.
 */
export class BearerRevocations {
  readonly #reads: Keyspace<string, RevokedToken>;
  readonly #writes: Keyspace<string, RevokedToken>;

  constructor(
    reads: Keyspace<string, RevokedToken>,
    writes: Keyspace<string, RevokedToken> = reads,
  ) {
    this.#reads = reads;
    this.#writes = writes;
  }

  /**
   * Revokes the token with id `jti` on every replica until `expiresAt` (ms since the epoch, the
   * token's `exp`), after which it is refused as expired anyway.
   * @throws AuthzError `STORE_UNAVAILABLE` when the store cannot take the write.
   */
  revoke(jti: string, expiresAt: number): Promise<void> {
    return this.#writes.set(jti, { exp: expiresAt });
  }

  /** True when `jti` is on the list. One store read, within `bound` (the request's). */
  readonly isRevoked = async (jti: string, bound?: CallBound): Promise<boolean> =>
    (await this.#reads.get(jti, bound)) !== undefined;
}
