/** A development gateway: asks the authorization server as Envoy's ext_authz filter does, then serves an in-process upstream. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  applyResponseHeaders,
  type DownstreamRequest,
  type EnvoyClient,
  type Outcome,
  type UpstreamRequest,
} from './envoy-client.ts';

/** What the upstream answers; header names lower-case, repeated names are separate lines. */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: string;
}

/** The upstream behind the gateway: gets the request as Envoy would forward it. */
export type UpstreamHandler = (request: UpstreamRequest) => UpstreamResponse;

/** Where the gateway sends requests: the ext_authz filter's settings and the upstream behind it. */
export interface DevRoute {
  /** The Envoy-like client calling the authorization server. */
  readonly envoy: EnvoyClient;
  /** The route's `check_settings.context_extensions`, e.g. `{ app: 'demo' }`. Default none. */
  readonly contextExtensions?: Readonly<Record<string, string>>;
  readonly upstream: UpstreamHandler;
}

export interface DevGatewayOptions {
  /** Address to listen on. Default `127.0.0.1`. */
  readonly host?: string;
  /** Port to listen on; 0 picks a free one. Default 8080. */
  readonly port?: number;
  /**
   * The route. A promise lets the gateway listen (and so know its own URL, the redirect URI)
   * before the authorization server exists; requests wait for it, and get 503 if it fails.
   */
  readonly route: DevRoute | Promise<DevRoute>;
  /** Largest request body read, in bytes; larger requests get 413. Default 1 MiB. */
  readonly maxBodyBytes?: number;
  /** Told about failed checks (never with header or cookie values). Default: ignored. */
  readonly onError?: (message: string) => void;
  /** Told the outcome of every check, with the request's method and target. Default: ignored. */
  readonly onCheck?: (request: { method: string; path: string }, outcome: Outcome) => void;
}

export interface DevGateway {
  /** `http://host:port`, without a trailing slash. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and drops open connections (browsers keep them alive). */
  close(): Promise<void>;
}

class BodyTooLarge extends Error {}

function readBody(request: IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new BodyTooLarge());
        request.resume();
        return;
      }
      chunks.push(chunk);
    });
    request.on('error', reject);
    request.on('end', () => resolve(size === 0 ? undefined : Buffer.concat(chunks).toString()));
  });
}

/** Header lines as sent, each its own pair (`rawHeaders` keeps duplicates and order). */
function headerLines(request: IncomingMessage): Array<[string, string]> {
  const lines: Array<[string, string]> = [];
  const raw = request.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) lines.push([raw[i] ?? '', raw[i + 1] ?? '']);
  return lines;
}

/** Writes a reply with each line of a repeated header (every `set-cookie`) kept separate. */
function reply(
  response: ServerResponse,
  status: number,
  headers: ReadonlyArray<readonly [string, string]>,
  body: string,
): void {
  const grouped = new Map<string, string[]>();
  for (const [name, value] of headers) {
    if (name === 'content-length' || name === 'transfer-encoding' || name === 'connection') {
      continue;
    }
    grouped.set(name, [...(grouped.get(name) ?? []), value]);
  }
  for (const [name, values] of grouped) response.setHeader(name, values);
  response.setHeader('content-length', Buffer.byteLength(body));
  response.writeHead(status);
  response.end(body);
}

function plain(response: ServerResponse, status: number, text: string): void {
  reply(response, status, [['content-type', 'text/plain; charset=utf-8']], text);
}

/**
 * Sends the outcome of a check to the client as Envoy would: a deny is the local reply with
 * the denied status, body and headers; an error is `status_on_error` with an empty body; an
 * allow goes to the upstream and its response gets `response_headers_to_add` (ENVOY.md §6).
 */
function deliver(
  outcome: Outcome,
  response: ServerResponse,
  upstream: UpstreamHandler,
  onError: (message: string) => void,
): void {
  switch (outcome.kind) {
    case 'deny':
      reply(response, outcome.status, outcome.headers, outcome.body);
      return;
    case 'error':
      onError(`check failed (gRPC code ${outcome.grpcCode ?? 'none'}): ${outcome.error.message}`);
      reply(response, outcome.status, [], '');
      return;
    case 'allow': {
      const answer = upstream(outcome.upstream);
      const headers = applyResponseHeaders(
        answer.headers,
        outcome.response?.ok_response?.response_headers_to_add ?? [],
      );
      reply(response, answer.status, headers, answer.body);
      return;
    }
  }
}

/**
 * Starts the gateway. Each request is normalised and checked with the Envoy-like client over
 * real gRPC, exactly as Envoy 1.31–1.36 would, so what a browser sees here is what it would
 * see behind Envoy.
 */
export async function startDevGateway(options: DevGatewayOptions): Promise<DevGateway> {
  const host = options.host ?? '127.0.0.1';
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const onError = options.onError ?? (() => undefined);
  const routed = Promise.resolve(options.route);
  // Keep an early rejection from surfacing as unhandled; requests see it when they await.
  routed.catch(() => undefined);

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    let body: string | undefined;
    try {
      body = await readBody(request, maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLarge) plain(response, 413, 'request body too large\n');
      else response.destroy();
      return;
    }
    const target = request.url ?? '/';
    if (!target.startsWith('/')) {
      plain(response, 400, 'only origin-form request targets are served\n');
      return;
    }
    let route: DevRoute;
    try {
      route = await routed;
    } catch {
      plain(response, 503, 'the authorization server did not start\n');
      return;
    }
    const downstream: DownstreamRequest = {
      method: request.method ?? 'GET',
      // The authority comes from the Host line, which normaliseRequest folds into :authority.
      url: `http://${host.includes(':') ? `[${host}]` : host}${target}`,
      headers: headerLines(request),
      protocol: `HTTP/${request.httpVersion}`,
      sourceAddress: request.socket.remoteAddress ?? '127.0.0.1',
      ...(request.socket.remotePort === undefined ? {} : { sourcePort: request.socket.remotePort }),
      ...(body === undefined ? {} : { body }),
    };
    const outcome = await route.envoy.check(
      downstream,
      route.contextExtensions === undefined ? {} : { contextExtensions: route.contextExtensions },
    );
    options.onCheck?.({ method: request.method ?? 'GET', path: target }, outcome);
    deliver(outcome, response, route.upstream, onError);
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      onError(`request failed: ${error instanceof Error ? error.message : String(error)}`);
      if (!response.headersSent) plain(response, 502, 'gateway error\n');
      else response.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
