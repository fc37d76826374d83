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
 * (within about a second), the next write goes through. No timer: the writes themselves probe.
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
