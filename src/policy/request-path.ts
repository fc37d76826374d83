/** The ways an upstream may read one raw request path: every consumer of the path decides on these. */
import { refusals, type PolicyRefusal } from './policy-refusal.ts';

/**
 * One request path and its readings. Envoy forwards `:path` as the client sent it unless the
 * operator turned on its normalisation, and upstreams differ in what they do with it: servlet
 * containers (Tomcat, Jetty, Spring) strip `;params` from each segment before resolving `..`,
 * nginx decodes `%2F` and merges `//`, WHATWG URL parsers treat `\` as `/`, some servers decode
 * twice or fold full-width characters (NFKC). A decision that holds for one reading may not hold
 * for the one the upstream makes, so the policy decides on all of them.
 */
export interface RequestPath {
  /** The path as sent, without the query string, not decoded. Starts with `/`. */
  readonly raw: string;
  /**
   * Every distinct reading, `raw` first. A path without `%`, `;`, `\`, `//`, dot segments or
   * non-ASCII characters has only one: itself.
   */
  readonly readings: readonly string[];
}

/** Longest path accepted, in bytes (Envoy's default `max_request_headers_kb` is 60). */
export const maxPathBytes = 8 * 1024;
/** Longest path accepted when it has several readings: each reading is a pass over it. */
export const maxAmbiguousPathBytes = 4 * 1024;
/**
 * Most layers of percent-encoding decoded. Real clients encode once; a second or third layer
 * shows up behind proxies that re-encode. A fourth is only ever an attack on a server that
 * decodes until nothing changes, so it is refused rather than followed.
 */
const maxEncodingLayers = 3;

/**
 * Anything that makes upstreams read a path differently from its bytes: percent-encoding, `;`
 * parameters, backslashes, empty segments, dot segments, non-ASCII characters (NFKC folds
 * full-width `．` and `／` into `.` and `/`).
 */
// eslint-disable-next-line no-control-regex -- the ASCII range bounds the non-ASCII class
const needsReadings = /[%;\\]|\/\/|\/\.\.?(?:\/|$)|[^\u0000-\u007f]/;
const anyEscape = /%[0-9A-Fa-f]{2}/;
const strayPercent = /%(?![0-9A-Fa-f]{2})/;

/**
 * Reads `raw` (a path without its query) the ways upstreams do, or refuses it: longer than
 * {@link maxPathBytes} ({@link maxAmbiguousPathBytes} when it has several readings), a `%` not
 * followed by two hex digits, an encoded NUL or overlong UTF-8 sequence at any layer, or more
 * than {@link maxEncodingLayers} layers of encoding.
 *
 * The readings (deduplicated): the raw path; and, with dot segments resolved (RFC 3986 §5.2.4)
 * in each, every combination of
 * - decoding: none; once, keeping `%2F` and `%5C` encoded so they never become separators
 *   (Envoy's `normalize_path`, servlet containers); or fully, up to three layers, separators
 *   included, then NFKC (nginx, double-decoding servers, Unicode-folding frameworks);
 * - `;params` kept, or stripped from each segment (before decoding for the first two, after it
 *   for the full decoding: Tomcat, Jetty, Spring and the laxest imaginable server alike);
 * - `\` kept, or read as `/`;
 * - `//` kept, or merged.
 */
export function readRequestPath(raw: string): RequestPath | PolicyRefusal {
  if (!needsReadings.test(raw)) {
    if (longerThan(raw, maxPathBytes)) return refusals['path too long'];
    return { raw, readings: [raw] };
  }
  if (longerThan(raw, maxAmbiguousPathBytes)) return refusals['path too long'];
  if (strayPercent.test(raw)) return refusals['invalid path encoding'];

  const bases: string[] = [raw];
  const semicolon = raw.includes(';');
  if (semicolon) bases.push(stripParams(raw));
  if (raw.includes('%')) {
    const once = decodeLayer(raw, true);
    if (once === undefined) return refusals['invalid path encoding'];
    bases.push(once);
    if (semicolon) {
      const strippedOnce = decodeLayer(stripParams(raw), true);
      if (strippedOnce === undefined) return refusals['invalid path encoding'];
      bases.push(strippedOnce);
    }
  }
  const full = decodeFully(raw);
  if (full === undefined) return refusals['invalid path encoding'];
  bases.push(full);
  if (full.includes(';')) bases.push(stripParams(full));

  // Distinct inputs first: resolving dot segments is the costly pass, done once per input.
  const unresolved = new Set<string>();
  for (const base of bases) {
    addVariants(unresolved, base);
    if (base.includes('\\')) addVariants(unresolved, base.replaceAll('\\', '/'));
  }
  const readings = new Set<string>([raw]);
  for (const path of unresolved) readings.add(removeDotSegments(path));
  return { raw, readings: [...readings] };
}

/** Adds `path`, and also `path` with `//` merged when it has any. */
function addVariants(paths: Set<string>, path: string): void {
  paths.add(path);
  if (path.includes('//')) paths.add(path.replace(/\/{2,}/g, '/'));
}

/**
 * RFC 3986 §5.2.4 on an absolute path: `.` segments dropped, `..` removes the segment before it
 * (an empty one too, as the RFC's algorithm does), never above the root. A trailing `.` or `..`
 * leaves a trailing `/`.
 */
