/** Runs one Check end to end for any transport: parse, decide, translate failures, record. */
import { performance } from 'node:perf_hooks';
import { AuthzError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { parseRequest, type ParseOptions, type RawRequest } from './parse-request.ts';
import type { Pipeline } from './pipeline.ts';
import { jsonDeny, type Verdict } from './verdict.ts';

/** What a config (re)load builds; swapped whole so a Check never sees half of two configs. */
export interface Runtime {
  readonly pipeline: Pipeline;
  readonly parseOptions: ParseOptions;
}

/** A verdict and the name of the app that reached it (none when no app matched). */
export interface Outcome {
  readonly app: string | undefined;
  readonly verdict: Verdict;
}

export class Authorizer {
  #runtime: Runtime;
  readonly #metrics: Metrics;
  readonly #logger: Logger;

  constructor(runtime: Runtime, metrics: Metrics, logger: Logger) {
    this.#runtime = runtime;
    this.#metrics = metrics;
    this.#logger = logger;
  }

  /** Swaps in a new runtime; Checks already running finish on the old one. */
  replace(runtime: Runtime): void {
    this.#runtime = runtime;
  }

  /**
   * Decides one request. Rejects only when no decision could be made at all, so that the
   * transport can answer with an error and Envoy's `failure_mode_allow` applies.
   */
  async check(raw: RawRequest): Promise<Outcome> {
    const started = performance.now();
    this.#metrics.checkStarted();
    const runtime = this.#runtime;
    let app: string | undefined;
    let verdict: Verdict;
    try {
      const request = parseRequest(raw, runtime.parseOptions);
      if ('kind' in request) {
        verdict = jsonDeny('bad_request', 400, 'bad_request', request.reason);
      } else {
        const decision = await runtime.pipeline.decide(request);
        app = decision.app?.name;
        verdict = decision.verdict;
      }
    } catch (error) {
      if (!(error instanceof AuthzError)) {
        this.#metrics.checkAborted();
        this.#logger.error({ err: error, requestId: raw.id }, 'check failed without a decision');
        throw error;
      }
      verdict = verdictForError(error);
      this.#logger.warn(
        { code: error.code, detail: error.message, requestId: raw.id },
        'check denied by an error',
      );
    }
    this.#metrics.checkFinished(app, verdict, (performance.now() - started) / 1000);
    return { app, verdict };
  }
}

function verdictForError(error: AuthzError): Verdict {
  const headers: [string, string][] =
    error.status === 503 ? [['retry-after', String(error.retryAfterSeconds)]] : [];
  const reason =
    error.status === 503 ? 'unavailable' : error.status === 400 ? 'bad_request' : 'forbidden';
  return jsonDeny(reason, error.status, error.code.toLowerCase(), error.publicMessage, headers);
}
