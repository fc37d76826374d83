/** The one rule for "this host never leaves the machine", where plain http is allowed. */
import { isIPv4, isIPv6 } from 'node:net';
import { withoutBrackets } from './host-port.ts';

// Every spelling of ::1 (`::1`, `0::1`, `0:0:0:0:0:0:0:1`, `::0001`) once it is a valid IPv6
// address: nothing but zeros and colons before a last group of 1.
const ipv6Loopback = /^[0:]*:0*1$/;

/**
 * Whether `host` (a URL's `hostname` or a request's host, without port) is a loopback host, by
 * the W3C Secure Contexts rule for a potentially trustworthy origin (§3.1), which browsers apply
 * to decide that plain http is safe:
 *
 * - `localhost` and every name under `.localhost`, with or without a trailing dot (RFC 6761
 *   §6.3: these names always resolve to loopback);
 * - IPv4 `127.0.0.0/8`, in dotted decimal;
 * - IPv6 `::1`, bracketed or not, in any spelling.
 *
 * Case does not matter. Anything else is not loopback: `127.0.0.1.example.com`, `::ffff:127.0.0.1`,
 * `0.0.0.0`, `127.1`.
 */
export function isLoopbackHost(host: string): boolean {
  const lower = host.toLowerCase();
  const name = lower.endsWith('.') ? lower.slice(0, -1) : lower;
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isIPv4(lower)) return lower.startsWith('127.');
  const address = withoutBrackets(lower);
  return isIPv6(address) && ipv6Loopback.test(address);
}