export function removeDotSegments(path: string): string {
  // Every dot segment starts with `/.`: most paths have none and come back as they are.
  if (!path.includes('/.')) return path;
  const parts = path.split('/');
  let kept = 0;
  for (let i = 1; i < parts.length; i++) {
    const segment = parts[i]!;
    const last = i === parts.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..' && kept > 0) kept--;
      if (last) parts[++kept] = '';
      continue;
    }
    // Compacted in place: the kept segments are parts[1..kept].
    parts[++kept] = segment;
  }
  parts.length = kept + 1;
  return parts.join('/');
}

/** Drops `;params` from every segment, as servlet containers do before resolving `..`. */
export function stripParams(path: string): string {
  const parts = path.split('/');
  for (let i = 0; i < parts.length; i++) {
    const segment = parts[i]!;
    const at = segment.indexOf(';');
    if (at !== -1) parts[i] = segment.slice(0, at);
  }
  return parts.join('/');
}

/**
 * Decodes until no escape is left, at most {@link maxEncodingLayers} times, separators included,
 * then folds compatibility characters (NFKC). `undefined` for a NUL or an overlong sequence at
 * any layer, or an escape still left after the last layer.
 */
function decodeFully(raw: string): string | undefined {
  let text = raw;
  for (let layer = 0; anyEscape.test(text); layer++) {
    if (layer === maxEncodingLayers) return undefined;
    const decoded = decodeLayer(text, false);
    if (decoded === undefined) return undefined;
    text = decoded;
  }
  // eslint-disable-next-line no-control-regex -- as in needsReadings
  return /[^\u0000-\u007f]/.test(text) ? text.normalize('NFKC') : text;
}

const upperHex = '0123456789ABCDEF';

function hexDigit(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** The byte `%XX` at `at` stands for, or -1 when there is no escape there. */
function escapedByte(text: string, at: number): number {
  if (at + 2 >= text.length || text.charCodeAt(at) !== 0x25) return -1;
  const high = hexDigit(text.charCodeAt(at + 1));
  const low = hexDigit(text.charCodeAt(at + 2));
  return high === -1 || low === -1 ? -1 : (high << 4) | low;
}

/**
 * One layer of percent-decoding. Runs of escapes are read as UTF-8; a byte that starts no valid
 * sequence stands for itself (its Latin-1 character), as servers that fall back to ISO-8859-1
 * read it. `keepSeparators` leaves `%2F` and `%5C` encoded (upper-cased).
 *
 * @returns `undefined` for an encoded NUL or an overlong UTF-8 sequence (`%C0%AE` for `.`): old
 * decoders read those as the ASCII character they disguise, and no client has a reason to send
 * them.
 */
function decodeLayer(text: string, keepSeparators: boolean): string | undefined {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const start = text.indexOf('%', i);
    if (start === -1) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, start);
    const bytes: number[] = [];
    let at = start;
    for (let byte = escapedByte(text, at); byte !== -1; byte = escapedByte(text, at)) {
      bytes.push(byte);
      at += 3;
    }
    if (bytes.length === 0) {
      // A `%` that escapes nothing (only possible after a first layer): a literal.
      out += '%';
      i = start + 1;
      continue;
    }
    const decoded = decodeUtf8(bytes, keepSeparators);
    if (decoded === undefined) return undefined;
    out += decoded;
    i = at;
  }
  return out;
}

function decodeUtf8(bytes: readonly number[], keepSeparators: boolean): string | undefined {
  let out = '';
  for (let j = 0; j < bytes.length;) {
    const lead = bytes[j]!;
    if (lead < 0x80) {
      if (lead === 0) return undefined;
      if (keepSeparators && (lead === 0x2f || lead === 0x5c)) {
        out += `%${upperHex[lead >> 4]}${upperHex[lead & 15]}`;
      } else {
        out += String.fromCharCode(lead);
      }
      j += 1;
      continue;
    }
    // C0 and C1 only ever start overlong two-byte forms of ASCII.
    if (lead === 0xc0 || lead === 0xc1) return undefined;
    const length = lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : 4;
    const second = bytes[j + 1];
    if (lead === 0xe0 && second !== undefined && second >= 0x80 && second < 0xa0) return undefined;
    if (lead === 0xf0 && second !== undefined && second >= 0x80 && second < 0x90) return undefined;
    const codePoint = sequence(bytes, j, lead, length);
    if (codePoint === undefined) {
      out += String.fromCharCode(lead);
      j += 1;
    } else {
      out += String.fromCodePoint(codePoint);
      j += length;
    }
  }
  return out;
}

/** The code point of a well-formed UTF-8 sequence at `j`, or `undefined`. */
function sequence(
  bytes: readonly number[],
  j: number,
  lead: number,
  length: number,
): number | undefined {
  if (lead > 0xf4 || (lead & 0xc0) === 0x80 || j + length > bytes.length) return undefined;
  let codePoint = lead & (length === 2 ? 0x1f : length === 3 ? 0x0f : 0x07);
  for (let k = 1; k < length; k++) {
    const next = bytes[j + k]!;
    if ((next & 0xc0) !== 0x80) return undefined;
    codePoint = (codePoint << 6) | (next & 0x3f);
  }
  // Surrogates and code points past U+10FFFF are not UTF-8.
  if ((codePoint >= 0xd800 && codePoint <= 0xdfff) || codePoint > 0x10ffff) return undefined;
  return codePoint;
}

/** True when `text` is longer than `limit` bytes in UTF-8. */
function longerThan(text: string, limit: number): boolean {
  // A UTF-16 unit is 1 to 3 UTF-8 bytes: only a path near the limit needs counting.
  return text.length > limit || (text.length * 3 > limit && Buffer.byteLength(text) > limit);
}
