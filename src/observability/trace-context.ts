/** The caller's trace context, read from a request's W3C Trace Context or B3 headers; anything malformed is ignored. */

/** The span a Check continues: the trace it joins, its parent span and the parent's sampling. */
export interface TraceParent {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lower-case hex digits, not all zero. */
  readonly spanId: string;
  /** The caller's sampling decision; `undefined` when it left the decision to us (B3 only). */
  readonly sampled: boolean | undefined;
  /** The W3C `tracestate` that came with a `traceparent`, when it was well-formed. */
  readonly traceState?: string;
}

/** What a B3 header says when it carries only a sampling decision and no ids. */
export interface SamplingOnly {
  readonly traceId: undefined;
  readonly sampled: boolean;
}

const lowerHex = /^[0-9a-f]+$/;
const zeros = /^0+$/;

function isId(text: string, length: number): boolean {
  return text.length === length && lowerHex.test(text) && !zeros.test(text);
}

/**
 * A W3C `traceparent` (Trace Context §3.2): `version-traceid-parentid-flags` in lower-case hex.
 * Version `ff` is invalid; a later version than `00` may append fields after a `-`, which are
 * ignored (§4.3); ids of all zeros are invalid. Bit 0 of the flags is "sampled".
 */
export function parseTraceparent(header: string): TraceParent | undefined {
  if (header.length < 55 || header.length > 512) return undefined;
  const version = header.slice(0, 2);
  if (!/^[0-9a-f]{2}$/.test(version) || version === 'ff') return undefined;
  if (version === '00' ? header.length !== 55 : header.length > 55 && header[55] !== '-')
    return undefined;
  if (header[2] !== '-' || header[35] !== '-' || header[52] !== '-') return undefined;
  const traceId = header.slice(3, 35);
  const spanId = header.slice(36, 52);
  const flags = header.slice(53, 55);
  if (!isId(traceId, 32) || !isId(spanId, 16) || !lowerHex.test(flags)) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

// W3C Trace Context §3.3.1: list members `key=value`; keys are lower-case (with an optional
// `tenant@system`), values printable ASCII but `,` and `=`, not ending in a space.
const stateKey =
  /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$/;
const stateValue = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * A W3C `tracestate` kept as it came when every list member is well-formed (at most 32, §3.3.1.1),
 * else `undefined`: a malformed one is dropped, the `traceparent` still holds (§3.3.1.5).
 */
export function parseTracestate(header: string): string | undefined {
  if (header.length > 512) return undefined;
  const members = header.split(',');
  let count = 0;
  for (const member of members) {
    const trimmed = member.trim();
    if (trimmed === '') continue;
    const eq = trimmed.indexOf('=');
    if (eq <= 0) return undefined;
    if (!stateKey.test(trimmed.slice(0, eq)) || !stateValue.test(trimmed.slice(eq + 1)))
      return undefined;
    if (++count > 32) return undefined;
  }
  return count === 0 ? undefined : header.trim();
}

/** A B3 trace id: 16 or 32 lower-case hex digits; the short form is left-padded to 128 bits. */
function b3TraceId(text: string): string | undefined {
  if (text.length === 16 && isId(text, 16)) return `0000000000000000${text}`;
  return isId(text, 32) ? text : undefined;
}

/** A B3 sampling state: `1`/`d` (debug) sample, `0` does not; `true`/`false` from old clients. */
function b3Sampled(text: string): boolean | undefined | null {
  switch (text) {
    case '1':
    case 'd':
    case 'true':
      return true;
    case '0':
    case 'false':
      return false;
    default:
      return null;
  }
}

/**
 * The single `b3` header (openzipkin/b3-propagation): `traceid-spanid[-sampling[-parentspanid]]`,
 * or only a sampling state (`0`, `1`, `d`).
 */
export function parseB3Single(header: string): TraceParent | SamplingOnly | undefined {
  if (header.length > 128) return undefined;
  const parts = header.split('-');
  if (parts.length === 1) {
    const sampled = b3Sampled(parts[0]!);
    return typeof sampled === 'boolean' ? { traceId: undefined, sampled } : undefined;
  }
  if (parts.length > 4) return undefined;
  const traceId = b3TraceId(parts[0]!);
  const spanId = parts[1]!;
  if (traceId === undefined || !isId(spanId, 16)) return undefined;
  let sampled: boolean | undefined;
  if (parts.length >= 3) {
    const state = b3Sampled(parts[2]!);
    if (state === null || parts[2] === 'true' || parts[2] === 'false') return undefined;
    sampled = state;
  }
  if (parts.length === 4 && !isId(parts[3]!, 16)) return undefined;
  return { traceId, spanId, sampled };
}

/**
 * The multi-header B3 form: `x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled` and `x-b3-flags`
 * (`1`: debug, which means sampled). `x-b3-sampled` alone is a sampling decision without ids.
 */
export function parseB3Multi(
  headers: ReadonlyMap<string, string>,
): TraceParent | SamplingOnly | undefined {
  const flags = headers.get('x-b3-flags');
  const sampledHeader = headers.get('x-b3-sampled');
  let sampled: boolean | undefined = flags === '1' ? true : undefined;
  if (sampled === undefined && sampledHeader !== undefined) {
    const state = b3Sampled(sampledHeader);
    if (typeof state === 'boolean') sampled = state;
  }
  const traceIdHeader = headers.get('x-b3-traceid');
  const spanIdHeader = headers.get('x-b3-spanid');
  if (traceIdHeader === undefined || spanIdHeader === undefined) {
    return sampled === undefined ? undefined : { traceId: undefined, sampled };
  }
  const traceId = b3TraceId(traceIdHeader);
  if (traceId === undefined || !isId(spanIdHeader, 16)) return undefined;
  return { traceId, spanId: spanIdHeader, sampled };
}

/**
 * The trace context of a request by its lower-case header names: a valid `traceparent` first
 * (with its `tracestate`), then `b3`, then the `x-b3-*` headers. A B3 header with only a
 * sampling decision yields that decision without ids (the Check starts a trace of its own).
 * `undefined` when none is present or valid.
 */
export function traceParentOf(
  headers: ReadonlyMap<string, string>,
): TraceParent | SamplingOnly | undefined {
  const traceparent = headers.get('traceparent');
  if (traceparent !== undefined) {
    const parent = parseTraceparent(traceparent);
    if (parent !== undefined) {
      const state = headers.get('tracestate');
      const traceState = state === undefined ? undefined : parseTracestate(state);
      return traceState === undefined ? parent : { ...parent, traceState };
    }
  }
  const single = headers.get('b3');
  if (single !== undefined) {
    const parent = parseB3Single(single);
    if (parent !== undefined) return parent;
  }
  return parseB3Multi(headers);
}

/** The header names {@link traceParentOf} reads. */
export const traceHeaderNames: ReadonlySet<string> = new Set([
  'traceparent',
  'tracestate',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-sampled',
  'x-b3-flags',
]);
