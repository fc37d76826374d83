/** The decision for one Check (SPEC §4), as a table of small steps run in order. */
import { performance } from 'node:perf_hooks';
import { AuthzError, BudgetExceededError } from '../errors.ts';
import { DeadlineQueue } from '../deadline-queue.ts';
import { isRefusal, refusals, type PolicyRefusalReason } from '../policy/policy-refusal.ts';
import { RequestPolicy } from '../policy/request-policy.ts';
import type { RequestPath } from '../policy/request-path.ts';
import type { Logger } from '../observability/logger.ts';
import type { Clock } from '../clock.ts';
import type { CallBound } from '../store/store-backend.ts';
import type { AppRuntime } from './app-runtime.ts';
import type { RequestModel } from './request.ts';
import { builtInPages, type PageTemplates } from './pages.ts';
import { isBrowserNavigation } from './request-kind.ts';
import { allow, errorReply, refusalReply, shared, type Verdict } from './verdict.ts';

/**
 * What every step sees: the request, the app chosen for it, and the readings of its path. It is
 * also the bound of the request's store calls (`deadline`, `storeTimedOut`): handed to a store
 * read, that read waits no longer than the budget allows, and not at all once another read of
 * the request ran out of time.
 */
export interface StepContext extends CallBound {
  readonly request: RequestModel;
  readonly app: AppRuntime;
  /** The path as the request policy reads it: every step that matches paths decides on this. */
  readonly path: RequestPath;
  /**
   * When the request's budget runs out, on `performance.now()`'s clock: past it the pipeline
   * answers without the step (see {@link remainingMs}).
   */
  readonly deadline: number;
  /** The step the decision is waiting on (its function's name), for the over-budget log line. */
  pendingStep?: string | undefined;
  /** What that step said it waits on (`session load`, `refresh`, …), for the same line. */
  waitingOn?: string | undefined;
}

/** What a step keeps of the budget to answer after a wait of its own ends, ms. */
const ANSWER_RESERVE_MS = 5;
/**
 * What the answer needs to reach a caller before its own deadline fires: a tenth of the time the
 * caller gave, at least 5 ms and at most 50 ms. A busy host runs timers late and the answer still
 * has to cross the connection; an answer that lands after Envoy gave up is its error, not ours.
 */
function callerReserveMs(givenMs: number): number {
  const tenth = givenMs / 10;
  return tenth < 5 ? 5 : tenth > 50 ? 50 : tenth;
}

/**
 * What the transport knows of the caller's patience for one Check. Envoy sends its ext_authz
 * timeout as `grpc-timeout`; a caller that gave up (deadline, cancel) closes the stream.
 */
export interface Caller {
  /**
   * When the caller stops waiting, on `performance.now()`'s clock; undefined when it said
   * nothing. A Check is answered a few ms before, by `budget_exceeded` if need be, when that
   * comes before `request.budget` runs out.
   */
  readonly deadline: number | undefined;
  /** True once the caller went away: no further step runs for it. */
  readonly gone: boolean;
}

/**
 * How long a step may still wait on something (0 when it may not): what is left of the
 * request's budget, less a few ms to answer with the step's own verdict once the wait ends,
 * before the pipeline's `budget_exceeded` would.
 */
export function remainingMs(context: Pick<StepContext, 'deadline'>): number {
  return Math.max(0, context.deadline - performance.now() - ANSWER_RESERVE_MS);
}

/**
 * A step decides, or returns `undefined` to pass the request on to the next step. A step that
 * needs no I/O for a request answers synchronously: a promise only where one is awaited.
 */
export type Step = (context: StepContext) => Verdict | undefined | Promise<Verdict | undefined>;

/** What the composition root gives every step factory. */
export interface StepDeps {
  /** Where a step logs its one line per refused or failed request. */
  readonly logger: Logger;
  /** Milliseconds since the epoch. */
  readonly now: Clock;
}

/**
 * How every step is made: `create<Name>Step(deps)`, called once per runtime (at start and on
 * each reload), holding what the step keeps between requests (memos, child loggers) in its
 * closure.
 */
export type StepFactory = (deps: StepDeps) => Step;

export interface PipelineOptions {
  readonly apps: readonly AppRuntime[];
  /** Allow requests no app claims, untouched, instead of denying them. */
  readonly allowUnmatched: boolean;
  /** Steps after app selection, in order; the last one must always decide. */
  readonly steps: readonly Step[];
  /** `request.budget`, ms: the longest a decision may wait on I/O. */
  readonly budgetMs: number;
  /** The pages of refusals a browser sees (`pages.templatesDir`). Default: the built-in page. */
  readonly pages?: PageTemplates;
}

