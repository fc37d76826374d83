/** The decision for one Check (SPEC §4), as a table of small steps run in order. */
import { AppMatcher } from './app-matcher.ts';
import type { AppRuntime } from './app-runtime.ts';
import type { RequestModel } from './request.ts';
import { allow, jsonDeny, type Verdict } from './verdict.ts';

/** What every step sees: the request and the app chosen for it. */
export interface StepContext {
  readonly request: RequestModel;
  readonly app: AppRuntime;
}

/** A step decides, or returns `undefined` to pass the request on to the next step. */
export type Step = (context: StepContext) => Verdict | undefined | Promise<Verdict | undefined>;

export interface PipelineOptions {
  readonly apps: readonly AppRuntime[];
  /** Allow requests no app claims, untouched, instead of denying them. */
  readonly allowUnmatched: boolean;
  /** Steps after app selection, in order; the last one must always decide. */
  readonly steps: readonly Step[];
}

/** The outcome of one decision, with the app that made it (for metrics and logs). */
export interface Decision {
  readonly app: AppRuntime | undefined;
  readonly verdict: Verdict;
}

const noApp = jsonDeny('no_app', 403, 'forbidden', 'no app for host');
const unmatchedAllowed = allow('unmatched');

export class Pipeline {
  readonly #matcher: AppMatcher<AppRuntime>;
  readonly #allowUnmatched: boolean;
  readonly #steps: readonly Step[];

  constructor(options: PipelineOptions) {
    this.#matcher = new AppMatcher(options.apps);
    this.#allowUnmatched = options.allowUnmatched;
    this.#steps = options.steps;
  }

  async decide(request: RequestModel): Promise<Decision> {
    const app = this.#matcher.select(request);
    if (app === undefined) {
      return { app, verdict: this.#allowUnmatched ? unmatchedAllowed : noApp };
    }
    const context: StepContext = { request, app };
    for (const step of this.#steps) {
      const verdict = await step(context);
      if (verdict !== undefined) return { app, verdict };
    }
    throw new Error(`the pipeline of app ${app.name} ended without a verdict`);
  }
}
