/** The realistic-scale workloads in the report: the "Realistic scale" tables and a latency chart. */
import {
  p99AtHalfTarget,
  p99RatioAtHalf,
  type LatencyPoint,
  type RealisticResult,
} from './realistic.ts';

const fixed = (n: number | undefined, digits = 0): string =>
  n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits);
const pct = (n: number | undefined): string => (n === undefined ? '–' : `${(n * 100).toFixed(1)}%`);
const escape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The Markdown tables: throughput against both floors, latency at shares of the maximum. */
export function renderRealisticMarkdown(results: readonly RealisticResult[]): string[] {
  if (results.length === 0) return [];
  const lines = [
    '',
    'Realistic scale: distinct sessions and tokens in rotation, one frame per call in turn, ' +
      "driven by the bench's own generator (a process of its own on the same machine), which " +
      'also drives both do-nothing servers in the same rounds. "floor" is the do-nothing server ' +
      "on the server's own transport (the decision alone costs the difference). The generator " +
      'costs more CPU per call than the floor, so on a small machine it caps the floor first and ' +
      'compresses the throughput ratios; "of floor by CPU" (floor CPU per Check ÷ the ' +
      "server's) is the share each would reach with a core to itself.",
    '',
    '| workload | distinct | checks/s | floor checks/s | of floor | target | grpc-js checks/s | of grpc-js | CPU µs/check | floor CPU µs/check | decision µs/check | of floor by CPU | generator CPU µs/call |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    const target =
      r.floorTarget === undefined
        ? '–'
        : `≥ ${pct(r.floorTarget)} ${r.ratioToFloor >= r.floorTarget ? 'met' : '**missed**'}`;
    lines.push(
      `| ${r.title} | ${r.distinct} | ${fixed(r.rps)} | ${fixed(r.floorRps)} | ${pct(r.ratioToFloor)} | ` +
        `${target} | ${fixed(r.grpcJsRps)} | ${pct(r.ratioToGrpcJs)} | ${fixed(r.cpuUsPerCheck, 1)} | ` +
        `${fixed(r.floorCpuUsPerCheck, 1)} | ${fixed(r.cpuUsPerCheck - r.floorCpuUsPerCheck, 1)} | ` +
        `${pct(r.cpuRatioToFloor)} | ${fixed(r.generatorCpuUsPerCall, 1)} |`,
    );
  }
  lines.push(
    '',
    "Latency at shares of each workload's maximum rate, open loop (from the scheduled start), " +
      `next to the floor at the same rate: p50 / p99 / p99.9 ms. Target: p99 at 50% within ` +
      `${p99AtHalfTarget}× of the floor's.`,
    '',
    '| workload | load | checks/s | server p50 / p99 / p99.9 | floor p50 / p99 / p99.9 | p99 ÷ floor p99 | target |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const r of results) {
    const ratio = p99RatioAtHalf(r.latency);
    for (const l of r.latency) {
      const target =
        l.load !== 0.5 || ratio === undefined
          ? '–'
          : `≤ ${p99AtHalfTarget}× ${ratio <= p99AtHalfTarget ? 'met' : '**missed**'}`;
      lines.push(
        `| ${r.title} | ${pct(l.load)} | ${l.rate} | ` +
          `${fixed(l.server.p50, 2)} / ${fixed(l.server.p99, 2)} / ${fixed(l.server.p999, 2)} | ` +
          `${fixed(l.floor.p50, 2)} / ${fixed(l.floor.p99, 2)} / ${fixed(l.floor.p999, 2)} | ` +
          `${fixed(l.server.p99 / l.floor.p99, 2)} | ${target} |`,
      );
    }
  }
  lines.push(
    '',
    "Every Check the generator saw answered was counted by the server under its frame's " +
      'verdict (`eoa_checks_total`), and a sample of each rotation was sent once through the ' +
      'Envoy-like client and its answer checked: ' +
      results.map((r) => `${r.id} ${JSON.stringify(r.verdicts)}`).join('; ') +
      '.' +
      results
        .filter((r) => r.onceOnlyRepeats !== undefined)
        .map(
          (r) =>
            ` ${r.id} sent each frame once (fresh DPoP proofs made for each run); ` +
            `${r.onceOnlyRepeats} run(s) ran out of frames and were repeated with twice as many.`,
        )
        .join(''),
  );
  return lines;
}

