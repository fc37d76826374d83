/**
 * A TCP proxy in front of the provider that misbehaves on demand, as a network does: latency per
 * direction, connections accepted but never forwarded (a stall), connections dropped, and bytes
 * held back in one direction, then forwarded on release or dropped if their sender went away.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

/** A direction of the byte stream. */
export type Direction = 'requests' | 'responses';

interface Link {
  readonly client: Socket;
  /** Undefined while the connection is stalled. */
  upstream: Socket | undefined;
  readonly held: Record<Direction, Buffer[]>;
  /** The start of the last HTTP request sent on it (`POST /token HTTP/1.1`). */
  lastRequest: string;
}

const REQUEST_LINE = /^[A-Z]+ \S+ HTTP\/1\.1/;

export interface TcpProxy {
  readonly port: number;
  /** Adds `ms` to every chunk in `direction` (order kept); 0 removes it. */
  setLatency(direction: Direction, ms: number): void;
  /** New connections are accepted and then ignored; ending the stall drops them. */
  stall(on: boolean): void;
  /** New connections are accepted and closed at once (a provider that is down). */
  refuse(on: boolean): void;
  /** Destroys every open connection. */
  dropAll(): void;
  /**
   * Holds every chunk sent in `direction` from now on, on connections whose last HTTP request
   * starts with `request` (e.g. `POST /token `; default every connection). Held bytes whose
   * connection closes are dropped with it: they never reach the other end.
   */
  hold(direction: Direction, request?: string): void;
  /** Forwards what was held, in order, and stops holding. */
  release(): void;
  /** Connections with bytes held right now. */
  heldConnections(): number;
  /** The client-side ports of the connections with bytes held right now. */
  heldClientPorts(): number[];
  /** Connections whose held bytes were dropped because their sender went away. */
  droppedHeld(): number;
  close(): Promise<void>;
}

/** Listens on `port` (0: a free one) of 127.0.0.1 and forwards to `target`. */
export async function startTcpProxy(
  target: { host: string; port: number },
  port = 0,
): Promise<TcpProxy> {
  const links = new Set<Link>();
  const latency: Record<Direction, number> = { requests: 0, responses: 0 };
  let holding: { direction: Direction; request: string } | undefined;
  let stalled = false;
  let refusing = false;
  let dropped = 0;

  const destroy = (link: Link): void => {
    links.delete(link);
    link.client.destroy();
    link.upstream?.destroy();
  };

  /** Sends `chunk` on to `to`, after the direction's latency or once released. */
  const forward = (link: Link, direction: Direction, chunk: Buffer): void => {
    const to = direction === 'requests' ? link.upstream : link.client;
    if (direction === 'requests') {
      const start = chunk.subarray(0, 64).toString('latin1');
      if (REQUEST_LINE.test(start)) link.lastRequest = start;
    }
    const held = holding?.direction === direction && link.lastRequest.startsWith(holding.request);
    if (held || link.held[direction].length > 0) {
      link.held[direction].push(chunk);
      return;
    }
    if (latency[direction] === 0) to?.write(chunk);
    else setTimeout(() => to?.write(chunk), latency[direction]);
  };

  /**
   * A side closed: bytes still held on the connection die with it (they never arrive);
   * otherwise the other side is closed once the bytes in flight have had their latency.
   */
  const closed = (link: Link, from: Direction): void => {
    if (!links.has(link)) return;
    const held = link.held.requests.length + link.held.responses.length > 0;
    if (held) dropped += 1;
    links.delete(link);
    setTimeout(() => destroy(link), held ? 0 : latency[from]);
  };

  const server: Server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const link: Link = {
      client,
      upstream: undefined,
      held: { requests: [], responses: [] },
      lastRequest: '',
    };
    links.add(link);
    client.on('error', () => destroy(link));
    if (stalled) return;
    const upstream = connect(target.port, target.host);
    link.upstream = upstream;
    upstream.on('error', () => destroy(link));
    client.on('data', (chunk: Buffer) => forward(link, 'requests', chunk));
    upstream.on('data', (chunk: Buffer) => forward(link, 'responses', chunk));
    client.on('close', () => closed(link, 'requests'));
    upstream.on('close', () => closed(link, 'responses'));
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const listening = (server.address() as { port: number }).port;

  return {
    port: listening,
    setLatency(direction, ms) {
      latency[direction] = ms;
    },
    stall(on) {
      stalled = on;
      if (!on) for (const link of [...links]) if (link.upstream === undefined) destroy(link);
    },
    refuse(on) {
      refusing = on;
    },
    dropAll() {
      for (const link of [...links]) destroy(link);
    },
    hold(direction, request = '') {
      holding = { direction, request };
    },
    release() {
      holding = undefined;
      for (const link of links) {
        for (const direction of ['requests', 'responses'] as const) {
          const to = direction === 'requests' ? link.upstream : link.client;
          for (const chunk of link.held[direction].splice(0)) to?.write(chunk);
        }
      }
    },
    heldConnections: () =>
      [...links].filter((l) => l.held.requests.length + l.held.responses.length > 0).length,
    heldClientPorts: () =>
      [...links]
        .filter((l) => l.held.requests.length + l.held.responses.length > 0)
        .map((l) => l.client.remotePort ?? 0),
    droppedHeld: () => dropped,
    async close() {
      for (const link of [...links]) destroy(link);
      const done = once(server, 'close');
      server.close();
      await done;
    },
  };
}
