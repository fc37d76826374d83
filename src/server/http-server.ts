/** The HTTP ext_authz listener (Envoy `http_service`, Istio `envoyExtAuthzHttp`), ENVOY.md §4. */
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Authorizer } from '../authz/authorizer.ts';
import type { RawRequest } from '../authz/parse-request.ts';
import type { HeaderPair, Verdict } from '../authz/verdict.ts';
import type { Logger } from '../observability/logger.ts';

/** Header listing upstream headers Envoy must remove on allow. */
export const headersToRemoveHeader = 'x-envoy-auth-headers-to-remove';

const maxBodyBytes = 64 * 1024;

/** A reply made without the ext_authz pipeline. */
export interface DirectReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/**
 * Endpoints the provider calls straight on this listener (back-channel logout), when it cannot
 * reach them through Envoy. `undefined` hands the request on to the ext_authz pipeline.
 */
export type DirectRoute = (request: {
  readonly method: string;
  readonly path: string;
  readonly body: string;
}) => Promise<DirectReply | undefined>;

export interface HttpServerDeps {
  readonly authorizer: Authorizer;
  readonly logger: Logger;
  /** The `path_prefix` configured in Envoy, stripped from every request path. */
  readonly pathPrefix: string;
  readonly direct?: DirectRoute;
}

/**
 * Envoy sends the original method and `path_prefix + :path`, the allowed headers and the
 * body when buffered. Without `x-forwarded-proto` among them the scheme is taken as https,
 * the scheme of every production deployment.
 */
function rawRequestFromHttp(req: IncomingMessage, body: string, pathPrefix: string): RawRequest {
  const url = req.url ?? '';
  const path =
    pathPrefix !== '' && url.startsWith(pathPrefix) ? url.slice(pathPrefix.length) || '/' : url;
  const headers: [string, string][] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name !== 'host' && name !== 'content-length') headers.push([name, raw[i + 1]!]);
  }
  const forwardedProto = req.headers['x-forwarded-proto'];
  return {
    id: typeof req.headers['x-request-id'] === 'string' ? req.headers['x-request-id'] : '',
    method: req.method ?? '',
    path,
    authority: req.headers.host ?? '',
    scheme: typeof forwardedProto === 'string' ? forwardedProto.split(',', 1)[0]!.trim() : 'https',
    headers,
    peerAddress: req.socket.remoteAddress ?? '',
    contextExtensions: [],
    body,
  };
}

/** Headers as Node writes them: repeated names (every `set-cookie`) become arrays. */
function outgoing(
  pairs: readonly HeaderPair[],
  into: OutgoingHttpHeaders = {},
): OutgoingHttpHeaders {
  for (const [name, value] of pairs) {
    const previous = into[name];
    if (previous === undefined) into[name] = value;
    else into[name] = Array.isArray(previous) ? [...previous, value] : [String(previous), value];
  }
  return into;
}

function writeVerdict(res: ServerResponse, verdict: Verdict): void {
  switch (verdict.kind) {
    case 'allow': {
      const headers = outgoing(verdict.upstreamHeaders);
      outgoing(verdict.responseHeaders, headers);
      if (verdict.removeHeaders.length > 0)
        headers[headersToRemoveHeader] = verdict.removeHeaders.join(', ');
      headers['content-length'] = '0';
      res.writeHead(200, headers).end();
      return;
    }
    case 'deny': {
      const headers = outgoing(verdict.headers);
      headers['content-length'] = String(Buffer.byteLength(verdict.body));
      res.writeHead(verdict.status, headers).end(verdict.body);
      return;
    }
  }
}

export function createHttpServer(deps: HttpServerDeps): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBodyBytes) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > maxBodyBytes) {
        res.writeHead(413, { 'content-type': 'text/plain' }).end('request body too large\n');
        return;
      }
      const body = Buffer.concat(chunks).toString('utf8');
      const failed = (): void => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('no decision could be made\n');
      };
      const decide = (): Promise<void> | undefined => {
        const outcome = deps.authorizer.decide(rawRequestFromHttp(req, body, deps.pathPrefix));
        if (outcome instanceof Promise) {
          return outcome.then(({ verdict }) => writeVerdict(res, verdict), failed);
        }
        writeVerdict(res, outcome.verdict);
        return undefined;
      };
      if (deps.direct === undefined) {
        void decide();
        return;
      }
      const path = (req.url ?? '/').split('?', 1)[0]!;
      deps.direct({ method: req.method ?? '', path, body }).then((reply) => {
        if (reply === undefined) return decide();
        res.writeHead(reply.status, reply.headers).end(reply.body);
        return undefined;
      }, failed);
    });
    req.on('error', (error) => deps.logger.debug({ err: error }, 'http ext_authz request aborted'));
  });
}
