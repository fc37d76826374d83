/** An OTLP/HTTP (JSON) traces receiver on a free loopback port, for tests: keeps every span it is sent, or fails on purpose. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from './redis-servers.ts';

/** One received span, flattened: attributes by key (strings, and integers as numbers). */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly traceState: string | undefined;
  readonly name: string;
  readonly kind: number;
  readonly startTimeUnixNano: string;
  readonly endTimeUnixNano: string;
  readonly attributes: Readonly<Record<string, string | number>>;
  readonly status: { readonly code?: number; readonly message?: string };
  readonly serviceName: string | undefined;
}

/** How the receiver answers an export: take it, refuse it with 500, or hold it unanswered. */
export type ReceiverMode = 'ok' | 'fail' | 'hold';

export interface OtlpReceiver {
  /** `http://127.0.0.1:<port>/v1/traces`. */
  readonly endpoint: string;
  mode: ReceiverMode;
  /** Every span taken so far, in arrival order. */
  readonly spans: ReceivedSpan[];
  /** Every request body received (taken or not), as text. */
  readonly bodies: string[];
  /** The headers of each request received. */
  readonly requests: IncomingMessage['headers'][];
  /** Waits until a span matching `match` has been taken, and returns it. */
  span(what: string, match: (span: ReceivedSpan) => boolean): Promise<ReceivedSpan>;
  /** Answers every held export (with 500) and stops listening. */
  close(): Promise<void>;
}

interface OtlpValue {
  readonly stringValue?: string;
  readonly intValue?: string | number;
}

interface OtlpBody {
  readonly resourceSpans: readonly {
    readonly resource?: { readonly attributes?: readonly { key: string; value: OtlpValue }[] };
    readonly scopeSpans: readonly {
      readonly spans: readonly (Omit<ReceivedSpan, 'attributes' | 'serviceName'> & {
        readonly attributes?: readonly { key: string; value: OtlpValue }[];
      })[];
    }[];
  }[];
}

function flatten(
  attributes: readonly { key: string; value: OtlpValue }[] | undefined,
): Record<string, string | number> {
  const flat: Record<string, string | number> = {};
  for (const { key, value } of attributes ?? []) {
    flat[key] = value.stringValue ?? Number(value.intValue);
  }
  return flat;
}

/** Starts a receiver answering in `mode` (changeable later). */
export async function startOtlpReceiver(mode: ReceiverMode = 'ok'): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const bodies: string[] = [];
  const requests: IncomingMessage['headers'][] = [];
  const held: ServerResponse[] = [];
  const receiver = { mode };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      bodies.push(text);
      requests.push(req.headers);
      if (receiver.mode === 'hold') {
        held.push(res);
        return;
      }
      if (
        receiver.mode === 'fail' ||
        req.method !== 'POST' ||
        req.url !== '/v1/traces' ||
        req.headers['content-type'] !== 'application/json'
      ) {
        res.writeHead(500).end();
        return;
      }
      const body = JSON.parse(text) as OtlpBody;
      for (const resourceSpans of body.resourceSpans) {
        const service = flatten(resourceSpans.resource?.attributes)['service.name'];
        for (const scopeSpans of resourceSpans.scopeSpans) {
          for (const span of scopeSpans.spans) {
            spans.push({
              ...span,
              parentSpanId: span.parentSpanId,
              traceState: span.traceState,
              attributes: flatten(span.attributes),
              serviceName: typeof service === 'string' ? service : undefined,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}/v1/traces`,
    get mode() {
      return receiver.mode;
    },
    set mode(next: ReceiverMode) {
      receiver.mode = next;
    },
    spans,
    bodies,
    requests,
    async span(what, match) {
      await waitFor(what, () => spans.some(match), 10_000);
      return spans.find(match)!;
    },
    close() {
      for (const res of held.splice(0)) res.writeHead(500).end();
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
