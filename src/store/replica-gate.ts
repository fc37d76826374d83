/** With `replicaAcks`: refuses writes at once while too few replicas would confirm them, and lets them through again as soon as enough do. */
import type { Logger } from '../observability/logger.ts';

/** Why the gate refused a write; the backend turns it into its `REDIS_NOT_REPLICATED` error. */
export class ShortOfReplicasError extends Error {
  constructor(op: string, acknowledged: number, required: number) {
    super(
      `redis ${op}: ${acknowledged} of ${required} required replicas hold the writes; ` +
        'writes are refused until enough replicas return',
    );
    this.name = 'ShortOfReplicasError';
  }
}

/** What {@link createReplicaGate} is built with. */
export interface ReplicaGateOptions {
  /** Replicas that must confirm a write (`replicaAcks.replicas`). */
  readonly required: number;
  /** How long a write's `WAIT` waits (`replicaAcks.timeoutMs`), for the log line. */
  readonly timeoutMs: number;
  /**
   * Replicas that hold everything this connection wrote so far, asked without blocking
   * (`WAIT 0 0`): no write is sent and nothing waits. It counts what replicas last reported
   * (they report every second), so it may lag by that much, never overstate.
   */
  readonly acknowledged: () => Promise<number>;
  /**
   * An active check, run in the background while short (at most every {@link confirmEveryMs}):
   * replicas that confirm a small write of its own, on a connection of its own, within a short
   * `WAIT` — which asks replicas for their offset at once instead of waiting for their
   * once-a-second report. Its answer lets the next write through as soon as a replica is back.
   */
  readonly confirm?: () => Promise<number>;
  /** Least time between two {@link confirm} checks, ms; default 250. */
  readonly confirmEveryMs?: number;
  readonly log: Logger;
}

/** Sits in front of every replica-acknowledged write. */
export interface ReplicaGate {
  /**
   * Resolves when the write may be sent: at once unless the last write came back short. After
   * that, asks first and rejects with {@link ShortOfReplicasError} (one non-blocking round trip)
   * while too few replicas hold the writes, so the refused write is not applied on the master
   * either. Rejects with the probe's own error when it failed.
   */
  admit(op: string): Promise<void>;
  /** Tells the gate how many replicas confirmed a write that was sent. */
  settled(acknowledged: number): void;
}

/**
 * Why a gate: Redis `WAIT` alone makes every write wait its full timeout while no replica is
 * there (a promoted master with none left, the only replica killed), and applies each write on
 * the master without confirming it. Once one write came back short, the gate asks the master
 * (without blocking) how many replicas hold this connection's writes before sending the next:
 * while short, writes fail in one round trip; once a replica returned, caught up and reported
 * (within about a second), the next write goes through. No timer: the writes themselves probe,
 * and while short they also start, at most every 250 ms, an active check on a connection of its
 * own (`confirm`), which sees a replica back in sync within a few ms of it.
 * The state outlives reconnections: on a new master, the probe answers for the new connection.
 *
 * Logs one warning when writes start being refused (how many replicas acknowledged, how many are
 * required) and one line when they are acknowledged again; never a key or value.
 */
export function createReplicaGate(options: ReplicaGateOptions): ReplicaGate {
  const { required, log } = options;
  let state: 'enough' | 'short' = 'enough';
  let shortSince = 0;
  let probe: Promise<number> | undefined;
  let confirming = false;
  let confirmedAt = -Infinity;
  const confirmEveryMs = options.confirmEveryMs ?? 250;

  /** A check asked for while one ran, or too soon after one: run once allowed. */
  let later: NodeJS.Timeout | undefined;

  /**
   * Starts the active check now, or once the one running ends or `confirmEveryMs` since the last
   * has passed (one timer at most, unref'd); nothing once the gate is open again.
   */
  const confirmSoon = (): void => {
    const confirm = options.confirm;
    if (confirm === undefined || state === 'enough' || later !== undefined) return;
    const waitMs = confirming ? confirmEveryMs : confirmEveryMs - (performance.now() - confirmedAt);
    if (confirming || waitMs > 0) {
      later = setTimeout(
        () => {
          later = undefined;
          confirmSoon();
        },
        Math.max(waitMs, 1),
      );
      later.unref();
      return;
    }
    confirming = true;
    confirmedAt = performance.now();
    confirm()
      .then((confirmed) => {
        if (confirmed >= required && state === 'short') enough();
      })
      // A failed check says nothing new: the writes go on asking.
      .catch(() => undefined)
      .finally(() => {
        confirming = false;
      });
  };

  const enough = (): void => {
    if (state === 'short') {
      log.info(
        { required, shortForMs: Date.now() - shortSince },
        'replicas acknowledge writes again',
      );
    }
    state = 'enough';
  };
  const short = (acknowledged: number): void => {
    if (state !== 'short') {
      shortSince = Date.now();
      log.warn(
        { acknowledged, required, waitTimeoutMs: options.timeoutMs },
        `writes refused: ${acknowledged} of ${required} required replicas acknowledged; ` +
          'refusing writes until enough replicas hold them',
      );
    }
    state = 'short';
    // Every refusal asks for the active check; it runs at most every `confirmEveryMs`.
    confirmSoon();
  };

  return {
    async admit(op) {
      if (state === 'enough') return;
      // Concurrent writes share one probe.
      probe ??= options.acknowledged().finally(() => {
        probe = undefined;
      });
      const acknowledged = await probe;
      if (acknowledged >= required) {
        enough();
        return;
      }
      short(acknowledged);
      throw new ShortOfReplicasError(op, acknowledged, required);
    },
    settled(acknowledged) {
      if (acknowledged >= required) enough();
      else short(acknowledged);
    },
  };
}
