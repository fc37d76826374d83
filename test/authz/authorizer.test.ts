/** The decision machinery: synchronous where no step waits, failures kept apart from verdicts. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import type { AppRuntime } from '../../src/authz/app-runtime.ts';
import { Authorizer, type Outcome } from '../../src/authz/authorizer.ts';
import type { RawRequest } from '../../src/authz/parse-request.ts';
import { Pipeline, type Step } from '../../src/authz/pipeline.ts';
import { allow, type Verdict } from '../../src/authz/verdict.ts';
import { IdpUnavailableError } from '../../src/errors.ts';
import { createAccessLog, noAccessLog } from '../../src/observability/access-log.ts';
import { silentLogger, type Logger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { captureLog } from '../resilience/log-capture.ts';

/** The pipeline reads only an app's name and match rules; the steps here read nothing else. */
const app = {
  name: 'web',
  match: { hosts: ['web.example.com'], pathPrefix: '/' },
} as unknown as AppRuntime;

function raw(overrides: Partial<RawRequest> = {}): RawRequest {
  return {
    id: 'r1',
    method: 'GET',
    path: '/x',
    authority: 'web.example.com',
    scheme: 'https',
    headers: [['accept', 'text/html']],
    peerAddress: '127.0.0.1',
    contextExtensions: [],
    body: '',
    ...overrides,
  };
}

function authorizer(
  steps: readonly Step[],
  metrics = new Metrics({ defaultMetrics: false }),
  logger: Logger = silentLogger(),
  budgetMs = 100,
) {
  const pipeline = new Pipeline({ apps: [app], allowUnmatched: false, steps, budgetMs });
  return new Authorizer(
    { pipeline, parseOptions: { trustedHops: 0, maxHeaderBytes: 65_536 } },
    metrics,
    logger,
  );
}

const allowed = allow('session');
const pass: Step = () => undefined;
const passLater: Step = () => Promise.resolve(undefined);
const decideNow: Step = () => allowed;

function settled(outcome: Outcome | Promise<Outcome>): Outcome {
  assert.ok(!(outcome instanceof Promise), 'decided without a promise');
  return outcome;
}

