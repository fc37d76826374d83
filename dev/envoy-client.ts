/** An Envoy-like ext_authz caller (Envoy 1.31–1.36): normalises a request, asks, and applies the answer. */
import { randomBytes, randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import {
  loadUpstreamProtos,
  type UpstreamCheckRequest,
  type UpstreamCheckResponse,
  type UpstreamHeaderValueOption,
  type UpstreamHttpRequest,
  type UpstreamProtos,
} from './upstream-protos.ts';

/** The HTTP request a client sends to Envoy. */
export interface DownstreamRequest {
  /** Default `GET`. */
  readonly method?: string;
  /** Absolute: `scheme://authority/path?query`. The path is kept raw (no normalisation). */
  readonly url: string;
  /** Header lines as the client sends them; a `host` line overrides the URL's authority. */
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  readonly body?: string;
  /** Default `HTTP/1.1`; also `HTTP/1.0`, `HTTP/2`, `HTTP/3`. */
  readonly protocol?: string;
  /** The direct TCP peer. Default `127.0.0.1`. */
  readonly sourceAddress?: string;
  /** Default: a random ephemeral port. */
  readonly sourcePort?: number;
  /** Peer certificate identity (`source.principal`), as on an mTLS connection. */
  readonly principal?: string;
  /** TLS SNI (`tls_session.sni`). */
  readonly sni?: string;
  /**
   * The client certificate (PEM) of an mTLS connection: sent URL-encoded in
   * `source.certificate`, as Envoy does with `include_peer_certificate: true`.
   */
  readonly certificate?: string;
}

/** The request after Envoy's connection manager: what the filter sees and forwards. */
export interface NormalisedRequest {
  readonly method: string;
  /** Raw path plus `?query`, as `:path`. */
  readonly path: string;
  /** `:authority`, port kept when the client sent one. */
  readonly authority: string;
  readonly scheme: string;
  readonly protocol: string;
  /** Lower-case names, pseudo-headers first, duplicates still separate lines. */
  readonly lines: ReadonlyArray<readonly [string, string]>;
  readonly body: string | undefined;
  /** `content-type: application/grpc*`: a deny becomes a trailers-only gRPC reply. */
  readonly isGrpc: boolean;
}

/** The request as forwarded to the upstream. */
export interface UpstreamRequest {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly scheme: string;
  /** Lower-case names, no pseudo-headers, duplicates joined with `,`. */
  readonly headers: Map<string, string>;
}

/** What the response from the authorization server (HTTP mode) looked like. */
export interface AuthzHttpResponse {
  readonly status: number;
  /** Values read from their bytes as UTF-8 (U+FFFD for bytes that are not). */
  readonly headers: Array<[string, string]>;
  readonly body: string;
}

/** The result of one check, as the downstream client and the upstream would experience it. */
export type Outcome =
  | {
      readonly kind: 'allow';
      /** The request as forwarded, after `ok_response` was applied in Envoy's order. */
      readonly upstream: UpstreamRequest;
      /** `response_headers_to_add` applied to an empty upstream response (see {@link applyResponseHeaders}). */
      readonly responseHeaders: Array<[string, string]>;
      /** The CheckResponse as Envoy's protos decode it (gRPC mode; absent when failed open). */
      readonly response?: UpstreamCheckResponse;
      /** HTTP mode: the authorization server's answer. */
      readonly authzResponse?: AuthzHttpResponse;
      /** Set when the check failed and `failureModeAllow` let the request through untouched. */
      readonly failedOpen?: Error;
    }
  | {
      readonly kind: 'deny';
      /** HTTP status of the local reply (default 403). For gRPC downstreams see `grpcStatus`. */
      readonly status: number;
      /**
       * The local reply's headers: Envoy's own `content-length`/`content-type: text/plain` for a
       * non-empty body (unless replaced), then every deny header without `append: true`, in
       * order; each `set-cookie` its own line.
       */
      readonly headers: Array<[string, string]>;
      readonly body: string;
      /** Only for gRPC downstreams: the trailers-only `grpc-status`. */
      readonly grpcStatus?: number;
      readonly response?: UpstreamCheckResponse;
      readonly authzResponse?: AuthzHttpResponse;
    }
  | {
      readonly kind: 'error';
      /** `statusOnError`. */
      readonly status: number;
      readonly error: Error;
      /** The gRPC status code of the failed call (gRPC mode). */
      readonly grpcCode?: number;
    };

/** Per-route settings (`check_settings`). */
export interface PerRouteSettings {
  /** Merged over the client's `contextExtensions`, route winning. */
  readonly contextExtensions?: Readonly<Record<string, string>>;
}

/** Filter settings of `envoy.filters.http.ext_authz` with a `grpc_service`. */
export interface EnvoyClientOptions {
  /** `host:port` of the gRPC listener. */
  readonly target: string;
  /** TLS towards the listener (an Envoy cluster with a TLS transport socket). Default none. */
  readonly credentials?: grpc.ChannelCredentials;
  /** Check deadline in ms. Default 200 (Envoy's default). */
  readonly timeoutMs?: number;
  /** Forward untouched when the call fails. Default false. */
  readonly failureModeAllow?: boolean;
  /** Status of the reply when the call fails. Default 403. */
  readonly statusOnError?: number;
  /** Virtual-host level `context_extensions`. */
  readonly contextExtensions?: Readonly<Record<string, string>>;
  /** `with_request_body`: send the body and its size. Default false. */
  readonly withRequestBody?: boolean;
  /** `with_request_body.pack_as_bytes`: body as `raw_body`. Default false. */
  readonly packAsBytes?: boolean;
  /** `encode_raw_headers`: `header_map` with raw values instead of `headers`. Default false. */
  readonly encodeRawHeaders?: boolean;
  /** Envoy's listener address. Default `127.0.0.1` and the URL's port. */
  readonly destinationAddress?: string;
  /** Parsed upstream protos to share between clients; loaded when absent. */
  readonly protos?: UpstreamProtos;
  /** Clock for `request.time`, ms since the epoch. Default `Date.now`. */
  readonly now?: () => number;
}

const pseudoOrder = [':authority', ':path', ':method', ':scheme'] as const;
const alwaysHopByHop = new Set(['keep-alive', 'proxy-connection', 'transfer-encoding']);

/** Splits an absolute URL without normalising its path, which Envoy forwards raw. */
function splitUrl(url: string): { scheme: string; authority: string; path: string } {
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)([^#]*)/.exec(url);
  if (match === null) throw new Error('DownstreamRequest.url must be absolute');
  const scheme = match[1]!.toLowerCase();
  const path = match[3]!;
  return {
    scheme: scheme === 'wss' ? 'https' : scheme === 'ws' ? 'http' : scheme,
    authority: match[2]!,
    path: path === '' ? '/' : path.startsWith('?') ? '/' + path : path,
  };
}

/**
 * What Envoy's connection manager does before any filter runs (ENVOY.md §6.1): lower-case
 * names, hop-by-hop headers gone (WebSocket upgrades keep `connection`/`upgrade`, as Envoy
 * forwards them), pseudo-headers set, `host` folded into `:authority`, `x-forwarded-proto` and
 * `x-request-id` added when absent.
 */
export function normaliseRequest(request: DownstreamRequest): NormalisedRequest {
  const { scheme, authority: urlAuthority, path } = splitUrl(request.url);
  const method = (request.method ?? 'GET').toUpperCase();
  const protocol = request.protocol ?? 'HTTP/1.1';
  const input = (request.headers ?? []).map(
    ([name, value]) => [name.toLowerCase(), value.trim()] as const,
  );

  const connectionTokens = new Set(
    input
      .filter(([name]) => name === 'connection')
      .flatMap(([, value]) => value.split(','))
      .map((token) => token.trim().toLowerCase())
      .filter((token) => token !== ''),
  );
  const isWebSocket =
    connectionTokens.has('upgrade') &&
    input.some(([name, value]) => name === 'upgrade' && value.toLowerCase() === 'websocket');

  let authority = urlAuthority;
  const lines: [string, string][] = [];
  for (const [name, value] of input) {
    if (name.startsWith(':')) continue;
    if (name === 'host') {
      authority = value;
      continue;
    }
    if (alwaysHopByHop.has(name)) continue;
    if (name === 'te' && value.toLowerCase() !== 'trailers') continue;
    if (!isWebSocket && (name === 'connection' || name === 'upgrade')) continue;
    if (!isWebSocket && connectionTokens.has(name)) continue;
    lines.push([name, value]);
  }
  if (request.body !== undefined && !lines.some(([name]) => name === 'content-length')) {
    lines.push(['content-length', String(Buffer.byteLength(request.body))]);
  }
  if (!lines.some(([name]) => name === 'x-forwarded-proto')) {
    lines.push(['x-forwarded-proto', scheme]);
  }
  if (!lines.some(([name]) => name === 'x-request-id')) {
    lines.push(['x-request-id', randomUUID()]);
  }
  const pseudo: Record<(typeof pseudoOrder)[number], string> = {
    ':authority': authority,
    ':path': path,
    ':method': method,
    ':scheme': scheme,
  };
  const contentType = lines.find(([name]) => name === 'content-type')?.[1] ?? '';
  return {
    method,
    path,
    authority,
    scheme,
    protocol,
    lines: [...pseudoOrder.map((name) => [name, pseudo[name]] as const), ...lines],
    body: request.body,
    isGrpc: contentType.toLowerCase().startsWith('application/grpc'),
  };
}

/**
 * Merges duplicate lines as Envoy does for the CheckRequest `headers` map: joined with `,`,
 * except `cookie` on HTTP/2 and HTTP/3, which the codec joins with `; ` (RFC 9113 §8.2.3).
 */
export function mergeHeaderLines(
  lines: ReadonlyArray<readonly [string, string]>,
  protocol = 'HTTP/1.1',
): Map<string, string> {
  const cookieSeparator = protocol === 'HTTP/2' || protocol === 'HTTP/3' ? '; ' : ',';
  const merged = new Map<string, string>();
  for (const [name, value] of lines) {
    const previous = merged.get(name);
    const separator = name === 'cookie' ? cookieSeparator : ',';
    merged.set(name, previous === undefined ? value : previous + separator + value);
  }
  return merged;
}

/** Envoy's HTTP → gRPC status mapping for local replies to gRPC downstreams. */
export function grpcStatusForHttpStatus(status: number): number {
  switch (status) {
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;
    default:
      return 2;
  }
}

function headerValueOf(option: UpstreamHeaderValueOption): string {
  const header = option.header;
  if (header === undefined) return '';
  if ((header.value === undefined || header.value === '') && header.raw_value !== undefined) {
    return header.raw_value.toString('utf8');
  }
  return header.value ?? '';
}

function keyOf(option: UpstreamHeaderValueOption): string {
  return (option.header?.key ?? '').toLowerCase();
}

function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Envoy's query rewrite: parse the raw query (no decoding), overwrite the keys to set, drop the
 * keys to remove, and rebuild with keys sorted (it keeps them in an ordered map).
 */
export function rewriteQuery(
  path: string,
  toSet: ReadonlyArray<{ key?: string; value?: string }>,
  toRemove: readonly string[],
): string {
  const queryAt = path.indexOf('?');
  const base = queryAt === -1 ? path : path.slice(0, queryAt);
  const params = new Map<string, string[]>();
  if (queryAt !== -1) {
    for (const part of path.slice(queryAt + 1).split('&')) {
      if (part === '') continue;
      const equals = part.indexOf('=');
      const key = equals === -1 ? part : part.slice(0, equals);
      const value = equals === -1 ? '' : part.slice(equals + 1);
      params.set(key, [...(params.get(key) ?? []), value]);
    }
  }
  for (const { key = '', value = '' } of toSet) params.set(key, [value]);
  for (const key of toRemove) params.delete(key);
  const keys = [...params.keys()].sort(compareBytes);
  const query = keys.flatMap((key) => params.get(key)!.map((value) => `${key}=${value}`));
  return query.length === 0 ? base : `${base}?${query.join('&')}`;
}

/**
 * Applies an `ok_response` to the request in Envoy's order (ENVOY.md §3): sets (append unset
 * or false) overwrite; `append: true` comma-appends only to a header already present; then
 * `headers_to_remove` (never pseudo-headers or `host`); then the query rewrite.
 */
export function applyOkResponse(
  request: NormalisedRequest,
  ok: UpstreamCheckResponse['ok_response'],
): UpstreamRequest {
  const all = mergeHeaderLines(request.lines, request.protocol);
  const options = ok?.headers ?? [];
  for (const option of options) {
    if (option.append?.value !== true) all.set(keyOf(option), headerValueOf(option));
  }
  for (const option of options) {
    if (option.append?.value !== true) continue;
    const key = keyOf(option);
    const existing = all.get(key);
    if (existing !== undefined) all.set(key, `${existing},${headerValueOf(option)}`);
  }
  for (const name of ok?.headers_to_remove ?? []) {
    const key = name.toLowerCase();
    if (!key.startsWith(':') && key !== 'host') all.delete(key);
  }
  // No fallback to the original values: a pseudo-header lost here must show in the outcome.
  let path = all.get(':path') ?? '';
  const toSet = ok?.query_parameters_to_set ?? [];
  const toRemove = ok?.query_parameters_to_remove ?? [];
  if (toSet.length > 0 || toRemove.length > 0) path = rewriteQuery(path, toSet, toRemove);

  const headers = new Map<string, string>();
  for (const [name, value] of all) if (!name.startsWith(':')) headers.set(name, value);
  return {
    method: all.get(':method') ?? '',
    path,
    authority: all.get(':authority') ?? '',
    scheme: all.get(':scheme') ?? '',
    headers,
  };
}

/**
 * Applies `response_headers_to_add` to an upstream response's header lines as Envoy 1.31–1.36
 * does: `append: true` or unset (or `append_action` APPEND_IF_EXISTS_OR_ADD) adds a line,
 * `append: false` (or OVERWRITE_IF_EXISTS_OR_ADD) replaces every line of that name,
 * ADD_IF_ABSENT and OVERWRITE_IF_EXISTS only act when the name is absent / present.
 */
export function applyResponseHeaders(
  base: ReadonlyArray<readonly [string, string]>,
  toAdd: readonly UpstreamHeaderValueOption[],
): Array<[string, string]> {
  const lines = base.map(([name, value]): [string, string] => [name.toLowerCase(), value]);
  const has = (key: string): boolean => lines.some(([name]) => name === key);
  const replace = (key: string, value: string): void => {
    const kept = lines.filter(([name]) => name !== key);
    lines.splice(0, lines.length, ...kept, [key, value]);
  };
  for (const option of toAdd) {
    const key = keyOf(option);
    const value = headerValueOf(option);
    const action =
      option.append !== undefined ? (option.append.value === true ? 0 : 2) : option.append_action;
    switch (action ?? 0) {
      case 1:
        if (!has(key)) lines.push([key, value]);
        break;
      case 2:
        replace(key, value);
        break;
      case 3:
        if (has(key)) replace(key, value);
        break;
      default:
        lines.push([key, value]);
    }
  }
  return lines;
}

/**
 * The local reply Envoy sends for a deny: its own `content-length` and `content-type:
 * text/plain` for a non-empty body, then each deny header name removed and every entry added
 * in order. `append: true` entries are dropped (Envoy <= 1.36).
 */
export function denyReplyHeaders(
  body: string,
  headers: ReadonlyArray<readonly [string, string]>,
): Array<[string, string]> {
  const names = new Set(headers.map(([name]) => name));
  const own: [string, string][] =
    body === ''
      ? []
      : [
          ['content-length', String(Buffer.byteLength(body))],
          ['content-type', 'text/plain'],
        ];
  return [
    ...own.filter(([name]) => !names.has(name)),
    ...headers.map(([n, v]): [string, string] => [n, v]),
  ];
}

function grpcStatusOfDeny(
  request: NormalisedRequest,
  status: number,
  headers: ReadonlyArray<readonly [string, string]>,
): { grpcStatus?: number } {
  if (!request.isGrpc) return {};
  const fromHeader = headers.find(([name]) => name === 'grpc-status')?.[1];
  const parsed = fromHeader === undefined ? Number.NaN : Number.parseInt(fromHeader, 10);
  return { grpcStatus: Number.isInteger(parsed) ? parsed : grpcStatusForHttpStatus(status) };
}

function untouched(request: NormalisedRequest): UpstreamRequest {
  return applyOkResponse(request, undefined);
}

function randomUint64(): string {
  return randomBytes(8).readBigUInt64BE().toString();
}

/** Calls `envoy.service.auth.v3.Authorization/Check` the way Envoy's ext_authz filter does. */
export class EnvoyClient {
  readonly #options: EnvoyClientOptions;
  readonly #client: grpc.Client;
  readonly #method: grpc.MethodDefinition<UpstreamCheckRequest, UpstreamCheckResponse>;
  readonly #now: () => number;

  constructor(options: EnvoyClientOptions) {
    this.#options = options;
    const protos = options.protos ?? loadUpstreamProtos();
    this.#now = options.now ?? Date.now;
    this.#client = new grpc.Client(
      options.target,
      options.credentials ?? grpc.credentials.createInsecure(),
    );
    this.#method = protos.AuthorizationClient.service['Check'] as grpc.MethodDefinition<
      UpstreamCheckRequest,
      UpstreamCheckResponse
    >;
  }

  /** The CheckRequest Envoy would send for this downstream request (ENVOY.md §6.2). */
  buildCheckRequest(
    request: NormalisedRequest,
    source: Pick<
      DownstreamRequest,
      'sourceAddress' | 'sourcePort' | 'principal' | 'sni' | 'certificate'
    > = {},
    perRoute: PerRouteSettings = {},
  ): UpstreamCheckRequest {
    const opts = this.#options;
    const lines: [string, string][] = request.lines.map(([n, v]) => [n, v]);
    const body = request.body ?? '';
    const http: UpstreamHttpRequest = {
      id: randomUint64(),
      method: request.method,
      path: request.path,
      host: request.authority,
      scheme: request.scheme,
      protocol: request.protocol,
    };
    if (opts.withRequestBody === true && body !== '') {
      lines.push(['x-envoy-auth-partial-body', 'false']);
      http.size = String(Buffer.byteLength(body));
      if (opts.packAsBytes === true) http.raw_body = Buffer.from(body);
      else http.body = body;
    }
    if (opts.encodeRawHeaders === true) {
      http.header_map = {
        headers: lines.map(([key, value]) => ({ key, raw_value: Buffer.from(value) })),
      };
    } else {
      http.headers = Object.fromEntries(mergeHeaderLines(lines, request.protocol));
    }
    const now = this.#now();
    const extensions = { ...opts.contextExtensions, ...perRoute.contextExtensions };
    const portMatch = /:(\d+)$/.exec(request.authority);
    const destinationPort = portMatch
      ? Number(portMatch[1])
      : request.scheme === 'https'
        ? 443
        : 80;
    return {
      attributes: {
        source: {
          address: {
            socket_address: {
              address: source.sourceAddress ?? '127.0.0.1',
              port_value: source.sourcePort ?? 32768 + Math.floor(Math.random() * 28000),
            },
          },
          ...(source.principal === undefined ? {} : { principal: source.principal }),
          ...(source.certificate === undefined
            ? {}
            : { certificate: encodeURIComponent(source.certificate) }),
        },
        destination: {
          address: {
            socket_address: {
              address: opts.destinationAddress ?? '127.0.0.1',
              port_value: destinationPort,
            },
          },
        },
        request: {
          time: { seconds: String(Math.floor(now / 1000)), nanos: (now % 1000) * 1_000_000 },
          http,
        },
        ...(Object.keys(extensions).length === 0 ? {} : { context_extensions: extensions }),
        ...(source.sni === undefined ? {} : { tls_session: { sni: source.sni } }),
      },
    };
  }

  /** Sends a CheckRequest as given, with the configured deadline. Never rejects. */
  checkRaw(
    request: UpstreamCheckRequest,
  ): Promise<{ response?: UpstreamCheckResponse; error?: grpc.ServiceError }> {
    const deadline = Date.now() + (this.#options.timeoutMs ?? 200);
    return new Promise((resolve) => {
      this.#client.makeUnaryRequest(
        this.#method.path,
        this.#method.requestSerialize,
        this.#method.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline },
        (error, response) => {
          if (error) resolve({ error });
          else if (response === undefined) resolve({ response: {} });
          else resolve({ response });
        },
      );
    });
  }

  /** Runs one downstream request through the filter and says what the client would get. */
  async check(request: DownstreamRequest, perRoute: PerRouteSettings = {}): Promise<Outcome> {
    const normalised = normaliseRequest(request);
    const result = await this.checkRaw(this.buildCheckRequest(normalised, request, perRoute));
    if (result.error !== undefined) {
      if (this.#options.failureModeAllow === true) {
        return {
          kind: 'allow',
          upstream: untouched(normalised),
          responseHeaders: [],
          failedOpen: result.error,
        };
      }
      return {
        kind: 'error',
        status: this.#options.statusOnError ?? 403,
        error: result.error,
        grpcCode: result.error.code,
      };
    }
    const response = result.response ?? {};
    if ((response.status?.code ?? 0) === 0) {
      return {
        kind: 'allow',
        upstream: applyOkResponse(normalised, response.ok_response),
        responseHeaders: applyResponseHeaders(
          [],
          response.ok_response?.response_headers_to_add ?? [],
        ),
        response,
      };
    }
    const denied = response.denied_response;
    const status = denied?.status?.code || 403;
    const body = denied?.body ?? '';
    const kept = (denied?.headers ?? [])
      .filter((option) => option.append?.value !== true)
      .map((option): [string, string] => [keyOf(option), headerValueOf(option)]);
    const headers = denyReplyHeaders(body, kept);
    return {
      kind: 'deny',
      status,
      headers,
      body,
      ...grpcStatusOfDeny(normalised, status, headers),
      response,
    };
  }

  close(): void {
    this.#client.close();
  }
}

/**
 * One entry of an Envoy `ListStringMatcher` over header names: a plain string or `{ exact }`
 * matches that name, `{ prefix }` every name starting with it (case-insensitive, as Envoy's
 * lower-case header names make it).
 */
export type HeaderPattern = string | { readonly exact: string } | { readonly prefix: string };

/** Settings of `envoy.filters.http.ext_authz` with an `http_service` (Istio `envoyExtAuthzHttp`). */
export interface HttpModeClientOptions {
  /** `http://host:port` of the HTTP ext_authz listener. */
  readonly baseUrl: string;
  /** Prepended to the original `:path`. Default `''`. */
  readonly pathPrefix?: string;
  /** Request headers sent besides `authorization`, `:method`, `:path`, `:authority` (e.g. `cookie`). */
  readonly allowedHeaders?: readonly HeaderPattern[];
  /** Answer headers (on 200) that overwrite upstream request headers. */
  readonly allowedUpstreamHeaders?: readonly HeaderPattern[];
  /** Answer headers (on 200) appended to upstream request headers. */
  readonly allowedUpstreamHeadersToAppend?: readonly HeaderPattern[];
  /** Answer headers (on 200) sent to the client, e.g. a renewed `set-cookie`. */
  readonly allowedClientHeadersOnSuccess?: readonly HeaderPattern[];
  /** Answer headers sent to the client on deny. Default: all of them. */
  readonly allowedClientHeaders?: readonly HeaderPattern[];
  /** Default 200 ms. */
  readonly timeoutMs?: number;
  readonly failureModeAllow?: boolean;
  /** Default 403. */
  readonly statusOnError?: number;
}

// Never copied from the authorization server's answer: they describe that connection only.
const answerHopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
]);
// Envoy adds these to a configured allowed_client_headers list by itself.
const alwaysToClientOnDeny = ['content-length', 'www-authenticate', 'location'];

