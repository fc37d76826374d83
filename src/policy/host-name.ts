/** The host of a request, read once and in one way: lower case, no trailing dot, port apart. */
import { splitPort, type HostAndPort } from '../host-port.ts';

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
 * @returns the host (a lower-case DNS name without a trailing dot, an IPv4 address, or a
 * bracketed IPv6 literal) and the port when the client sent one; `undefined` for anything else.
 */
export function parseAuthority(authority: string): HostAndPort | undefined {
  const split = splitPort(authority.toLowerCase());
  if (split === undefined) return undefined;
  const { host: name, port } = split;
  if (name.startsWith('[')) return ipv6Literal.test(name) ? { host: name, port } : undefined;
  const host = name.endsWith('.') ? name.slice(0, -1) : name;
  if (host.length === 0 || host.length > maxHostLength || !dnsName.test(host)) return undefined;
  return { host, port };
}
