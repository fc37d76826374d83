/** Outbound HTTP to an OpenID Provider: a per-request timeout, opt-in TLS bypass, transport failures marked. */
import { Agent, request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { IdpTransportError } from './oidc-errors.ts';

/** The request shapes `openid-client` and `jose` hand to a custom fetch. */
export interface IdpFetchInit {
  readonly method: string;
  readonly headers?: Headers | Record<string, string>;
  readonly body?:
    ArrayBuffer | null | ReadableStream | string | Uint8Array | URLSearchParams | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly redirect?: 'manual';
}

/** A fetch for provider calls; rejects with {@link IdpTransportError} on network failure or timeout. */
export type IdpFetch = (url: string, init: IdpFetchInit) => Promise<Response>;

export interface IdpFetchOptions {
  /** Per-request deadline covering connect, headers and body, in milliseconds. */
  readonly timeoutMs: number;
  /** Accept any TLS certificate. For test rigs only; the caller logs it. */
  readonly tlsInsecureSkipVerify: boolean;
}

function isTimeout(err: unknown): boolean {
  return err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError');
}

function toBuffer(body: IdpFetchInit['body']): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof URLSearchParams) return Buffer.from(body.toString());
  if (body instanceof Uint8Array) return Buffer.from(body);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  throw new TypeError('streaming request bodies are not supported');
}

function toHeaders(raw: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return headers;
}

/**
 * HTTPS without certificate verification. Node's built-in fetch has no per-call switch for it
 * (its dispatcher classes are not exposed on Node 20), so this one path goes through node:https.
 */
function createUnverifiedHttpsFetch(): IdpFetch {
  const agent = new Agent({ rejectUnauthorized: false, keepAlive: true });
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const body = toBuffer(init.body);
      const headers = Object.fromEntries(new Headers(init.headers).entries());
      if (body !== undefined) headers['content-length'] = String(body.length);
      const req = httpsRequest(
        url,
        { method: init.method, headers, agent, ...(init.signal ? { signal: init.signal } : {}) },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            const status = res.statusCode ?? 502;
            const nullBody = status === 204 || status === 304 || init.method === 'HEAD';
            resolve(
              new Response(nullBody ? null : Buffer.concat(chunks), {
                status,
                headers: toHeaders(res.headers),
              }),
            );
          });
        },
      );
      req.on('error', (err) => {
        const reason: unknown = init.signal?.aborted ? init.signal.reason : undefined;
        reject(reason instanceof Error ? reason : err);
      });
      req.end(body);
    });
}

/**
 * Builds the fetch used for every provider call. The deadline is combined with any signal the
 * library passes; failures to get a response become {@link IdpTransportError}.
 */
export function createIdpFetch(options: IdpFetchOptions): IdpFetch {
  const unverified = options.tlsInsecureSkipVerify ? createUnverifiedHttpsFetch() : undefined;
  return async (url, init) => {
    const deadline = AbortSignal.timeout(options.timeoutMs);
    const signal = init.signal === undefined ? deadline : AbortSignal.any([init.signal, deadline]);
    const call = { ...init, signal };
    try {
      if (unverified !== undefined && url.startsWith('https:')) return await unverified(url, call);
      return await fetch(url, call as RequestInit);
    } catch (err) {
      throw new IdpTransportError(isTimeout(err) ? 'timeout' : 'network', { cause: err });
    }
  };
}