/** Envoy's default limit on the header block of an upstream's (here: the check's) response. */
const envoyMaxResponseHeaderBytes = 60 * 1024;

/** Calls the HTTP ext_authz listener the way Envoy's `http_service` mode does (ENVOY.md §4). */
export class HttpModeClient {
  readonly #options: HttpModeClientOptions;
  readonly #agent = new http.Agent({ keepAlive: true });

  constructor(options: HttpModeClientOptions) {
    this.#options = options;
  }

  /** Runs one downstream request through the filter and says what the client would get. */
  async check(request: DownstreamRequest): Promise<Outcome> {
    const opts = this.#options;
    const normalised = normaliseRequest(request);
    const merged = mergeHeaderLines(normalised.lines, normalised.protocol);
    const allowed = matcher(['authorization', ...(opts.allowedHeaders ?? [])]);
    const headers: Record<string, string> = { host: normalised.authority, 'content-length': '0' };
    for (const [name, value] of merged) {
      if (!name.startsWith(':') && allowed.has(name)) headers[name] = asBytes(value);
    }

    let answer: AuthzHttpResponse;
    try {
      answer = await this.#send(
        normalised.method,
        asBytes((opts.pathPrefix ?? '') + normalised.path),
        headers,
      );
    } catch (error) {
      return this.#errorPath(normalised, error as Error);
    }
    if (answer.status >= 500) {
      return this.#errorPath(
        normalised,
        new Error(`authorization server answered ${answer.status}`),
      );
    }

    if (answer.status === 200) {
      const setNames = matcher(opts.allowedUpstreamHeaders ?? []);
      const appendNames = matcher(opts.allowedUpstreamHeadersToAppend ?? []);
      const clientNames = matcher(opts.allowedClientHeadersOnSuccess ?? []);
      const options: UpstreamHeaderValueOption[] = [];
      const responseHeaders: [string, string][] = [];
      let toRemove: string[] = [];
      for (const [name, value] of answer.headers) {
        if (setNames.has(name))
          options.push({ header: { key: name, value }, append: { value: false } });
        if (appendNames.has(name))
          options.push({ header: { key: name, value }, append: { value: true } });
        if (clientNames.has(name)) responseHeaders.push([name, value]);
        if (name === 'x-envoy-auth-headers-to-remove') {
          toRemove = [
            ...toRemove,
            ...value
              .split(',')
              .map((n) => n.trim())
              .filter((n) => n !== ''),
          ];
        }
      }
      return {
        kind: 'allow',
        upstream: applyOkResponse(normalised, { headers: options, headers_to_remove: toRemove }),
        responseHeaders,
        authzResponse: answer,
      };
    }

    const clientNames =
      opts.allowedClientHeaders === undefined
        ? undefined
        : matcher([...opts.allowedClientHeaders, ...alwaysToClientOnDeny]);
    const passed = answer.headers.filter(
      ([name]) => !answerHopByHop.has(name) && (clientNames === undefined || clientNames.has(name)),
    );
    return {
      kind: 'deny',
      status: answer.status,
      headers: passed,
      body: answer.body,
      ...grpcStatusOfDeny(normalised, answer.status, passed),
      authzResponse: answer,
    };
  }

  close(): void {
    this.#agent.destroy();
  }

  #errorPath(request: NormalisedRequest, error: Error): Outcome {
    if (this.#options.failureModeAllow === true) {
      return {
        kind: 'allow',
        upstream: untouched(request),
        responseHeaders: [],
        failedOpen: error,
      };
    }
    return { kind: 'error', status: this.#options.statusOnError ?? 403, error };
  }

  #send(method: string, path: string, headers: Record<string, string>): Promise<AuthzHttpResponse> {
    const url = new URL(this.#options.baseUrl);
    return new Promise((resolve, reject) => {
      const outgoing = http.request(
        {
          host: url.hostname,
          port: url.port,
          method,
          path,
          headers,
          agent: this.#agent,
          signal: AbortSignal.timeout(this.#options.timeoutMs ?? 200),
          // Envoy reads up to 60 KiB of response headers (`max_response_headers_kb`), not 16.
          maxHeaderSize: envoyMaxResponseHeaderBytes,
        },
        (incoming) => {
          const chunks: Buffer[] = [];
          incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
          incoming.on('error', reject);
          incoming.on('end', () => {
            const lines: [string, string][] = [];
            const raw = incoming.rawHeaders;
            for (let i = 0; i + 1 < raw.length; i += 2) {
              lines.push([raw[i]!.toLowerCase(), fromBytes(raw[i + 1]!)]);
            }
            resolve({
              status: incoming.statusCode ?? 0,
              headers: lines,
              body: Buffer.concat(chunks).toString('utf8'),
            });
          });
        },
      );
      outgoing.on('error', reject);
      outgoing.end();
    });
  }
}

