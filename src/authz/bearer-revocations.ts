/** Revoked bearer token ids (`jti`), shared by every replica through the store (SPEC §8). */
import type { Keyspace } from '../store/keyspace.ts';
import type { RevokedToken } from '../store/keyspaces.ts';
import type { CallBound } from '../store/store-backend.ts';
import type { RevocationTrust } from '../session/revocation-trust.ts';

/**
 * The revocation list of one app. Reads go to a keyspace that may fall back to process memory
 * while the store is down (so bearer traffic keeps flowing); writes go to one that must reach
 * the shared store or fail, so a revocation that was acknowledged is seen by every replica.
 */
export class BearerRevocations {
  readonly #reads: Keyspace<string, RevokedToken>;
  readonly #writes: Keyspace<string, RevokedToken>;
  /** Token ids found not revoked; trusts nothing unless the store is this process's alone. */
  readonly #trust: RevocationTrust | undefined;

  constructor(
    reads: Keyspace<string, RevokedToken>,
    writes: Keyspace<string, RevokedToken> = reads,
    trust?: RevocationTrust,
  ) {
    this.#reads = reads;
    this.#writes = writes;
    this.#trust = trust;
  }

  /**
   * Revokes the token with id `jti` on every replica until `expiresAt` (ms since the epoch, the
   * token's `exp`), after which it is refused as expired anyway.
   * @throws AuthzError `STORE_UNAVAILABLE` when the store cannot take the write.
   */
  revoke(jti: string, expiresAt: number): Promise<void> {
    const write = () => this.#writes.set(jti, { exp: expiresAt });
    return this.#trust === undefined ? write() : this.#trust.revoking(jti, write);
  }

  /**
   * True when `jti` is on the list: one store read, within `bound` (the request's); `false`
   * at once for an id trusted as not revoked.
   */
  readonly isRevoked = (jti: string, bound?: CallBound): boolean | Promise<boolean> =>
    this.#trust?.has(jti) === true ? false : this.#lookUp(jti, bound);

  async #lookUp(jti: string, bound: CallBound | undefined): Promise<boolean> {
    const lookUp = this.#trust?.startLookUp();
    const revoked = (await this.#reads.get(jti, bound)) !== undefined;
    if (!revoked && lookUp !== undefined) this.#trust?.trust(jti, lookUp);
    return revoked;
  }
}
