/** The optional access log (`log.access`): one line per Check, sampled, nothing at all when off. */
import type { Logger } from './logger.ts';

/** Where the authorizer reports each finished Check. */
export interface AccessLog {
  /**
   * One finished Check. Positional, so that the Null object costs a call and no allocation.
   * @param latencyMs - from the Check's arrival to its verdict, milliseconds
   */
  record(
    requestId: string,
    app: string | undefined,
    verdict: string,
    reason: string,
    status: number,
    latencyMs: number,
  ): void;
}

/** `log.access`. */
export interface AccessLogOptions {
  readonly enabled: boolean;
  /** The share of Checks logged, 0..1. */
  readonly sampleRate: number;
}

/** The access log when it is off: the authorizer's only cost is this empty call. */
export const noAccessLog: AccessLog = Object.freeze({ record(): void {} });

/**
 * The access log `options` ask for, decided once: {@link noAccessLog} when off or sampling
 * nothing, else a logger of `info` lines (`random` draws the sample, `Math.random` by default).
 */
export function createAccessLog(
  options: AccessLogOptions,
  logger: Logger,
  random: () => number = Math.random,
): AccessLog {
  if (!options.enabled || options.sampleRate <= 0) return noAccessLog;
  const log = logger.child({ component: 'access' });
  const write = (
    requestId: string,
    app: string | undefined,
    verdict: string,
    reason: string,
    status: number,
    latencyMs: number,
  ): void => {
    log.info(
      { requestId, app: app ?? '-', verdict, reason, status, latencyMs: round(latencyMs) },
      'check',
    );
  };
  if (options.sampleRate >= 1) return { record: write };
  const rate = options.sampleRate;
  return {
    record(requestId, app, verdict, reason, status, latencyMs) {
      if (random() < rate) write(requestId, app, verdict, reason, status, latencyMs);
    },
  };
}

/** Milliseconds to three decimals: enough for a decision that took microseconds. */
function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
