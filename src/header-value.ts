/** Which strings may be sent as a header value, in either Envoy mode. */

/**
 * Whether `value` can go into a header as it is: no character that Envoy, Node's `http` or an
 * upstream would refuse, fold or read as a line break.
 *
 * Refused: every Unicode control character (C0 including HTAB, DEL, C1: `\p{Cc}`), the line and
 * paragraph separators U+2028 and U+2029 (line breaks to many JavaScript and log readers), and
 * a lone surrogate (not encodable as UTF-8: gRPC and HTTP mode would each replace it
 * differently). Everything else is allowed and travels as its UTF-8 bytes (RFC 9110 §5.5
 * `obs-text`), the same bytes in both modes.
 *
 * A value that fails is not cleaned: its header is left out. Stripping would turn
 * `"ad\u0000min"` into `"admin"`, someone else's identity.
 */
export function isSafeHeaderValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return false;
    if (code < 0x2028) continue;
    if (code === 0x2028 || code === 0x2029) return false;
    if (code >= 0xd800 && code <= 0xdfff) {
      // A high surrogate must be followed by a low one; a low one never comes first.
      const next = value.charCodeAt(i + 1);
      if (code > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return false;
      i++;
    }
  }
  return true;
}

/**
 * Most `-` or `_` in an identity header's name. An upstream folds `_` into `-`, so each one
 * doubles the spellings HTTP mode must list for removal (2^8 = 256 for one name).
 */
export const maxIdentityNameSeparators = 8;

/**
 * Most bytes the names of an app's identity headers may take in HTTP mode's
 * `x-envoy-auth-headers-to-remove` (every spelling of every name, `, `-separated): Envoy reads at
 * most 60 KiB of the check's response headers, and the values need room too.
 */
export const maxIdentityRemovalBytes = 16 * 1024;

/** Bytes the spellings of `name` take in `x-envoy-auth-headers-to-remove` (see `spellingsOf`). */
export function removalListBytes(name: string): number {
  const separators = name.replace(/[^_-]/g, '').length;
  return 2 ** separators * (name.length + 2);
}
