/** The HTTP ext_authz listener (Envoy `http_service`, Istio `envoyExtAuthzHttp`), ENVOY.md §4. */
import { randomUUID } from 'node:crypto';
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TlsOptions } from 'node:tls';
import type { Authorizer, Outcome } from '../authz/authorizer.ts';
import type { RawRequest } from '../authz/parse-request.ts';
import type { HeaderPair, Verdict } from '../authz/verdict.ts';
import type { Logger } from '../observability/logger.ts';

/** Header listing upstream headers Envoy must remove on allow. */
const headersToRemoveHeader = 'x-envoy-auth-headers-to-remove';

const maxBodyBytes = 64 * 1024;

/**
 * What Node may read beyond the request's header bytes before answering 431 itself: the request
 * line and each line's `: ` and CRLF. The request model then applies `request.maxHeaderBytes`
 * (64 KiB by default) exactly as in gRPC mode, instead of Node's own 16 KiB.
 */
const requestLineAllowance = 16 * 1024;

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
  /** `x-request-id`, or empty. */
  readonly id: string;
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
  /** `request.maxHeaderBytes`, read once when the listener is made. */
  readonly maxHeaderBytes: number;
  /** TLS server options (`listen.tls`): HTTPS; default plain HTTP. */
  readonly tls?: TlsOptions | undefined;
}

/** Any character outside ASCII. */
const nonAscii = /[\u0080-\uffff]/;

/**
 * Node reads the request line and header values as Latin-1, one character per byte; the bytes
 * are UTF-8 (what Envoy's gRPC mode hands us as proto strings, ENVOY.md §2), so they are read
 * again as UTF-8 and both modes see the same request. Bytes that are not UTF-8 become U+FFFD
 * (gRPC mode: `!`); a leading BOM is kept, as it is in gRPC mode.
 */
function fromWire(value: string): string {
  return nonAscii.test(value) ? Buffer.from(value, 'latin1').toString('utf8') : value;
}

/**
 * A header value as Node must be given it: Node writes header strings as Latin-1 and refuses
 * characters above U+00FF (`ERR_INVALID_CHAR`), so a value with any non-ASCII character goes
 * as its UTF-8 bytes, one character per byte: the bytes gRPC mode sends for the same value.
 */
function toWire(value: string): string {
  return nonAscii.test(value) ? Buffer.from(value, 'utf8').toString('latin1') : value;
}

/**
 * Envoy sends the original method and `path_prefix + :path`, the allowed headers and the
 * body when buffered. Without `x-forwarded-proto` among them the scheme is taken as https,
 * the scheme of every production deployment.
 */
function rawRequestFromHttp(req: IncomingMessage, body: string, pathPrefix: string): RawRequest {
  const url = fromWire(req.url ?? '');
  const path =
    pathPrefix !== '' && url.startsWith(pathPrefix) ? url.slice(pathPrefix.length) || '/' : url;
  const headers: [string, string][] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name !== 'host' && name !== 'content-length') headers.push([name, fromWire(raw[i + 1]!)]);
  }
  const forwardedProto = req.headers['x-forwarded-proto'];
  return {
    id: typeof req.headers['x-request-id'] === 'string' ? req.headers['x-request-id'] : '',
    method: req.method ?? '',
    path,
    authority: fromWire(req.headers.host ?? ''),
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
  for (const [name, unicode] of pairs) {
    const value = toWire(unicode);
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
      // Envoy shows us only the allowed request headers: every identity header we do not set
      // is listed, present or not, so a forged copy never reaches the upstream.
      const identity = verdict.identityRemovals.joined;
      const seen = verdict.removeHeaders;
      const removals =
        seen.length === 0
          ? identity
          : identity === ''
            ? seen.join(', ')
            : `${seen.join(', ')}, ${identity}`;
      if (removals !== '') headers[headersToRemoveHeader] = removals;
      headers['content-length'] = '0';
      res.writeHead(200, headers).end();
      return;
    }
    case 'local_reply': {
      const headers = outgoing(verdict.headers);
      // Envoy's `http_service` reads exactly 200 as an allow (ENVOY.md §4): a provider logout
      // answered here with 200 would go on to the upstream, forged identity headers and all.
      // 204 is a deny that still tells the provider the logout succeeded (OIDC Back-Channel
      // Logout 1.0 §2.8 has providers accept it); those answers have no body.
      if (verdict.status === 200) {
        res.writeHead(204, headers).end();
        return;
      }
      headers['content-length'] = String(Buffer.byteLength(verdict.body));
      res.writeHead(verdict.status, headers).end(verdict.body);
      return;
    }
  }
}

/** The 500 Envoy reads as "no decision" (its `failure_mode_allow` / `status_on_error` apply). */
function answerNoDecision(res: ServerResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(500, { 'content-type': 'text/plain' }).end('no decision could be made\n');
}

/**
 * The listener. Every request is answered, whatever throws: a failure is logged once with the
 * request id and answered 500, Envoy's error path; the process never sees the exception.
 */
export function createHttpServer(deps: HttpServerDeps): Server {
  const { authorizer, logger } = deps;
  const maxHeaderSize = deps.maxHeaderBytes + requestLineAllowance;
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    let size = 0;
    // Envoy's HTTP client sends no deadline; a connection it closes ends the decision's steps.
    const caller = { deadline: undefined, gone: false };
    res.once('close', () => {
      caller.gone = true;
    });
    const id = req.headers['x-request-id'];
    const requestId = typeof id === 'string' ? id : '';
    const failed = (error: unknown): void => {
      logger.error(
        { err: error, requestId: requestId === '' ? randomUUID() : requestId },
        'http ext_authz request failed',
      );
      try {
        answerNoDecision(res);
      } catch {
        res.destroy();
      }
    };
    const write = (outcome: Outcome): void => {
      try {
        writeVerdict(res, outcome.verdict);
      } catch (error) {
        failed(error);
      }
    };
    // The authorizer logged why it could not decide: answer without a second line.
    const undecided = (): void => answerNoDecision(res);
    const decide = (body: string): void => {
      const outcome = authorizer.decide(rawRequestFromHttp(req, body, deps.pathPrefix), caller);
      if (outcome instanceof Promise) outcome.then(write, undecided).catch(failed);
      else write(outcome);
    };
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBodyBytes) chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        if (size > maxBodyBytes) {
          // A refusal like the request model's (authorizer.ts): one line, a fixed reason.
          logger.info({ requestId, reason: 'request body too large' }, 'request refused');
          res.writeHead(413, { 'content-type': 'text/plain' }).end('request body too large\n');
          return;
        }
        const body = Buffer.concat(chunks).toString('utf8');
        const direct = deps.direct;
        if (direct === undefined) {
          decide(body);
          return;
        }
        const path = (req.url ?? '/').split('?', 1)[0]!;
        direct({ id: requestId, method: req.method ?? '', path, body })
          .then((reply) => {
            if (reply === undefined) {
              decide(body);
              return;
            }
            res.writeHead(reply.status, outgoing(Object.entries(reply.headers))).end(reply.body);
          }, failed)
          .catch(failed);
      } catch (error) {
        failed(error);
      }
    });
    req.on('error', (error) =>
      logger.debug({ err: error, requestId }, 'http ext_authz request aborted'),
    );
  };
  return deps.tls === undefined
    ? createServer({ maxHeaderSize }, listener)
    : createHttpsServer({ ...deps.tls, maxHeaderSize }, listener);
}
