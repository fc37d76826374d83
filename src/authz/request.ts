/** The request model: what the pipeline knows of one HTTP request, whichever transport brought it. */

export interface RequestModel {
  /** Envoy's stream id, for log correlation only. */
  readonly id: string;
  /** Upper-case method. */
  readonly method: string;
  readonly scheme: 'http' | 'https';
  /** Lower-case host name without port or trailing dot (see `src/policy/host-name.ts`). */
  readonly host: string;
  /** The port from `:authority`, when the client sent one. */
  readonly port: number | undefined;
  /** Raw path without the query string, not decoded. Always starts with `/`. */
  readonly path: string;
  /** Raw query string without `?`, empty when absent. */
  readonly query: string;
  /** Lower-case names; pseudo-headers (`:path`, …) are not in here. */
  readonly headers: ReadonlyMap<string, string>;
  /**
   * The names in `headers` holding `_`, usually none: CGI, WSGI, PHP, Rack and nginx fold them
   * into the `-` spelling, so they may pose as another header (see `identity-removals.ts`).
   */
  readonly underscoredHeaders: readonly string[];
  /** Cookies by name; the first occurrence of a name wins. */
  readonly cookies: ReadonlyMap<string, string>;
  /** The client address: the peer, or an `x-forwarded-for` entry through trusted hops. */
  readonly clientAddress: string;
  readonly contextExtensions: ReadonlyMap<string, string>;
  /** Buffered body when Envoy sent one (`with_request_body`), else empty. */
  readonly body: string;
  /**
   * URL-encoded PEM of the client certificate of the TLS connection Envoy terminated
   * (`source.certificate`, with `include_peer_certificate`); absent without one.
   */
  readonly peerCertificate?: string;
}

/** A request that could not be modelled; `reason` is short and safe to show. */
export interface MalformedRequest {
  readonly kind: 'malformed';
  readonly reason: string;
}
