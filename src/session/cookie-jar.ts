/** `set-cookie` lines for one logical cookie, split into `name.0`, `name.1`, … chunks when large. */
import { isLoopbackHost } from '../loopback-host.ts';

/** SameSite policy of a cookie. */
export type SameSite = 'lax' | 'strict' | 'none';

/** How cookies are scoped; fixed per app. */
export interface CookieScope {
  readonly sameSite: SameSite;
  /** `Domain` attribute; unset = host-only (and `__Host-` when Secure). */
  readonly domain?: string;
}

/**
 * Whether cookies for this request get `Secure`: as configured, else always, except for plain
 * http to a loopback host (development), where a browser would drop a Secure cookie.
 */
export function resolveSecure(
  configured: boolean | undefined,
  scheme: 'http' | 'https',
  host: string,
): boolean {
  return configured ?? !(scheme === 'http' && isLoopbackHost(host));
}

/**
 * The name a cookie is sent under: `__Host-<name>` when Secure and host-only, which the
 * browser guarantees was set by this host over https with `Path=/` (RFC 6265bis §4.1.3.2).
 */
export function prefixedName(name: string, secure: boolean, scope: CookieScope): string {
  return secure && scope.domain === undefined ? `__Host-${name}` : name;
}

const SAME_SITE: Readonly<Record<SameSite, string>> = {
  lax: 'Lax',
  strict: 'Strict',
  none: 'None',
};
const EPOCH = 'Thu, 01 Jan 1970 00:00:00 GMT';

/** The attributes after `name=value`, starting with `; `. */
export function cookieAttributes(
  maxAgeSeconds: number,
  secure: boolean,
  scope: CookieScope,
): string {
  const expires = maxAgeSeconds <= 0 ? `; Expires=${EPOCH}` : '';
  return (
    `; Path=/; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}${expires}; HttpOnly` +
    (secure ? '; Secure' : '') +
    `; SameSite=${SAME_SITE[scope.sameSite]}` +
    (scope.domain === undefined ? '' : `; Domain=${scope.domain}`)
  );
}

/** A `set-cookie` line that removes `name` from the browser. */
export function expireCookie(name: string, secure: boolean, scope: CookieScope): string {
  // A __Host- cookie can only be overwritten by a Secure one.
  const mustBeSecure = secure || name.startsWith('__Host-');
  return `${name}=${cookieAttributes(0, mustBeSecure, scope)}`;
}

export interface ChunkedCookieOptions extends CookieScope {
  /** The configured cookie name, without prefix (e.g. `_eoa`). */
  readonly name: string;
  /** Most chunks read or written. Default 12 (about 45 KB). */
  readonly maxChunks?: number;
}

const CHUNK_SUFFIX = /^\.(\d{1,2})$/;

/**
 * One logical cookie stored as `name` or as `name.0`, `name.1`, …. Writing returns the lines
 * for the new value plus expiry lines for every part the request carried that is now stale.
 */
export class ChunkedCookie {
  readonly #name: string;
  /** The `__Host-` form of the name, built once: `#owns` runs for every cookie of a request. */
  readonly #hostName: string;
  readonly #scope: CookieScope;
  /** Longest `set-cookie` line, in bytes, before the value is split. */
  readonly #maxLineBytes = 3_800;
  readonly #maxChunks: number;

  constructor(options: ChunkedCookieOptions) {
    this.#name = options.name;
    this.#hostName = `__Host-${options.name}`;
    this.#scope = options;
    this.#maxChunks = options.maxChunks ?? 12;
  }

  /** The base name the request carries for this security mode. */
  nameFor(secure: boolean): string {
    return prefixedName(this.#name, secure, this.#scope);
  }

  /** Reassembles the value from the request's cookies; `undefined` when absent or incomplete. */
  read(cookies: ReadonlyMap<string, string>, secure: boolean): string | undefined {
    const base = this.nameFor(secure);
    const whole = cookies.get(base);
    if (whole !== undefined && whole !== '') return whole;
    const first = cookies.get(`${base}.0`);
    if (first === undefined || first === '') return undefined;
    let value = first;
    for (let i = 1; i < this.#maxChunks; i++) {
      const chunk = cookies.get(`${base}.${i}`);
      if (chunk === undefined || chunk === '') break;
      value += chunk;
    }
    return value;
  }

  /**
   * The names, among the request's cookies, that belong to this cookie in either security mode
   * (whole or chunk), so they can be stripped before the request goes upstream.
   */
  presentNames(cookies: ReadonlyMap<string, string>): string[] {
    const names: string[] = [];
    for (const name of cookies.keys()) if (this.#owns(name)) names.push(name);
    return names;
  }

  #owns(name: string): boolean {
    return this.#isPart(name, this.#name) || this.#isPart(name, this.#hostName);
  }

  #isPart(name: string, base: string): boolean {
    if (name === base) return true;
    return name.startsWith(base) && CHUNK_SUFFIX.test(name.slice(base.length));
  }

  /** The longest value {@link ChunkedCookie.write} can store, in characters. */
  capacity(maxAgeSeconds: number, secure: boolean): number {
    const attributes = cookieAttributes(maxAgeSeconds, secure, this.#scope);
    const room = this.#maxLineBytes - Buffer.byteLength(`${this.nameFor(secure)}.00=${attributes}`);
    return Math.max(0, room) * this.#maxChunks;
  }

  /**
   * `set-cookie` lines storing `value` (cookie-safe characters only) for `maxAgeSeconds`, plus
   * expiry lines for the parts of the old value that the new one no longer uses.
   *
   * @throws RangeError when the value would need more than `maxChunks` chunks.
   */
  write(
    value: string,
    maxAgeSeconds: number,
    cookies: ReadonlyMap<string, string>,
    secure: boolean,
  ): string[] {
    const base = this.nameFor(secure);
    const attributes = cookieAttributes(maxAgeSeconds, secure, this.#scope);
    const written = new Set<string>();
    const lines: string[] = [];
    if (Buffer.byteLength(`${base}=${value}${attributes}`) <= this.#maxLineBytes) {
      lines.push(`${base}=${value}${attributes}`);
      written.add(base);
    } else {
      // Room for the longest chunk name (two-digit index) keeps every line under the limit.
      const room = this.#maxLineBytes - Buffer.byteLength(`${base}.00=${attributes}`);
      const count = Math.ceil(value.length / room);
      if (room <= 0 || count > this.#maxChunks) {
        throw new RangeError(`cookie value needs more than ${this.#maxChunks} chunks`);
      }
      for (let i = 0; i < count; i++) {
        const name = `${base}.${i}`;
        lines.push(`${name}=${value.slice(i * room, (i + 1) * room)}${attributes}`);
        written.add(name);
      }
    }
    for (const name of this.presentNames(cookies)) {
      if (!written.has(name)) lines.push(expireCookie(name, secure, this.#scope));
    }
    return lines;
  }

  /** Expiry lines for every part of this cookie the request carries. */
  clear(cookies: ReadonlyMap<string, string>, secure: boolean): string[] {
    return this.presentNames(cookies).map((name) => expireCookie(name, secure, this.#scope));
  }
}
