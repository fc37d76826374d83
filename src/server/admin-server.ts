/** The admin listener: `/healthz` (alive), `/readyz` (ready to serve), `/metrics` (Prometheus). */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { HealthState } from './health-state.ts';

/**
 * The listener. Whatever throws while answering (a readiness probe, the metrics registry) is
 * logged once with the request id and answered 500; the process never sees the exception.
 */
export function createAdminServer(health: HealthState, metrics: Metrics, logger: Logger): Server {
  return createServer((req, res) => {
    const failed = (error: unknown): void => {
      const id = req.headers['x-request-id'];
      const requestId = typeof id === 'string' && id !== '' ? id : randomUUID();
      logger.error({ err: error, requestId, path: req.url }, 'admin request failed');
      if (res.headersSent) res.destroy();
      else res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
    };
    try {
      answer(req, res, health, metrics, failed);
    } catch (error) {
      failed(error);
    }
  });
}

function answer(
  req: IncomingMessage,
  res: ServerResponse,
  health: HealthState,
  metrics: Metrics,
  failed: (error: unknown) => void,
): void {
  const path = (req.url ?? '/').split('?', 1)[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  switch (path) {
    case '/healthz':
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    case '/readyz': {
      const waiting = health.waiting();
      const draining = health.isDraining();
      const ready = waiting.length === 0 && !draining;
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ready, draining, waiting }) + '\n');
      return;
    }
    case '/metrics':
      metrics.registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text);
        })
        .catch(failed);
      return;
    default:
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
}
