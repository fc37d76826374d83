/** What kind of client sent a request: a browser navigation may be redirected, nothing else may. */
import type { RequestModel } from './request.ts';

/** True for gRPC and gRPC-Web callers, which understand only `grpc-status`. */
export function isGrpcCaller(request: RequestModel): boolean {
  return request.headers.get('content-type')?.startsWith('application/grpc') ?? false;
}

/** True when `Accept` ranks HTML (or XHTML) at least as high as anything else it lists. */
function prefersHtml(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  // What browsers send for a navigation: HTML first, without a weight, so nothing ranks higher.
  if (accept.startsWith('text/html,') || accept === 'text/html') return true;
  let html = 0;
  let best = 0;
  for (const range of accept.split(',')) {
    const [type = '', ...params] = range.split(';');
    let q = 1;
    for (const param of params) {
      const [key, value] = param.split('=');
      if (key?.trim().toLowerCase() === 'q') q = Number(value) || 0;
    }
    const media = type.trim().toLowerCase();
    if (media === 'text/html' || media === 'application/xhtml+xml') html = Math.max(html, q);
    best = Math.max(best, q);
  }
  return html > 0 && html >= best;
}

/**
 * A top-level browser navigation (SPEC §4.9): GET or HEAD, `Accept` naming HTML, not an XHR
 * (`X-Requested-With`), not a CORS fetch (`Sec-Fetch-Mode: cors`), not a WebSocket upgrade,
 * not gRPC. Only these are sent to log in; a 302 to anything else breaks the client.
 */
export function isBrowserNavigation(request: RequestModel): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false;
  if (!prefersHtml(request.headers.get('accept'))) return false;
  if (request.headers.has('x-requested-with')) return false;
  const mode = request.headers.get('sec-fetch-mode');
  if (mode !== undefined && mode !== 'navigate') return false;
  return request.headers.get('upgrade')?.toLowerCase() !== 'websocket' && !isGrpcCaller(request);
}
