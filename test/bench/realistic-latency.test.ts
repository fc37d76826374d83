/** Latency under load is measured at the shares of the maximum it claims, and judged at half. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { latencyRates, p99RatioAtHalf, type LatencyPoint } from '../../bench/realistic.ts';
import {
  renderLatencyCurveSvg,
  renderLatencySvg,
  renderRealisticMarkdown,
} from '../../bench/realistic-report.ts';
import type { RealisticResult } from '../../bench/realistic.ts';

const p = (p99: number) => ({ p50: p99 / 4, p99, p999: p99 * 2, max: p99 * 3 });

describe('bench latency under load', () => {
  it('takes 25%, 50% and 80% of the maximum as whole calls per second, never zero', () => {
    assert.deepEqual(latencyRates(12_345, [0.25, 0.5, 0.8]), [
      { load: 0.25, rate: 3086 },
      { load: 0.5, rate: 6173 },
      { load: 0.8, rate: 9876 },
    ]);
    assert.deepEqual(latencyRates(1.2, [0.25]), [{ load: 0.25, rate: 1 }]);
  });

  it('refuses a share outside (0, 1] or no maximum to take it of', () => {
    assert.throws(() => latencyRates(1_000, [0]), /share of the maximum/);
    assert.throws(() => latencyRates(1_000, [1.5]), /share of the maximum/);
    assert.throws(() => latencyRates(1_000, [Number.NaN]), /share of the maximum/);
    assert.throws(() => latencyRates(0, [0.5]), /no maximum rate/);
    assert.throws(() => latencyRates(Number.NaN, [0.5]), /no maximum rate/);
  });

  it('judges p99 at half load only, against the floor at the same rate', () => {
    const latency: LatencyPoint[] = [
      { load: 0.25, rate: 100, server: p(9), floor: p(1) },
      { load: 0.5, rate: 200, server: p(2.6), floor: p(2) },
      { load: 0.8, rate: 320, server: p(90), floor: p(1) },
    ];
    assert.equal(p99RatioAtHalf(latency), 1.3);
    assert.equal(p99RatioAtHalf(latency.filter((l) => l.load !== 0.5)), undefined);
    assert.equal(
      p99RatioAtHalf([{ load: 0.5, rate: 1, server: p(1), floor: p(0) }]),
      undefined,
      'a floor without a p99 gives no ratio, not Infinity',
    );
    const result = { title: 'w', id: 'w', latency, verdicts: {} } as unknown as RealisticResult;
    const table = renderRealisticMarkdown([result]).join('\n');
    assert.match(table, /\| w \| 50\.0% \| 200 \| .* \| 1\.30 \| ≤ 1\.3× met \|/);
    assert.match(table, /\| w \| 25\.0% \| 100 \| .* \| 9\.00 \| – \|/);
    const missed = renderRealisticMarkdown([
      { ...result, latency: [{ ...latency[1]!, server: p(2.7) }] },
    ]).join('\n');
    assert.match(missed, /≤ 1\.3× \*\*missed\*\*/);
    const svg = renderLatencySvg([result], 'sub');
    assert.equal(svg.match(/p99 ×/g)?.length, 3 + 1, 'one ratio per point, and the legend');
  });

  it('draws the curve: p99 and p50 for server and floor per workload, the target band at 50%', () => {
    const latency: LatencyPoint[] = [
      { load: 0.25, rate: 100, server: p(1), floor: p(1) },
      { load: 0.5, rate: 200, server: p(2), floor: p(2) },
      { load: 0.8, rate: 320, server: p(Number.NaN), floor: p(4) },
    ];
    const a = { title: 'a <b>', id: 'a', latency, verdicts: {} } as unknown as RealisticResult;
    const none = { ...a, title: 'none', latency: [] } as RealisticResult;
    const svg = renderLatencyCurveSvg([a, none, { ...a, title: 'c' }], 'sub');
    assert.equal(svg.match(/<polyline /g)?.length, 8, 'four lines for each workload measured');
    assert.ok(!svg.includes('NaN'), 'a point without a figure is left out, not drawn at NaN');
    assert.ok(svg.includes('a &lt;b&gt;') && !svg.includes('>none<'));
    assert.equal(svg.match(/fill="#d5e8d4"/g)?.length, 2, 'one target band per workload');
    // The band spans the floor's p99 at 50% up to 1.3 times it.
    const band = /<rect x="[\d.]+" y="([\d.]+)" width="12" height="([\d.]+)"/.exec(svg);
    assert.ok(band !== null && Number(band[2]) > 0);
  });
});
