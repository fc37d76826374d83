/** Runs one Check end to end for any transport: parse, decide, translate failures, record. */
import { performance } from 'node:perf_hooks';
import { AuthzError } from '../errors.ts';
import { noAccessLog, type AccessLog } from '../observability/access-log.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { noTracer, type CheckSpan, type Tracer } from '../observability/tracing.ts';
import { parseRequest, type ParseOptions, type RawRequest } from './parse-request.ts';
import type { Caller, Decision, Pipeline } from './pipeline.ts';
import { errorReply, jsonReply, outcomeOf, type Verdict } from './verdict.ts';

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
  readonly #accessLog: AccessLog;
  #tracer: Tracer;

  /**
   * `accessLog` is decided once (`log.access`), `tracer` at start and on reload (`tracing`);
   * when off each is its Null object.
   */
  constructor(
    runtime: Runtime,
    metrics: Metrics,
    logger: Logger,
    accessLog = noAccessLog,
    tracer = noTracer,
  ) {
    this.#runtime = runtime;
    this.#metrics = metrics;
    this.#logger = logger;
    this.#accessLog = accessLog;
    this.#tracer = tracer;
  }

  /** Swaps in a new runtime; Checks already running finish on the old one. */
  replace(runtime: Runtime): void {
    this.#runtime = runtime;
  }

  /** Swaps in a new tracer; Checks already running end their spans on the old one. */
  replaceTracer(tracer: Tracer): void {
    this.#tracer = tracer;
  }

  /**
   * Decides one request: synchronously when no step needed I/O (an unauthenticated navigation,
   * a public path, a malformed request, …), else as a promise. Never throws; rejects (or
   * returns a rejected promise) only when no decision could be made at all, so that the
   * transport can answer with an error and Envoy's `failure_mode_allow` applies.
   */
  decide(raw: RawRequest, caller?: Caller): Outcome | Promise<Outcome> {
    const started = performance.now();
    this.#metrics.checkStarted();
    const runtime = this.#runtime;
    let decision: Decision | Promise<Decision>;
    let span: CheckSpan | undefined;
    try {
      const request = parseRequest(raw, runtime.parseOptions);
      if ('kind' in request) {
        this.#refused(raw, request.reason);
        return this.#finished(
          raw,
          undefined,
          jsonReply('bad_request', 400, 'bad_request', request.reason),
          started,
          this.#tracer.startRefusedCheck(raw.id, raw.headers, started),
        );
      }
      span = this.#tracer.startCheck(request, started);
      decision = span.decideWithin(runtime.pipeline, request, caller);
    } catch (error) {
      return this.#failed(error, raw, started, span);
    }
    const checkSpan = span;
    if (decision instanceof Promise) {
      return decision.then(
        ({ app, verdict, overBudget, overBudgetIn, slowIn, abandoned, failure }) => {
          if (failure !== undefined) this.#deniedByError(raw, failure, app?.name);
          if (slowIn !== undefined) {
            this.#logger.debug(
              {
                requestId: raw.id,
                app: app?.name,
                ms: Math.round(performance.now() - started),
                step: slowIn.step,
                waitingOn: slowIn.waitingOn,
              },
              'check slow: decided with less than half of request.budget left',
            );
          }
          if (overBudget !== undefined) this.#overBudget(raw, app?.name, overBudget, overBudgetIn);
          if (abandoned === true) {
            this.#logger.info(
              { requestId: raw.id, app: app?.name, ms: Math.round(performance.now() - started) },
              'check abandoned: the caller went away before the decision (deadline or cancel)',
            );
          }
          return this.#finished(raw, app?.name, verdict, started, checkSpan);
        },
        (error: unknown) => this.#failed(error, raw, started, checkSpan),
      );
    }
    if (decision.refused !== undefined) this.#refused(raw, decision.refused);
    if (decision.failure !== undefined)
      this.#deniedByError(raw, decision.failure, decision.app?.name);
    return this.#finished(raw, decision.app?.name, decision.verdict, started, checkSpan);
  }

  /**
   * A request refused as malformed or ambiguous (400) leaves one line, so that an operator can
   * tell a client's odd path from a bug. The reason is one of a fixed set, never request data.
   */
  #refused(raw: RawRequest, reason: string): void {
    this.#logger.info({ requestId: raw.id, reason }, 'request refused');
  }

  /**
   * A Check answered `budget_exceeded`: one line now, and one more only if the decision it gave
   * up on then fails without a verdict (a bug that would otherwise go unseen).
   */
  #overBudget(
    raw: RawRequest,
    app: string | undefined,
    late: Promise<unknown>,
    where: Decision['overBudgetIn'],
  ): void {
    this.#logger.warn(
      {
        requestId: raw.id,
        app,
        step: where?.step,
        waitingOn: where?.waitingOn,
        timerLateMs: where?.timerLateMs,
      },
      "check not decided within request.budget or the caller's deadline: answered 503, the work goes on",
    );
    late.catch((error: unknown) => {
      if (error instanceof AuthzError) return;
      this.#logger.error(
        { err: error, requestId: raw.id },
        'check failed without a decision after its budget',
      );
    });
  }

  #finished(
    raw: RawRequest,
    app: string | undefined,
    verdict: Verdict,
    started: number,
    span: CheckSpan,
  ): Outcome {
    const ms = performance.now() - started;
    const outcome = outcomeOf(verdict);
    this.#metrics.checkFinished(app, outcome, verdict.reason, ms / 1000);
    const status = verdict.kind === 'allow' ? 200 : verdict.status;
    this.#accessLog.record(raw.id, app, outcome, verdict.reason, status, ms);
    span.end(app, outcome, verdict.reason, status);
    return { app, verdict };
  }

  /**
   * A failure: an {@link AuthzError} is a verdict; anything else means no decision. `span` is
   * the Check's, when the request got that far.
   */
  #failed(
    error: unknown,
    raw: RawRequest,
    started: number,
    span: CheckSpan | undefined,
  ): Outcome | Promise<never> {
    const checkSpan = span ?? this.#tracer.startRefusedCheck(raw.id, raw.headers, started);
    if (!(error instanceof AuthzError)) {
      this.#metrics.checkAborted();
      checkSpan.fail('no decision');
      this.#logger.error({ err: error, requestId: raw.id }, 'check failed without a decision');
      // Passed on as it was thrown (a bug, not a verdict); the transport answers with an error.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- rethrown as is
      return Promise.reject(error);
    }
    this.#deniedByError(raw, error, undefined);
    return this.#finished(raw, undefined, errorReply(error), started, checkSpan);
  }

  #deniedByError(raw: RawRequest, error: AuthzError, app: string | undefined): void {
    // The provider's HTTP status, when a provider call failed on one.
    const status = 'httpStatus' in error ? error.httpStatus : undefined;
    this.#logger.warn(
      {
        code: error.code,
        detail: error.message,
        requestId: raw.id,
        app,
        ...(status === undefined ? {} : { status }),
      },
      'check denied by an error',
    );
  }
}
