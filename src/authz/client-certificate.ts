/** The client certificate Envoy saw (RFC 8705): from the TLS connection or from trusted `x-forwarded-client-cert` elements, as a SHA-256 thumbprint. */
import { hash } from 'node:crypto';
import type { RequestModel } from './request.ts';

/** Most XFCC elements read; each proxy adds one, so a longer header is not one we trust. */
const maxElements = 32;

const PEM =
  /^-----BEGIN CERTIFICATE-----\r?\n?([A-Za-z0-9+/=\r\n]+?)\r?\n?-----END CERTIFICATE-----\r?\n?$/;

/**
 * Splits `text` at each `separator` outside double quotes; a backslash escapes the next
 * character inside quotes (Envoy's XFCC: `By=...;Cert="...";URI=...,By=...`).
 */
function splitOutsideQuotes(text: string, separator: string): string[] | undefined {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
    } else if (c === separator) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) return undefined;
  parts.push(text.slice(start));
  return parts;
}

/** A value as written: quotes removed and escapes undone. */
function unquote(value: string): string {
  const trimmed = value.trim();
  if (trimmed.length < 2 || !trimmed.startsWith('"') || !trimmed.endsWith('"')) return trimmed;
  return trimmed.slice(1, -1).replace(/\\(.)/g, '$1');
}

/**
 * The `Cert` of the element `hops` places from the right of an `x-forwarded-client-cert`
 * header (each trusted proxy added one), or `undefined` when that element does not exist, has
 * none, or the header is malformed (unbalanced quotes, too many elements).
 */
export function xfccCertificate(header: string, hops: number): string | undefined {
  const elements = splitOutsideQuotes(header, ',');
  if (elements === undefined || elements.length > maxElements) return undefined;
  const element = elements[elements.length - hops];
  if (element === undefined) return undefined;
  const pairs = splitOutsideQuotes(element, ';');
  if (pairs === undefined) return undefined;
  let cert: string | undefined;
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq === -1) continue;
    if (pair.slice(0, eq).trim().toLowerCase() !== 'cert') continue;
    // Two `Cert` keys in one element: no telling which the proxy meant.
    if (cert !== undefined) return undefined;
    cert = unquote(pair.slice(eq + 1));
  }
  return cert;
}

/**
 * The base64url SHA-256 of the DER of a URL-encoded PEM certificate (RFC 8705 §3.1
 * `x5t#S256`), or `undefined` when it is not exactly one PEM `CERTIFICATE` block.
 */
export function certificateThumbprint(urlEncodedPem: string): string | undefined {
  let pem: string;
  try {
    pem = decodeURIComponent(urlEncodedPem);
  } catch {
    return undefined;
  }
  const body = PEM.exec(pem)?.[1];
  if (body === undefined) return undefined;
  const der = Buffer.from(body.replace(/[\r\n]/g, ''), 'base64');
  if (der.length === 0) return undefined;
  return hash('sha256', der, 'base64url');
}

/**
 * The thumbprint of the client's certificate: with `xfccHops` 0 the one of the TLS connection
 * Envoy terminated (`source.certificate`); else the `Cert` of the XFCC element the last trusted
 * proxy wrote about its client, and the connection's own certificate is ignored (it is a
 * proxy's). `undefined` when there is none.
 */
export function clientCertificateThumbprint(
  request: RequestModel,
  xfccHops: number,
): string | undefined {
  if (xfccHops === 0) {
    const own = request.peerCertificate;
    return own === undefined ? undefined : certificateThumbprint(own);
  }
  const header = request.headers.get('x-forwarded-client-cert');
  if (header === undefined) return undefined;
  const cert = xfccCertificate(header, xfccHops);
  return cert === undefined ? undefined : certificateThumbprint(cert);
}
