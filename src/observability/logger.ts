/** JSON-lines logging. Tokens, cookies and secrets are never passed to a logger. */
import { pino } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** The logging surface the rest of the code depends on (pino's, narrowed). */
export interface Logger {
  readonly level: string;
  trace(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  fatal(obj: object, msg?: string): void;
  child(bindings: Record<string, string>): Logger;
  isLevelEnabled(level: string): boolean;
}

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Where lines go; stdout by default. */
  readonly destination?: NodeJS.WritableStream;
}

/**
 * Builds the process logger. Paths that could hold a credential are redacted as a second line
 * of defence; the first is never handing one to the logger.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'envoy-oidc-authz' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: [
          '*.authorization',
          '*.cookie',
          '*.token',
          '*.accessToken',
          '*.refreshToken',
          '*.idToken',
          '*.clientSecret',
          '*.secret',
          '*.password',
        ],
        censor: '[redacted]',
      },
    },
    options.destination ?? process.stdout,
  );
}

/** A logger that drops everything; for tests and tools. */
export function silentLogger(): Logger {
  return createLogger({ level: 'silent' });
}