/** Where a decision waited: the step (its function's name) and what it said it waited on. */
export interface WaitedIn {
  readonly step: string | undefined;
  readonly waitingOn: string | undefined;
}

/** The outcome of one decision, with the app that made it (for metrics and logs). */
export interface Decision {
  readonly app: AppRuntime | undefined;
  readonly verdict: Verdict;
  /** Set when the request policy refused the request outright: its short reason, for the log. */
  readonly refused?: PolicyRefusalReason;
  /**
   * Set when the budget ran out first and the verdict is `budget_exceeded`: the decision still
   * being made, so that what it ends with (a failure nobody will see otherwise) can be logged.
   */
  readonly overBudget?: Promise<Decision>;
  /**
   * Set on a decision that took more than half the budget: the step that waited last and what
   * on, for the debug line that explains a slow Check.
   */
  readonly slowIn?: WaitedIn;
  /**
   * With {@link overBudget}: the step that was still waiting, and how late the budget's timer
   * fired (ms past the deadline: more than a few means the process itself was busy).
   */
  readonly overBudgetIn?: WaitedIn & { readonly timerLateMs: number };
  /** Set when the caller went away before the decision: its steps stopped there. */
  readonly abandoned?: true;
  /** Set when a step failed with a catalogue error: the verdict is its reply (for the log). */
  readonly failure?: AuthzError;
}

const noApp: Decision = Object.freeze({
  app: undefined,
  verdict: shared(refusalReply('no_app', 403, 'forbidden', 'no app for host')),
});
/** A request the policy refuses (SPEC §4.1): 400 with the policy's short reason, no app. */
const refusedDecisions = Object.freeze(
  Object.fromEntries(
    Object.keys(refusals).map((reason) => [
      reason,
      Object.freeze({
        app: undefined,
        verdict: shared(refusalReply('bad_request', 400, 'bad_request', reason)),
        refused: reason,
      }),
    ]),
  ),
) as Readonly<Record<PolicyRefusalReason, Decision>>;
const unmatchedAllowed: Decision = Object.freeze({
  app: undefined,
  verdict: shared(allow('unmatched')),
});

export class Pipeline {
  readonly #policy: RequestPolicy<AppRuntime>;
  readonly #allowUnmatched: boolean;
  readonly #steps: readonly Step[];
  readonly #budgetMs: number;
  /** The answer when the budget runs out: JSON, or a page that reloads itself for a browser. */
  readonly #overBudget: Verdict;
  readonly #pages: PageTemplates;
  /** One budget for every request of this pipeline: one queue, one timer. */
  readonly #deadlines = new DeadlineQueue();

  constructor(options: PipelineOptions) {
    this.#policy = new RequestPolicy(options.apps);
    this.#allowUnmatched = options.allowUnmatched;
    this.#steps = options.steps;
    this.#budgetMs = options.budgetMs;
    const overBudget = new BudgetExceededError(options.budgetMs);
    this.#overBudget = shared(errorReply(overBudget));
    this.#pages = options.pages ?? builtInPages;
  }

  /**
   * The decision for `request` (see {@link #decide}), its refusal shown as a page when a person
   * will see it: a browser navigation, or a login-flow page. API clients keep the JSON.
   */
  decide(request: RequestModel, caller?: Caller): Decision | Promise<Decision> {
    const decision = this.#decide(request, caller);
    if (decision instanceof Promise)
      return decision.then((settled) => this.#present(settled, request));
    return this.#present(decision, request);
  }

  #present(decision: Decision, request: RequestModel): Decision {
    const { verdict } = decision;
    if (verdict.kind !== 'local_reply' || verdict.page === undefined) return decision;
    if (verdict.page.always !== true && !isBrowserNavigation(request)) return decision;
    const logoutPath =
      verdict.page.switchAccount === true ? (decision.app?.config.oidc.logoutPath ?? '') : '';
    const page = this.#pages.render(verdict, verdict.page, request.id, logoutPath);
    return { ...decision, verdict: page };
  }

