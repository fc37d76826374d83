/** The host of a request, read once and in one way: lower case, no trailing dot, port apart. */
import { splitPort } from '../host-port.ts';

export interface HostName {
  /** Lower-case DNS name without a trailing dot, an IPv4 address, or a bracketed IPv6 literal. */
  readonly host: string;
  /** The port from `:authority`, when the client sent one. */
  readonly port: number | undefined;
}

const maxHostLength = 253;
// Dot-separated RFC 1035 labels (letters, digits, hyphen) plus `_`, which internal names use;
// 1–63 characters each, none empty. One anchored test, no split: this runs on every request.
const dnsName =
  /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const ipv6Literal = /^\[[0-9a-f:.]+\]$/;

/**
 * Reads `:authority` (RFC 9110 §7.2). `Admin.Example.com.` and `admin.example.com` are the same
 * host to DNS and to Envoy's virtual hosts, so they are the same host here. Anything else a
 * reg-name may hold (`%` escapes, `;`, `!`, empty labels, user info) is refused: no client has a
 * reason to send it, and each is a way to make the host read one way here and another upstream.
 *
 * @returns `undefined` for an authority that is not a plain host with an optional port.
 */
export function parseAuthority(authority: string): HostName | undefined {
  const split = splitPort(authority.toLowerCase());
  if (split === undefined) return undefined;
  const host = normaliseHostName(split.host) ?? '';
  return host === '' ? undefined : { host, port: split.port };
}

/**
 * A host name as matched: lower case, one trailing dot dropped. `undefined` for anything that is
 * not a DNS name, an IPv4 address or a bracketed IPv6 literal.
 */
function normaliseHostName(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (lower.startsWith('[')) return ipv6Literal.test(lower) ? lower : undefined;
  const host = lower.endsWith('.') ? lower.slice(0, -1) : lower;
  if (host.length === 0 || host.length > maxHostLength) return undefined;
  return dnsName.test(host) ? host : undefined;
}