describe('Authorizer.decide', () => {
  it('answers without a promise when every step ran synchronously', () => {
    const outcome = settled(authorizer([pass, pass, decideNow]).decide(raw()));
    assert.equal(outcome.verdict, allowed);
    assert.equal(outcome.app, 'web');
  });

  it('answers a request no app claims, and a malformed one, without a promise', () => {
    const decide = authorizer([decideNow]);
    const noApp = settled(decide.decide(raw({ authority: 'other.example.com' })));
    assert.equal(noApp.verdict.kind === 'local_reply' && noApp.verdict.status, 403);
    const malformed = settled(decide.decide(raw({ headers: [['x-a', 'b\r\nc']] })));
    assert.equal(malformed.verdict.kind === 'local_reply' && malformed.verdict.status, 400);
  });

  it('leaves one line with the request id for each request refused as malformed or ambiguous', async () => {
    const log = captureLog('info');
    const decide = authorizer([decideNow], undefined, log.logger);
    settled(decide.decide(raw({ id: 'bad-1', headers: [['x-a', 'b\r\nc']] })));
    settled(decide.decide(raw({ id: 'bad-2', path: '/a/%2e%2e;x/..%2f/b%00' })));
    settled(decide.decide(raw({ id: 'ok-1' })));
    await new Promise<void>((resolve) => setImmediate(resolve));
    const refused = log.lines().filter((l) => l['msg'] === 'request refused');
    assert.deepEqual(
      refused.map((l) => [l['requestId'], typeof l['reason']]),
      [
        ['bad-1', 'string'],
        ['bad-2', 'string'],
      ],
    );
    assert.ok(
      refused.every((l) => !JSON.stringify(l).includes('%2e')),
      'no request data',
    );
  });

  it('goes on with the later steps, in order, once a step returned a promise', async () => {
    const seen: string[] = [];
    const mark =
      (name: string, verdict?: Verdict): Step =>
      () => {
        seen.push(name);
        return verdict;
      };
    const outcome = authorizer([mark('a'), passLater, mark('b'), mark('c', allowed)]).decide(raw());
    assert.ok(outcome instanceof Promise);
    assert.equal((await outcome).verdict, allowed);
    assert.deepEqual(seen, ['a', 'b', 'c']);
    assert.equal((await authorizer([passLater, passLater, decideNow]).decide(raw())).app, 'web');
  });

  it('turns an AuthzError into its verdict, thrown at once or later', async () => {
    const unavailable = new IdpUnavailableError('token', 'network', { retryAfterSeconds: 7 });
    const now = settled(
      authorizer([
        () => {
          throw unavailable;
        },
      ]).decide(raw()),
    );
    assert.equal(now.verdict.kind === 'local_reply' && now.verdict.status, 503);
    assert.deepEqual(
      now.verdict.kind === 'local_reply' && now.verdict.headers.find(([n]) => n === 'retry-after'),
      ['retry-after', '7'],
    );
    const later = await authorizer([() => Promise.reject(unavailable)]).decide(raw());
    assert.equal(later.verdict.kind === 'local_reply' && later.verdict.status, 503);
  });

  it('counts and logs an outage 503 under the app that matched, thrown at once or later', async () => {
    const unavailable = new IdpUnavailableError('token', 'network', { retryAfterSeconds: 7 });
    const metrics = new Metrics({ defaultMetrics: false });
    const log = captureLog();
    const now = settled(
      authorizer(
        [
          () => {
            throw unavailable;
          },
        ],
        metrics,
        log.logger,
      ).decide(raw()),
    );
    assert.equal(now.app, 'web');
    const later = await authorizer([passLater, () => Promise.reject(unavailable)], metrics).decide(
      raw(),
    );
    assert.equal(later.app, 'web');
    const text = await metrics.registry.metrics();
    assert.match(
      text,
      /eoa_checks_total\{app="web",verdict="unavailable",reason="unavailable"\} 2\n/,
    );
    assert.doesNotMatch(text, /app="-"/);
    const line = log.lines().find((entry) => entry['msg'] === 'check denied by an error');
    assert.equal(line?.['app'], 'web');
    assert.equal(line?.['requestId'], 'r1');
  });

  it('never throws: a failure without a decision is a rejected promise, counted', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const broken = authorizer(
      [
        () => {
          throw new TypeError('bug');
        },
      ],
      metrics,
    );
    const outcome = broken.decide(raw());
    assert.ok(outcome instanceof Promise);
    await assert.rejects(outcome, TypeError);
    const rejected = authorizer([() => Promise.reject(new RangeError('bug'))]).decide(raw());
    assert.ok(rejected instanceof Promise);
    await assert.rejects(rejected, RangeError);
    const text = await metrics.registry.metrics();
    assert.match(text, /\neoa_check_errors_total 1\n/);
    assert.match(text, /\neoa_checks_in_flight 0\n/);
  });

  it('answers 503 budget_exceeded with Retry-After once the budget runs out, and logs one line', async () => {
    const log = captureLog('info');
    const metrics = new Metrics({ defaultMetrics: false });
    let finish: (verdict: Verdict) => void = () => undefined;
    const hung: Step = () =>
      new Promise<Verdict>((resolve) => {
        finish = resolve;
      });
    const started = performance.now();
    const outcome = authorizer([hung], metrics, log.logger, 30).decide(
      raw({ id: 'slow-1', headers: [['accept', 'application/json']] }),
    );
    assert.ok(outcome instanceof Promise);
    const { verdict, app: appName } = await outcome;
    const took = performance.now() - started;
    assert.ok(took >= 29 && took < 1_000, `answered after ${took} ms`);
    assert.equal(appName, 'web');
    assert.equal(verdict.kind, 'local_reply');
    assert.ok(verdict.kind === 'local_reply');
    assert.equal(verdict.status, 503);
    assert.equal(verdict.code, 14);
    assert.deepEqual(
      verdict.headers.find(([name]) => name === 'retry-after'),
      ['retry-after', '1'],
    );
    assert.equal(JSON.parse(verdict.body).error, 'budget_exceeded');
    // The decision given up on ends later: counted once, no second answer.
    finish(allowed);
    await new Promise<void>((resolve) => setImmediate(resolve));
    const lines = log.lines().filter((line) => line['requestId'] === 'slow-1');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!['app'], 'web');
    assert.match(String(lines[0]!['msg']), /request\.budget/);
    // Which step it waited on (the function's name), and how late the budget's timer fired.
    assert.equal(lines[0]!['step'], 'hung');
    assert.equal(typeof lines[0]!['timerLateMs'], 'number');
    const text = await metrics.registry.metrics();
    assert.match(text, /eoa_checks_total\{[^}]*reason="unavailable"[^}]*\} 1\n/);
    assert.match(text, /\neoa_checks_in_flight 0\n/);
  });

  it('logs one debug line for a Check decided with less than half its budget left, naming the step and what it waited on', async () => {
    const log = captureLog('debug');
    const slowGrant: Step = (context) => {
      context.waitingOn = 'provider call';
      return new Promise<Verdict>((resolve) => setTimeout(() => resolve(allowed), 600));
    };
    const quick: Step = () => Promise.resolve(allowed);
    const slow = await authorizer([slowGrant], undefined, log.logger, 1_000).decide(
      raw({ id: 'slow-2' }),
    );
    assert.equal(slow.verdict.kind, 'allow');
    const fast = await authorizer([quick], undefined, log.logger, 1_000).decide(
      raw({ id: 'fast-1' }),
    );
    assert.equal(fast.verdict.kind, 'allow');
    const lines = log.matching(/^check slow/);
    assert.equal(lines.length, 1, 'only the slow one');
    assert.equal(lines[0]!['requestId'], 'slow-2');
    assert.equal(lines[0]!['step'], 'slowGrant');
    assert.equal(lines[0]!['waitingOn'], 'provider call');
    assert.ok(Number(lines[0]!['ms']) >= 500, String(lines[0]!['ms']));
  });

  it('names the step still waiting when the budget runs out, not what an earlier step waited on', async () => {
    const log = captureLog('info');
    const earlier: Step = async (context) => {
      context.waitingOn = 'session load';
      await Promise.resolve();
      return undefined;
    };
    const hung: Step = () => new Promise<Verdict>(() => undefined);
    await authorizer([earlier, hung], undefined, log.logger, 30).decide(raw({ id: 'late-2' }));
    const [line] = log.lines().filter((l) => l['requestId'] === 'late-2');
    assert.equal(line?.['step'], 'hung');
    assert.equal(line?.['waitingOn'], undefined);
  });

  it('logs a failure that comes after the budget ran out, with the request id', async () => {
    const log = captureLog('info');
    let fail: (error: Error) => void = () => undefined;
    const hung: Step = () =>
      new Promise<Verdict>((_resolve, reject) => {
        fail = reject;
      });
    const outcome = authorizer([hung], undefined, log.logger, 20).decide(raw({ id: 'late-1' }));
    assert.ok(outcome instanceof Promise);
    const { verdict } = await outcome;
    // A browser navigation: a page that reloads itself, with Retry-After.
    assert.ok(verdict.kind === 'local_reply');
    assert.equal(verdict.status, 503);
    assert.match(verdict.body, /<meta http-equiv="refresh" content="1">/);
    assert.ok(verdict.headers.some(([name, value]) => name === 'retry-after' && value === '1'));
    fail(new TypeError('late bug'));
    await new Promise<void>((resolve) => setImmediate(resolve));
    const lines = log.lines().filter((line) => line['requestId'] === 'late-1');
    assert.deepEqual(
      lines.map((line) => line['level']),
      ['warn', 'error'],
    );
  });

  it('answers a decision that beats the budget as it is, and clears the budget timer', async () => {
    const quick = authorizer([passLater, decideNow], undefined, undefined, 10_000);
    const started = performance.now();
    const outcome = quick.decide(raw());
    assert.ok(outcome instanceof Promise);
    assert.equal((await outcome).verdict, allowed);
    assert.ok(performance.now() - started < 1_000);
  });

  it("answers by the caller's deadline (grpc-timeout) when it comes before the budget, with the step told so", async () => {
    let seenDeadline = Infinity;
    const hung: Step = (context) => {
      seenDeadline = context.deadline;
      return new Promise<Verdict>(() => undefined);
    };
    const started = performance.now();
    const caller = { deadline: started + 40, gone: false };
    const outcome = authorizer([hung], undefined, undefined, 60_000).decide(raw(), caller);
    assert.ok(outcome instanceof Promise);
    const { verdict } = await outcome;
    const took = performance.now() - started;
    assert.ok(took < 30_000, `answered after ${took} ms, not at the 60 s budget`);
    assert.ok(verdict.kind === 'local_reply');
    assert.equal(verdict.status, 503);
    assert.ok(seenDeadline <= caller.deadline - 5, 'the step waits no longer than the caller');
  });

  it("keeps a tenth of the caller's time (5 to 50 ms) to answer before its deadline", () => {
    const seen: number[] = [];
    const record: Step = (context) => {
      seen.push(context.deadline);
      return allowed;
    };
    const decider = authorizer([record], undefined, undefined, 600_000);
    for (const { givenMs, reserveMs } of [
      { givenMs: 20, reserveMs: 5 },
      { givenMs: 200, reserveMs: 20 },
      { givenMs: 2_000, reserveMs: 50 },
    ]) {
      const callerDeadline = performance.now() + givenMs;
      settled(decider.decide(raw(), { deadline: callerDeadline, gone: false }));
      const reserve = callerDeadline - seen.at(-1)!;
      assert.ok(
        Math.abs(reserve - reserveMs) < 1,
        `${givenMs} ms given: ${reserve} ms kept, not ${reserveMs}`,
      );
    }
  });

  it('keeps the budget when the caller allows longer, and ignores a caller without a deadline', () => {
    const seen: number[] = [];
    const record: Step = (context) => {
      seen.push(context.deadline);
      return allowed;
    };
    const before = performance.now();
    const decider = authorizer([record], undefined, undefined, 100);
    settled(decider.decide(raw(), { deadline: before + 600_000, gone: false }));
    settled(decider.decide(raw(), { deadline: undefined, gone: false }));
    const after = performance.now();
    for (const deadline of seen) {
      assert.ok(
        deadline >= before + 100 && deadline <= after + 100,
        `deadline ${deadline - before}`,
      );
    }
    assert.equal(seen.length, 2);
  });

  it('runs no further step for a caller that went away, and logs one line', async () => {
    const log = captureLog('info');
    const caller = { deadline: undefined, gone: false };
    let later = 0;
    const leaveFirst: Step = () =>
      Promise.resolve().then(() => {
        caller.gone = true;
        return undefined;
      });
    const counted: Step = () => {
      later += 1;
      return allowed;
    };
    const outcome = authorizer([leaveFirst, counted], undefined, log.logger, 10_000).decide(
      raw({ id: 'gone-1' }),
      caller,
    );
    assert.ok(outcome instanceof Promise);
    await outcome;
    assert.equal(later, 0, 'no step ran after the caller left');
    const lines = log.lines().filter((line) => line['requestId'] === 'gone-1');
    assert.equal(lines.length, 1);
    assert.match(String(lines[0]!['msg']), /caller went away/);
  });
});

