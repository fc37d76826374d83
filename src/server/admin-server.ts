/** The admin listener: `/healthz` (alive), `/readyz` (ready to serve), `/metrics` (Prometheus). */
import { createServer, type Server } from 'node:http';
import type { Metrics } from '../observability/metrics.ts';
import type { HealthState } from './health-state.ts';

export function createAdminServer(health: HealthState, metrics: Metrics): Server {
  return createServer((req, res) => {
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
        metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
          () => res.writeHead(500).end(),
        );
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
}