/**
 * A string as Node's `http` must be given it to send its UTF-8 bytes (Node writes header
 * strings as Latin-1, one byte per character): the bytes Envoy forwards.
 */
function asBytes(value: string): string {
  return /[\u0080-\uffff]/.test(value) ? Buffer.from(value, 'utf8').toString('latin1') : value;
}

/**
 * A header value Node read as Latin-1, read as the UTF-8 an upstream expects, so an HTTP-mode
 * outcome holds the same strings as a gRPC-mode one (where values are proto strings). Bytes
 * that are not UTF-8 read as U+FFFD, as such an upstream would see them.
 */
function fromBytes(value: string): string {
  // Not TextDecoder: by default it drops a leading BOM, which Envoy passes on.
  return /[\u0080-\u00ff]/.test(value) ? Buffer.from(value, 'latin1').toString('utf8') : value;
}

/** A `has` over lower-case names for a list of {@link HeaderPattern}s. */
function matcher(patterns: readonly HeaderPattern[]): { has(name: string): boolean } {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const pattern of patterns) {
    if (typeof pattern === 'string') exact.add(pattern.toLowerCase());
    else if ('exact' in pattern) exact.add(pattern.exact.toLowerCase());
    else prefixes.push(pattern.prefix.toLowerCase());
  }
  return {
    has: (name) => exact.has(name) || prefixes.some((prefix) => name.startsWith(prefix)),
  };
}
