/** The Check metrics, counted outside prom-client on the hot path, read back exactly as prom-client reports them. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { Metrics } from '../../src/observability/metrics.ts';
import { allow, jsonReply, outcomeOf, redirect, type Verdict } from '../../src/authz/verdict.ts';

const checkMetricNames = [
  'eoa_checks_total',
  'eoa_check_duration_seconds',
  'eoa_checks_in_flight',
] as const;

/** The same metrics kept the plain prom-client way. */
function reference() {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    checks: new Counter({
      name: 'eoa_checks_total',
      help: 'Check decisions by app, verdict and reason.',
      labelNames: ['app', 'verdict', 'reason'],
      registers,
    }),
    duration: new Histogram({
      name: 'eoa_check_duration_seconds',
      help: 'Time to decide one Check, from request decoded to response built.',
      labelNames: ['app', 'verdict'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.2, 1, 5],
      registers,
    }),
    inFlight: new Gauge({
      name: 'eoa_checks_in_flight',
      help: 'Checks being decided right now.',
      registers,
    }),
  };
}

async function checkMetricsText(registry: Registry): Promise<string> {
  const parts: string[] = [];
  for (const name of checkMetricNames) {
    parts.push(await registry.getSingleMetricAsString(name));
  }
  return parts.join('\n');
}

const session = allow('session');
const login = redirect('login', 'https://idp.example/authorize');
const noApp = jsonReply('no_app', 403, 'forbidden', 'no app for host');

const observations: readonly [string | undefined, Verdict, number][] = [
  ['web', session, 0.00002],
  ['web', session, 0.0003],
  ['web', login, 0.00009],
  ['api', session, 0.7],
  [undefined, noApp, 0.004],
  ['web', session, 7],
  ['web', login, 0.0001],
];

describe('Metrics: Check series', () => {
  it('report what prom-client would for the same Checks, across scrapes', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const plain = reference();
    for (const round of [1, 2]) {
      for (const [app, verdict, seconds] of observations) {
        metrics.checkStarted();
        metrics.checkFinished(app, outcomeOf(verdict), verdict.reason, seconds);
        const labels = { app: app ?? '-', verdict: outcomeOf(verdict) };
        plain.checks.inc({ ...labels, reason: verdict.reason });
        plain.duration.observe(labels, seconds);
      }
      metrics.checkStarted();
      plain.inFlight.set(round);
      assert.equal(
        await checkMetricsText(metrics.registry),
        await checkMetricsText(plain.registry),
        `scrape ${round}`,
      );
    }
    const ours = await metrics.registry.getSingleMetric('eoa_check_duration_seconds')!.get();
    const theirs = await plain.registry.getSingleMetric('eoa_check_duration_seconds')!.get();
    assert.deepEqual(ours.values, theirs.values);
  });

  it('count bearer cache lookups once each, whenever they are read', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const bearer = metrics.bearerMetrics('api');
    bearer.cache('hit');
    bearer.cache('hit');
    bearer.cache('miss');
    const text = async () => metrics.registry.getSingleMetricAsString('eoa_bearer_cache_total');
    assert.match(await text(), /eoa_bearer_cache_total\{app="api",result="hit"\} 2\n/);
    assert.match(await text(), /eoa_bearer_cache_total\{app="api",result="hit"\} 2\n/);
    bearer.cache('hit');
    assert.match(await text(), /eoa_bearer_cache_total\{app="api",result="hit"\} 3\n/);
    assert.match(await text(), /eoa_bearer_cache_total\{app="api",result="miss"\} 1$/);
  });

  it('start the in-flight gauge at zero and count Checks aborted without a decision', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    assert.match(await metrics.registry.metrics(), /\neoa_checks_in_flight 0\n/);
    metrics.checkStarted();
    metrics.checkStarted();
    metrics.checkAborted();
    const text = await metrics.registry.metrics();
    assert.match(text, /\neoa_checks_in_flight 1\n/);
    assert.match(text, /\neoa_check_errors_total 1\n/);
  });
});
