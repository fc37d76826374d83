/** Seals JSON payloads into standard compact JWE (`dir` + `A256GCM`, `kid`) and opens them. */
import {
  encodeProtectedHeader,
  openCompactJson,
  parseStrictHeader,
  RandomPool,
  sealCompact,
  splitCompact,
} from './compact-jwe.ts';
import type { KeyRing, SecretKey } from './session-keys.ts';

/**
 * The session cookie codec. Output is a standard compact JWE any JOSE library opens with the
 * derived key; input is refused unless it is exactly what this codec produces.
 */
export interface CookieCodec {
  /** Encrypts `payload` (JSON-serialisable) with the current key. */
  seal(payload: unknown): string;
  /**
   * The decrypted JSON payload, or `undefined` for anything else: malformed, truncated,
   * tampered, another header (other `alg`/`enc`, `zip`, extra members), an unknown `kid`.
   * Never throws.
   */
  open(value: string): unknown;
}

/**
 * Creates a codec over a key ring. Decoding uses `node:crypto` directly (synchronous; several
 * times faster than WebCrypto for cookie-sized inputs) while staying RFC 7516 compact JWE.
 */
export function createCookieCodec(ring: KeyRing): CookieCodec {
  // The headers this codec writes, precomputed: the common case is a map lookup, not a parse.
  const headers = new Map<string, SecretKey>(
    ring.all.map((key) => [encodeProtectedHeader(key.kid), key]),
  );
  const currentHeader = encodeProtectedHeader(ring.current.kid);
  const currentAad = Buffer.from(currentHeader, 'ascii');
  const currentKey = ring.current.keyObject();
  const random = new RandomPool();

  function keyFor(headerB64: string): SecretKey | undefined {
    const known = headers.get(headerB64);
    if (known !== undefined) return known;
    // An equivalent header serialised differently by another JOSE implementation.
    const kid = parseStrictHeader(headerB64);
    return typeof kid === 'string' ? ring.byKid(kid) : undefined;
  }

  return {
    seal(payload) {
      return sealCompact(
        currentKey,
        currentHeader,
        Buffer.from(JSON.stringify(payload), 'utf8'),
        random,
        currentAad,
      );
    },
    open(value) {
      const parts = splitCompact(value, 65_536); // longer values are never looked at
      if (parts === undefined) return undefined;
      const key = keyFor(parts.header);
      return key === undefined ? undefined : openCompactJson(key.keyObject(), parts);
    },
  };
}
