/** A real JSON-lines logger whose lines the test can read back. */
import { Writable } from 'node:stream';
import { createLogger, type Logger, type LogLevel } from '../../src/observability/logger.ts';

export interface CapturedLog {
  readonly logger: Logger;
  /** Every line written so far, parsed. */
  lines(): readonly Record<string, unknown>[];
  /** Lines whose `msg` matches. */
  matching(msg: RegExp): readonly Record<string, unknown>[];
  /** Everything written, as text (to check that nothing secret went out). */
  text(): string;
}

/** A logger at `level` (default `info`) writing into memory. */
export function captureLog(level: LogLevel = 'info'): CapturedLog {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger({ level, destination });
  const lines = (): Record<string, unknown>[] =>
    chunks
      .join('')
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return {
    logger,
    lines,
    matching: (msg) => lines().filter((line) => msg.test(String(line['msg']))),
    text: () => chunks.join(''),
  };
}
