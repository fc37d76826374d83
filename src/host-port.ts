/** The one reading of `host:port`: for listen and Redis addresses in the config, and for a request's `:authority`. */

/** A configured address: the host without brackets, ready for `listen` or ioredis. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** A host and maybe a port; the host as written (an IPv6 literal keeps its brackets). */
export interface HostAndPort {
  readonly host: string;
  /** `undefined` when the text has no port. */
  readonly port: number | undefined;
}

const portDigits = /^[0-9]{1,5}$/;
// A DNS name or IPv4 address (letters, digits, dots, hyphens), or a bracketed IPv6 literal.
const addressHost = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)$/;

/**
 * Splits a port off `text` at the last `:` after any `]` (so `[::1]` is a host, `[::1]:80` a
 * host and a port). The host is returned as written; checking it is the caller's business.
 *
 * @returns `undefined` when a port is present but is not 1–5 digits up to 65535.
 */
export function splitPort(text: string): HostAndPort | undefined {
  const colon = text.lastIndexOf(':');
  if (colon === -1 || colon < text.lastIndexOf(']')) return { host: text, port: undefined };
  const digits = text.slice(colon + 1);
  if (!portDigits.test(digits)) return undefined;
  const port = Number(digits);
  return port > 65535 ? undefined : { host: text.slice(0, colon), port };
}

/** `[::1]` → `::1`: an IPv6 literal as sockets, ioredis and `node:net` want it. */
export function withoutBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * Reads a configured address, `host:port` with the port required: `0.0.0.0:9001`, `[::]:9001`,
 * `redis-0:6379`. The host comes back without brackets, ready for `listen` or ioredis.
 *
 * @returns `undefined` for anything else.
 */
export function parseHostPort(text: string): HostPort | undefined {
  const split = splitPort(text);
  if (split?.port === undefined || !addressHost.test(split.host)) return undefined;
  return { host: withoutBrackets(split.host), port: split.port };
}

/** {@link parseHostPort} for an address the config schema has already accepted. */
export function hostPortOf(text: string): HostPort {
  const address = parseHostPort(text);
  if (address === undefined) throw new TypeError(`not a host:port address: ${text}`);
  return address;
}