  /**
   * Runs the steps in order. The decision is returned as it is when every step ran
   * synchronously, and as a promise from the first step that returned one: a request decided
   * without I/O never waits for a turn of the event loop's microtask queue. A decision that
   * waits is answered by the budget's end at the latest (503 `budget_exceeded`).
   */
  #decide(request: RequestModel, caller?: Caller): Decision | Promise<Decision> {
    const path = this.#policy.readPath(request);
    if ('kind' in path) return refusedDecisions[path.reason];
    const app = this.#policy.selectApp(request, path);
    if (app === undefined) return this.#allowUnmatched ? unmatchedAllowed : noApp;
    if (isRefusal(app)) return refusedDecisions[app.reason];
    const now = performance.now();
    const budgetEnd = now + this.#budgetMs;
    const callerDeadline = caller?.deadline;
    const callerEnd =
      callerDeadline === undefined
        ? Infinity
        : callerDeadline - callerReserveMs(callerDeadline - now);
    const context: StepContext = {
      request,
      app,
      path,
      deadline: callerEnd < budgetEnd ? callerEnd : budgetEnd,
      storeTimedOut: false,
      pendingStep: undefined,
      waitingOn: undefined,
    };
    const steps = this.#steps;
    for (let i = 0; i < steps.length; i++) {
      let verdict;
      try {
        verdict = steps[i]!(context);
      } catch (error) {
        return failedDecision(app, error);
      }
      if (verdict === undefined) continue;
      if (verdict instanceof Promise) {
        context.pendingStep = steps[i]!.name;
        const decision = this.#settle(verdict, context, i + 1, caller);
        return this.#withinBudget(decision, context, callerEnd < budgetEnd);
      }
      return { app, verdict };
    }
    return noVerdict(app);
  }

  /**
   * `decision`, or `budget_exceeded` once the request's budget (or the caller's shorter deadline,
   * `early`) ran out; the decision goes on.
   */
  #withinBudget(
    decision: Promise<Decision>,
    context: StepContext,
    early: boolean,
  ): Promise<Decision> {
    return new Promise<Decision>((resolve, reject) => {
      const expire = (): void =>
        resolve({
          app: context.app,
          verdict: this.#overBudget,
          overBudget: decision,
          overBudgetIn: {
            step: context.pendingStep,
            waitingOn: context.waitingOn,
            timerLateMs: Math.round(performance.now() - context.deadline),
          },
        });
      // Deadlines of the budget come in order (one queue, one timer); a caller's earlier one
      // does not, and gets a timer of its own.
      const watch = early
        ? earlyWatch(context.deadline, expire)
        : this.#deadlines.watch(context.deadline, expire);
      decision.then(
        (settled) => {
          watch.settle();
          // Slow but in time: say where it waited (one object, only for those).
          if (context.deadline - performance.now() < this.#budgetMs / 2) {
            resolve({
              ...settled,
              slowIn: { step: context.pendingStep, waitingOn: context.waitingOn },
            });
            return;
          }
          resolve(settled);
        },
        (error: unknown) => {
          watch.settle();
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- passed on as it came
          reject(error);
        },
      );
    });
  }

  /**
   * The rest of a decision once a step went asynchronous: its result, then the steps after it,
   * none once the caller went away. What a step started for others (a refresh, a token's
   * verification) runs on and serves the next request.
   */
  async #settle(
    pending: Promise<Verdict | undefined>,
    context: StepContext,
    next: number,
    caller: Caller | undefined,
  ): Promise<Decision> {
    const { app } = context;
    try {
      const first = await pending;
      if (first !== undefined) return { app, verdict: first };
      const steps = this.#steps;
      for (let i = next; i < steps.length; i++) {
        if (caller?.gone === true) return { app, verdict: this.#overBudget, abandoned: true };
        const step = steps[i]!;
        // What an earlier step waited on is not what this one waits on.
        context.waitingOn = undefined;
        const result = step(context);
        if (result instanceof Promise) context.pendingStep = step.name;
        const verdict = result instanceof Promise ? await result : result;
        if (verdict !== undefined) return { app, verdict };
      }
    } catch (error) {
      return failedDecision(app, error);
    }
    return noVerdict(app);
  }
}

/**
 * A step that failed with a catalogue error (an outage, the store, a refused token) decided
 * for its app: the error's reply, counted and logged under that app. Anything else is a bug
 * and goes on up as it was thrown.
 */
function failedDecision(app: AppRuntime, error: unknown): Decision {
  if (!(error instanceof AuthzError)) throw error;
  return { app, verdict: errorReply(error), failure: error };
}

/** A one-off timer for a deadline that does not come in the queue's order. */
function earlyWatch(deadline: number, expire: () => void): { settle(): void } {
  const timer = setTimeout(expire, Math.max(0, deadline - performance.now()));
  return { settle: () => clearTimeout(timer) };
}

function noVerdict(app: AppRuntime): never {
  throw new Error(`the pipeline of app ${app.name} ended without a verdict`);
}
