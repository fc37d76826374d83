/** Turns the raw parts of an HTTP request, from whichever transport, into the request model. */
import { isIP } from 'node:net';
import { parseAuthority } from '../policy/host-name.ts';
import type { MalformedRequest, RequestModel } from './request.ts';

/** The raw parts a transport hands over; header names may be in any case. */
export interface RawRequest {
  readonly id: string;
  readonly method: string;
  /** Raw path with query, as in `:path`. */
  readonly path: string;
  /** `:authority`, with the port when the client sent one. */
  readonly authority: string;
  readonly scheme: string;
  /** Header pairs; repeated names are joined with `,` as Envoy does. */
  readonly headers: Iterable<readonly [string, string]>;
  /** The direct peer address. */
  readonly peerAddress: string;
  /** URL-encoded PEM of the direct peer's TLS certificate, when the transport has one. */
  readonly peerCertificate?: string;
  readonly contextExtensions: Iterable<readonly [string, string]>;
  readonly body: string;
}

export interface ParseOptions {
  /** How many proxies in front of us append to `x-forwarded-for`; 0 ignores the header. */
  readonly trustedHops: number;
  /** Cap on the summed size of header names and values, in bytes. */
  readonly maxHeaderBytes: number;
}

const maxCookies = 200;
const maxBodyBytes = 64 * 1024;
// RFC 9110 §5.6.2 token characters.
const tokenPattern = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// CR, LF and NUL may never reach a header; other controls (except HTAB) are invalid too. Written
// as "only allowed characters from start to end": V8 runs this anchored form over a 4 KB cookie
// header in well under half the time of an unanchored search for a forbidden character.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const validValue = /^[^\u0000-\u0008\u000a-\u001f\u007f]*$/;
// eslint-disable-next-line no-control-regex -- as above
const forbiddenInPath = /[\u0000-\u0020\u007f#]/;

const noNames: readonly string[] = Object.freeze([]);

function malformed(reason: string): MalformedRequest {
  return { kind: 'malformed', reason };
}

/** Parses the raw request; anything malformed yields a short, client-safe reason. */
export function parseRequest(
  raw: RawRequest,
  options: ParseOptions,
): RequestModel | MalformedRequest {
  const headers = new Map<string, string>();
  let underscored: string[] | undefined;
  let bytes = 0;
  for (const [rawName, value] of raw.headers) {
    bytes += rawName.length + value.length;
    if (bytes > options.maxHeaderBytes) return malformed('request headers too large');
    const name = rawName.toLowerCase();
    if (name.startsWith(':')) continue;
    if (!tokenPattern.test(name)) return malformed('invalid header name');
    if (!validValue.test(value)) return malformed('invalid character in header value');
    const previous = headers.get(name);
    headers.set(name, previous === undefined ? value : `${previous},${value}`);
    if (previous === undefined && name.includes('_')) (underscored ??= []).push(name);
  }

  const method = raw.method.toUpperCase();
  if (!tokenPattern.test(method)) return malformed('invalid method');

  const target = raw.path;
  if (!target.startsWith('/') || forbiddenInPath.test(target)) {
    return malformed('request target is not in origin form');
  }
  const queryAt = target.indexOf('?');
  const path = queryAt === -1 ? target : target.slice(0, queryAt);
  const query = queryAt === -1 ? '' : target.slice(queryAt + 1);

  const authority = parseAuthority(raw.authority);
  if (authority === undefined) return malformed('invalid host');

  const scheme = raw.scheme.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return malformed('invalid scheme');

  const cookieHeader = headers.get('cookie');
  const cookies = cookieHeader === undefined ? emptyMap : parseCookies(cookieHeader);
  if (cookies === undefined) return malformed('malformed cookie header');

  let contextExtensions: Map<string, string> | undefined;
  for (const [key, value] of raw.contextExtensions) {
    (contextExtensions ??= new Map()).set(key, value);
  }

  // A UTF-16 unit is at most 3 UTF-8 bytes: only a long body needs counting.
  if (raw.body.length > maxBodyBytes / 3 && Buffer.byteLength(raw.body) > maxBodyBytes) {
    return malformed('request body too large');
  }

  return {
    id: raw.id,
    method,
    scheme,
    host: authority.host,
    port: authority.port,
    path,
    query,
    headers,
    underscoredHeaders: underscored ?? noNames,
    cookies,
    clientAddress: clientAddress(
      raw.peerAddress,
      headers.get('x-forwarded-for'),
      options.trustedHops,
    ),
    contextExtensions: contextExtensions ?? emptyMap,
    body: raw.body,
    ...(raw.peerCertificate ? { peerCertificate: raw.peerCertificate } : {}),
  };
}

/** Shared by every request without cookies or context extensions; typed read-only. */
const emptyMap: ReadonlyMap<string, string> = new Map();

/**
 * Parses a `cookie` header (RFC 6265 §5.4 as browsers send it). Pairs without `=` are ignored
 * as browsers do; a name outside the token characters or too many pairs is malformed.
 */
export function parseCookies(header: string): ReadonlyMap<string, string> | undefined {
  const cookies = new Map<string, string>();
  let count = 0;
  for (const piece of header.split(';')) {
    const pair = piece.trim();
    if (pair.length === 0) continue;
    if (++count > maxCookies) return undefined;
    const eq = pair.indexOf('=');
    if (eq === -1) continue;
    const name = pair.slice(0, eq).trim();
    if (!tokenPattern.test(name)) return undefined;
    let value = pair.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"'))
      value = value.slice(1, -1);
    if (!cookies.has(name)) cookies.set(name, value);
  }
  return cookies;
}

/**
 * The client is the entry `trustedHops` places from the right of `x-forwarded-for` (each trusted
 * proxy appended one); with 0 hops, or a short or invalid header, it is the direct peer.
 */
function clientAddress(
  peer: string,
  forwardedFor: string | undefined,
  trustedHops: number,
): string {
  if (trustedHops === 0 || forwardedFor === undefined) return peer;
  const entries = forwardedFor.split(',');
  const candidate = entries[entries.length - trustedHops]?.trim();
  return candidate !== undefined && isIP(candidate) !== 0 ? candidate : peer;
}