describe('Authorizer access log (log.access)', () => {
  const pipelineOf = (steps: readonly Step[]) =>
    new Pipeline({ apps: [app], allowUnmatched: false, steps, budgetMs: 100 });
  const build = (
    steps: readonly Step[],
    access: { enabled: boolean; sampleRate: number },
    draws: number[] = [],
  ) => {
    const log = captureLog();
    const authorizer = new Authorizer(
      { pipeline: pipelineOf(steps), parseOptions: { trustedHops: 0, maxHeaderBytes: 65_536 } },
      new Metrics({ defaultMetrics: false }),
      log.logger,
      createAccessLog(access, log.logger, () => draws.shift() ?? 0),
    );
    return { authorizer, log };
  };

  it('off by default: the Null object, and no line', () => {
    assert.equal(createAccessLog({ enabled: false, sampleRate: 1 }, silentLogger()), noAccessLog);
    assert.equal(createAccessLog({ enabled: true, sampleRate: 0 }, silentLogger()), noAccessLog);
    const { authorizer, log } = build([decideNow], { enabled: false, sampleRate: 1 });
    settled(authorizer.decide(raw()));
    assert.equal(log.lines().length, 0);
  });

  it('on: one line per Check, sync or async, with id, app, verdict, reason, status, latency', async () => {
    const { authorizer, log } = build([passLater, decideNow], { enabled: true, sampleRate: 1 });
    await authorizer.decide(raw({ id: 'a\r\n\u00e9' }));
    settled(authorizer.decide(raw({ id: 'bad', path: 'no-slash' })));
    const lines = log.matching(/^check$/);
    assert.equal(lines.length, 2, log.text());
    assert.deepEqual(
      { ...lines[0], time: undefined, latencyMs: undefined },
      {
        ...lines[0],
        time: undefined,
        latencyMs: undefined,
        requestId: 'a\r\n\u00e9',
        app: 'web',
        verdict: 'allow',
        reason: 'session',
        status: 200,
      },
    );
    assert.equal(typeof lines[0]?.['latencyMs'], 'number');
    assert.equal(lines[1]?.['status'], 400);
    assert.equal(lines[1]?.['app'], '-');
    assert.equal(lines[1]?.['verdict'], 'deny');
  });

  it('samples: a Check is logged when the draw is under sampleRate', () => {
    const { authorizer, log } = build(
      [decideNow],
      { enabled: true, sampleRate: 0.25 },
      [0.1, 0.3, 0.24, 0.9],
    );
    for (const id of ['1', '2', '3', '4']) settled(authorizer.decide(raw({ id })));
    assert.deepEqual(
      log.matching(/^check$/).map((line) => line['requestId']),
      ['1', '3'],
    );
  });
});
