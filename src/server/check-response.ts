/** Verdict → CheckResponse, following Envoy's field rules exactly (ENVOY.md §3). */
import type { HeaderPair, Verdict } from '../authz/verdict.ts';

/** Frozen verdicts remembered as encoded once (see `CheckResponseEncoder`). */
const maxSeenOnce = 1_024;

/** Field tags (field number << 3 | wire type 2, length-delimited) used below. */
const tag1 = 0x0a;
const tag2 = 0x12;
const tag3 = 0x1a;
const tag4 = 0x22;
const tag5 = 0x2a;
const tag6 = 0x32;
/** A varint field 1 (`code`) tag. */
const varintTag1 = 0x08;
/** A HeaderValueOption's `append` BoolValue, false and true: field 2, length 2, `08 0x`. */
const appendBytes = 4;

function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  return 5;
}

function writeVarint(out: Buffer, at: number, value: number): number {
  let rest = value;
  while (rest > 0x7f) {
    out[at++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  out[at++] = rest;
  return at;
}

/** Writes `value` of `bytes` UTF-8 bytes, its length prefix first. */
function writeString(out: Buffer, at: number, value: string, bytes: number): number {
  let pos = writeVarint(out, at, bytes);
  if (bytes !== value.length) {
    out.write(value, pos, bytes, 'utf8');
  } else if (bytes < 48) {
    for (let i = 0; i < bytes; i++) out[pos + i] = value.charCodeAt(i);
  } else {
    // As many bytes as characters: ASCII, where Latin-1 is UTF-8 and cheaper to write.
    out.write(value, pos, bytes, 'latin1');
  }
  pos += bytes;
  return pos;
}

/** Sizes of one HeaderValueOption: its HeaderValue body and the option body. */
function headerValueSize(keyBytes: number, valueBytes: number): number {
  return 2 + varintSize(keyBytes) + keyBytes + varintSize(valueBytes) + valueBytes;
}

function headerOptionSize(headerValue: number): number {
  return 1 + varintSize(headerValue) + headerValue + appendBytes;
}

/**
 * The length of every string of `headers` (key, value, …) into `lengths` from `at`; returns the
 * bytes the headers take as repeated HeaderValueOption fields.
 */
function measureHeaders(headers: readonly HeaderPair[], lengths: number[]): number {
  let size = 0;
  for (const [key, value] of headers) {
    // `Buffer.byteLength` is a fast call, quicker than counting in JS even for short strings.
    const keyBytes = Buffer.byteLength(key, 'utf8');
    const valueBytes = Buffer.byteLength(value, 'utf8');
    lengths.push(keyBytes, valueBytes);
    const option = headerOptionSize(headerValueSize(keyBytes, valueBytes));
    size += 1 + varintSize(option) + option;
  }
  return size;
}

function writeHeaders(
  out: Buffer,
  at: number,
  fieldTag: number,
  headers: readonly HeaderPair[],
  append: 0 | 1,
  lengths: readonly number[],
  index: number,
): number {
  let pos = at;
  let next = index;
  for (const [key, value] of headers) {
    const keyBytes = lengths[next++]!;
    const valueBytes = lengths[next++]!;
    const headerValue = headerValueSize(keyBytes, valueBytes);
    out[pos++] = fieldTag;
    pos = writeVarint(out, pos, headerOptionSize(headerValue));
    out[pos++] = tag1;
    pos = writeVarint(out, pos, headerValue);
    out[pos++] = tag1;
    pos = writeString(out, pos, key, keyBytes);
    out[pos++] = tag2;
    pos = writeString(out, pos, value, valueBytes);
    out[pos++] = tag2;
    out[pos++] = 2;
    out[pos++] = varintTag1;
    out[pos++] = append;
  }
  return pos;
}

/** `status` (field 1) and `dynamic_metadata` (field 4) of one (kind, code, reason, app). */
interface FixedParts {
  readonly status: Buffer;
  readonly metadata: Buffer;
  /** The Struct entries of `metadata`, without its tag and length, for an allow to add to. */
  readonly entries: readonly Buffer[];
}

function stringField(fieldTag: number, value: string): Buffer {
  const bytes = Buffer.byteLength(value, 'utf8');
  const out = Buffer.alloc(1 + varintSize(bytes) + bytes);
  out[0] = fieldTag;
  writeString(out, 1, value, bytes);
  return out;
}

function lengthDelimited(fieldTag: number, parts: readonly Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const prefix = Buffer.alloc(1 + varintSize(body.length));
  prefix[0] = fieldTag;
  writeVarint(prefix, 1, body.length);
  return Buffer.concat([prefix, body]);
}

function varintField(value: number): Buffer {
  const out = Buffer.alloc(1 + varintSize(value));
  out[0] = varintTag1;
  writeVarint(out, 1, value);
  return out;
}

/** One Struct `fields` entry whose Value is a string (`string_value`, field 3). */
function structStringEntry(key: string, value: string): Buffer {
  return lengthDelimited(tag1, [
    stringField(tag1, key),
    lengthDelimited(tag2, [stringField(tag3, value)]),
  ]);
}

function buildFixedParts(verdict: Verdict, app: string | undefined): FixedParts {
  const status =
    verdict.kind === 'allow'
      ? lengthDelimited(tag1, [varintField(0)])
      : lengthDelimited(tag1, [varintField(verdict.code), stringField(tag2, verdict.reason)]);
  const entries = [structStringEntry('reason', verdict.reason)];
  if (app !== undefined) entries.push(structStringEntry('app', app));
  return { status, metadata: lengthDelimited(tag4, entries), entries };
}

/** `dynamic_metadata` with the allow's own entries (`Allow.metadata`) after the fixed ones. */
function metadataOf(verdict: Verdict, fixed: FixedParts): Buffer {
  if (verdict.kind !== 'allow' || verdict.metadata.length === 0) return fixed.metadata;
  const own = verdict.metadata.map(([key, value]) => structStringEntry(key, value));
  return lengthDelimited(tag4, [...fixed.entries, ...own]);
}

/**
 * Encodes the CheckResponse of a verdict without building the message: field sizes are computed
 * first, then every field is written into one buffer.
 *
 * Request headers overwrite (`append: false`); response headers each add a line
 * (`append: true`, so several `set-cookie` survive); deny headers use `append: false` because
 * Envoy <= 1.36 drops `append: true` entries from a local reply. `append` is always explicit:
 * its default changed meaning across Envoy versions. `dynamic_metadata` carries `reason` and,
 * when known, `app`, then an allow's own entries (`dynamicMetadata`). The bytes are those protobufjs writes for the same message with the Check
 * response type of `protos.ts` (pinned by a test against a plain object model of it).
 * The `status` and `dynamic_metadata` of each (app, verdict kind, reason) are encoded once.
 *
 * A frozen verdict is one the pipeline may hand out again (a constant, or the last allow of a
 * session or token): from its second encoding on, its bytes are kept with it and returned as
 * they are on every later call. Returned buffers may thus be shared and must not be written to.
 */
export class CheckResponseEncoder {
  /** By app, then code and reason; bounded by the config, like the metric children. */
  readonly #fixed = new Map<string | undefined, Map<string, FixedParts>>();
  readonly #shared = new WeakMap<Verdict, { readonly app: string | undefined; bytes: Buffer }>();
  /**
   * Frozen verdicts encoded once and not kept yet, oldest first, at most `maxSeenOnce`: only
   * a second encoding keeps the bytes. An allow of a session beyond the allow memo is encoded
   * once and dropped; keeping each in the `WeakMap` cost more (a copy, and the collector's work
   * on a weak table of short-lived keys) than encoding it.
   */
  readonly #seenOnce = new Set<Verdict>();

  encode(verdict: Verdict, app: string | undefined): Buffer {
    if (!Object.isFrozen(verdict)) return this.#encode(verdict, app);
    const kept = this.#shared.get(verdict);
    if (kept !== undefined && kept.app === app) return kept.bytes;
    const encoded = this.#encode(verdict, app);
    if (kept === undefined && !this.#seenOnce.delete(verdict)) {
      if (this.#seenOnce.size >= maxSeenOnce) {
        const oldest = this.#seenOnce.values().next();
        if (oldest.done !== true) this.#seenOnce.delete(oldest.value);
      }
      this.#seenOnce.add(verdict);
      return encoded;
    }
    // A pooled buffer would pin its whole slab for as long as the verdict lives.
    const bytes = Buffer.allocUnsafeSlow(encoded.length);
    encoded.copy(bytes);
    this.#shared.set(verdict, { app, bytes });
    return bytes;
  }

  #fixedParts(verdict: Verdict, app: string | undefined): FixedParts {
    let ofApp = this.#fixed.get(app);
    if (ofApp === undefined) {
      ofApp = new Map();
      this.#fixed.set(app, ofApp);
    }
    // Reasons are words, so a code in front of one keeps every pair apart.
    const key = `${verdict.kind === 'allow' ? 0 : verdict.code}${verdict.reason}`;
    let parts = ofApp.get(key);
    if (parts === undefined) {
      parts = buildFixedParts(verdict, app);
      ofApp.set(key, parts);
    }
    return parts;
  }

  #encode(verdict: Verdict, app: string | undefined): Buffer {
    const fixed = this.#fixedParts(verdict, app);
    const { status } = fixed;
    const metadata = metadataOf(verdict, fixed);
    const lengths: number[] = [];
    let body: number;
    if (verdict.kind === 'allow') {
      body = measureHeaders(verdict.upstreamHeaders, lengths);
      for (const name of verdict.removeHeaders) {
        const bytes = Buffer.byteLength(name, 'utf8');
        lengths.push(bytes);
        body += 1 + varintSize(bytes) + bytes;
      }
      body += measureHeaders(verdict.responseHeaders, lengths);
    } else {
      const bodyBytes = Buffer.byteLength(verdict.body, 'utf8');
      lengths.push(bodyBytes);
      body =
        3 +
        varintSize(verdict.status) +
        measureHeaders(verdict.headers, lengths) +
        1 +
        varintSize(bodyBytes) +
        bodyBytes;
    }
    const size = status.length + 1 + varintSize(body) + body + metadata.length;
    const out = Buffer.allocUnsafe(size);
    // `set` copies a few bytes far faster than `Buffer#copy`.
    out.set(status, 0);
    let pos = status.length;
    if (verdict.kind === 'allow') {
      out[pos++] = tag3;
      pos = writeVarint(out, pos, body);
      pos = writeHeaders(out, pos, tag2, verdict.upstreamHeaders, 0, lengths, 0);
      let next = verdict.upstreamHeaders.length * 2;
      for (const name of verdict.removeHeaders) {
        out[pos++] = tag5;
        pos = writeString(out, pos, name, lengths[next++]!);
      }
      pos = writeHeaders(out, pos, tag6, verdict.responseHeaders, 1, lengths, next);
    } else {
      out[pos++] = tag2;
      pos = writeVarint(out, pos, body);
      out[pos++] = tag1;
      out[pos++] = 1 + varintSize(verdict.status);
      out[pos++] = varintTag1;
      pos = writeVarint(out, pos, verdict.status);
      pos = writeHeaders(out, pos, tag2, verdict.headers, 0, lengths, 1);
      out[pos++] = tag3;
      pos = writeString(out, pos, verdict.body, lengths[0]!);
    }
    out.set(metadata, pos);
    return out;
  }
}