/** p50 / p99 / p99.9 at each load for every workload, server beside floor, log-scaled ms. */
export function renderLatencySvg(results: readonly RealisticResult[], subtitle: string): string {
  const rows = results.flatMap((r) => r.latency.map((l) => ({ r, l })));
  const rowHeight = 40;
  const left = 440;
  const panel = 520;
  const width = left + panel + 130;
  const top = 70;
  const height = top + rows.length * rowHeight + 50;
  const values = rows.flatMap(({ l }) => [l.server.p999, l.floor.p999]).filter(Number.isFinite);
  const maxMs = Math.max(1, ...values);
  const minMs = 0.05;
  const x = (ms: number): number =>
    left + (Math.log(Math.max(ms, minMs) / minMs) / Math.log(maxMs / minMs)) * panel;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="20" y="26" font-size="15" font-weight="bold">Latency under load (ms, log scale): p50 · p99 · p99.9, server (blue) above floor (grey)</text>`,
    `<text x="20" y="44" fill="#555">${escape(subtitle)}</text>`,
  ];
  for (const tick of [0.1, 0.3, 1, 3, 10, 30, 100].filter((t) => t <= maxMs)) {
    out.push(
      `<line x1="${x(tick)}" y1="${top - 8}" x2="${x(tick)}" y2="${top + rows.length * rowHeight}" stroke="#eee"/>`,
      `<text x="${x(tick)}" y="${top - 12}" text-anchor="middle" fill="#777">${tick}</text>`,
    );
  }
  const bar = (y: number, p: { p50: number; p99: number; p999: number }, colour: string) => [
    `<line x1="${x(p.p50)}" y1="${y}" x2="${x(p.p999)}" y2="${y}" stroke="${colour}" stroke-width="2"/>`,
    `<circle cx="${x(p.p50)}" cy="${y}" r="4" fill="${colour}"/>`,
    `<rect x="${x(p.p99) - 3}" y="${y - 5}" width="6" height="10" fill="${colour}"/>`,
    `<line x1="${x(p.p999)}" y1="${y - 6}" x2="${x(p.p999)}" y2="${y + 6}" stroke="${colour}" stroke-width="2"/>`,
  ];
  rows.forEach(({ r, l }, i) => {
    const y = top + i * rowHeight;
    out.push(
      `<text x="${left - 10}" y="${y + 18}" text-anchor="end">${escape(`${r.title} @ ${Math.round(l.load * 100)}%`)}</text>`,
      ...bar(y + 10, l.server, '#3b7dd8'),
      ...bar(y + 24, l.floor, '#999'),
      `<text x="${left + panel + 20}" y="${y + 18}" fill="${l.load === 0.5 && l.server.p99 > p99AtHalfTarget * l.floor.p99 ? '#c0392b' : '#555'}">p99 ×${fixed(l.server.p99 / l.floor.p99, 2)}</text>`,
    );
  });
  out.push(
    `<text x="${left}" y="${height - 16}" fill="#555">dot p50 · box p99 · tick p99.9 · load: share of the workload's maximum checks/s · p99 ×: server ÷ floor (target at 50%: ≤ ${p99AtHalfTarget})</text>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}

/**
 * The latency curve: for each workload a panel of p99 (solid) and p50 (dashed) against the
 * share of its maximum, the server (blue) beside the floor at the same rates (grey), log-scaled
 * ms; the 1.3× band over the floor's p99 at 50% is shaded.
 */
export function renderLatencyCurveSvg(
  results: readonly RealisticResult[],
  subtitle: string,
): string {
  const shown = results.filter((r) => r.latency.length > 0);
  const columns = Math.min(3, Math.max(1, shown.length));
  const panelW = 300;
  const panelH = 170;
  const gap = 70;
  const top = 70;
  const rows = Math.ceil(shown.length / columns);
  const width = 20 + columns * (panelW + gap);
  const height = top + rows * (panelH + 60) + 30;
  const values = shown.flatMap((r) =>
    r.latency.flatMap((l) => [l.server.p99, l.floor.p99, l.server.p50, l.floor.p50]),
  );
  const finite = values.filter((v) => Number.isFinite(v) && v > 0);
  const maxMs = Math.max(1, ...finite);
  const minMs = Math.min(maxMs / 10, ...finite);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="20" y="26" font-size="15" font-weight="bold">Latency against load (ms, log scale): p99 solid, p50 dashed; server blue, floor grey</text>`,
    `<text x="20" y="44" fill="#555">${escape(subtitle)}</text>`,
  ];
  shown.forEach((r, i) => {
    const x0 = 40 + (i % columns) * (panelW + gap);
    const y0 = top + Math.floor(i / columns) * (panelH + 60) + 20;
    const x = (load: number): number => x0 + load * panelW;
    const y = (ms: number): number =>
      y0 + panelH - (Math.log(Math.max(ms, minMs) / minMs) / Math.log(maxMs / minMs)) * panelH;
    out.push(
      `<text x="${x0}" y="${y0 - 8}" font-weight="bold">${escape(r.title)}</text>`,
      `<rect x="${x0}" y="${y0}" width="${panelW}" height="${panelH}" fill="none" stroke="#ccc"/>`,
    );
    const half = r.latency.find((l) => l.load === 0.5);
    if (half !== undefined && Number.isFinite(half.floor.p99)) {
      const band = y(half.floor.p99 * p99AtHalfTarget);
      out.push(
        `<rect x="${x(0.5) - 6}" y="${band}" width="12" height="${Math.max(0, y(half.floor.p99) - band)}" fill="#d5e8d4"/>`,
      );
    }
    for (const tick of [0.1, 1, 10, 100, 1000].filter((t) => t >= minMs && t <= maxMs)) {
      out.push(
        `<line x1="${x0}" y1="${y(tick)}" x2="${x0 + panelW}" y2="${y(tick)}" stroke="#eee"/>`,
        `<text x="${x0 - 4}" y="${y(tick) + 4}" text-anchor="end" fill="#777">${tick}</text>`,
      );
    }
    for (const l of r.latency) {
      out.push(
        `<text x="${x(l.load)}" y="${y0 + panelH + 14}" text-anchor="middle" fill="#777">${Math.round(l.load * 100)}%</text>`,
      );
    }
    const line = (pick: (l: LatencyPoint) => number, colour: string, dashed: boolean) => {
      const points = r.latency
        .filter((l) => Number.isFinite(pick(l)))
        .map((l) => `${x(l.load).toFixed(1)},${y(pick(l)).toFixed(1)}`);
      return `<polyline points="${points.join(' ')}" fill="none" stroke="${colour}" stroke-width="2"${dashed ? ' stroke-dasharray="4 3"' : ''}/>`;
    };
    out.push(
      line((l) => l.server.p99, '#3b7dd8', false),
      line((l) => l.floor.p99, '#999', false),
      line((l) => l.server.p50, '#3b7dd8', true),
      line((l) => l.floor.p50, '#999', true),
    );
  });
  out.push(
    `<text x="20" y="${height - 12}" fill="#555">x: share of the workload's maximum checks/s · green: up to ${p99AtHalfTarget}× the floor's p99 at 50% (the target)</text>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}
