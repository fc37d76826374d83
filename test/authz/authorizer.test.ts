/** The decision machinery: synchronous where no step waits, failures kept apart from verdicts. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AppRuntime } from '../../src/authz/app-runtime.ts';
import { Authorizer, type Outcome } from '../../src/authz/authorizer.ts';
import type { RawRequest } from '../../src/authz/parse-request.ts';
import { Pipeline, type Step } from '../../src/authz/pipeline.ts';
import { allow, type Verdict } from '../../src/authz/verdict.ts';
import { IdpUnavailableError } from '../../src/errors.ts';
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
) {
  const pipeline = new Pipeline({ apps: [app], allowUnmatched: false, steps });
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
});
