/** Writes benchmark results as JSON, a Markdown table and an SVG chart of ratios and latency. */
import { writeFileSync } from 'node:fs';
import { format, resolveConfig } from 'prettier';
import { join } from 'node:path';
import type { CodecTiming } from './codec-timing.ts';
import type { HerdResult } from './refresh-herd.ts';
import type { RealisticResult } from './realistic.ts';
import type { StartupPhases } from './cold-start.ts';
import {
  renderLatencyCurveSvg,
  renderLatencySvg,
  renderRealisticMarkdown,
} from './realistic-report.ts';
import type { ScenarioId } from './scenarios.ts';
import type { FixedRate, LoadPlan } from './throughput.ts';

export interface ScenarioResult {
  readonly id: ScenarioId;
  readonly title: string;
  /** `unavailable`: the frame did not get the expected verdict, so nothing was measured. */
  readonly status: 'measured' | 'unavailable';
  readonly note?: string;
  readonly frameBytes?: number;
  /** `app/verdict/reason` every measured Check was counted under. */
  readonly verdict?: string;
  readonly checksVerified?: number;
  /** Maximum Checks per second, best run. */
  readonly rps?: number;
  readonly baselineRps?: number;
  readonly ratio?: number;
  readonly targetRatio?: number;
  readonly cpuUsPerCheck?: number;
  readonly baselineCpuUsPerCheck?: number;
  readonly latencyAtHalf?: FixedRate;
  readonly baselineLatencyAtHalf?: FixedRate;
  /** The same frame against a do-nothing server on the server's own gRPC transport. */
  readonly floorRps?: number;
  readonly floorCpuUsPerCheck?: number;
  readonly runs?: {
    readonly server: readonly number[];
    readonly baseline: readonly number[];
    readonly floor?: readonly number[];
  };
}

export interface MemoryResult {
  readonly sessions: number;
  readonly profile: string;
  readonly rssBytes: number;
  readonly heapBytes: number;
  readonly rssPerSession: number;
  readonly heapPerSession: number;
}

export interface BenchResults {
  /** `short`: a full run's workloads with `--seconds`/`--rounds` cut down; not the figures. */
  readonly mode: 'full' | 'smoke' | 'short';
  readonly date: string;
  readonly durationSeconds: number;
  readonly machine: {
    readonly nproc: number;
    readonly cpu: string;
    readonly node: string;
    readonly h2load: string;
    readonly loadAverageAtStart: number;
    readonly loadAverageAtEnd?: number;
  };
  readonly plan: LoadPlan;
  readonly scenarios: readonly ScenarioResult[];
  /** The realistic-scale workloads (absent in results recorded before they existed). */
  readonly realistic?: readonly RealisticResult[];
  readonly memory: readonly MemoryResult[];
  readonly coldStartMs: readonly number[];
  /**
   * Cold starts while the bench's generator drives the do-nothing server on the same machine,
   * each with the phases the server logged (absent in results recorded before).
   */
  readonly coldStartLoaded?: readonly (Partial<StartupPhases> & { readonly serving: number })[];
  readonly refreshHerd: readonly HerdResult[];
  readonly codec: readonly CodecTiming[];
}

/**
 * Cold starts under load, each with where its time went: the phases are ms since spawn, so each
 * column is the previous one plus that phase.
 */
export function renderColdStartLoaded(
  runs: readonly (Partial<StartupPhases> & { readonly serving: number })[],
): string[] {
  if (runs.length === 0) return [];
  const col = (pick: (c: (typeof runs)[number]) => number | undefined) =>
    median(runs.map(pick).filter((n): n is number => n !== undefined));
  const lines = [
    '',
    `Cold start to SERVING while the bench's generator drives the do-nothing server on the same ` +
      `machine, ${runs.length} runs; ms since spawn when each phase ended (median):`,
    '',
    '| modules loaded | config read | listening (keys derived, apps built) | SERVING (discovery) |',
    '| ---: | ---: | ---: | ---: |',
    `| ${fixed(col((c) => c.modules))} | ${fixed(col((c) => c.config))} | ` +
      `${fixed(col((c) => c.listening))} | ${fixed(col((c) => c.serving))} |`,
    '',
    `Each run: ${runs.map((c) => `${fixed(c.modules)}/${fixed(c.config)}/${fixed(c.listening)}/${fixed(c.serving)}`).join(', ')}.`,
  ];
  return lines;
}

/** Targets of SPEC §13 other than the per-scenario throughput ratios. */
export const targets = Object.freeze({
  p99Ms: 2,
  bytesPerSession: 2_048,
  rssAt100kBytes: 300 * 2 ** 20,
  coldStartMs: 1_000,
});

const fixed = (n: number | undefined, digits = 0): string =>
  n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits);
const pct = (n: number | undefined): string => (n === undefined ? '–' : `${(n * 100).toFixed(1)}%`);
const verdictMark = (ok: boolean): string => (ok ? 'met' : '**missed**');

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** The Markdown report: one table per measurement, then the targets met or missed. */
export function renderMarkdown(r: BenchResults): string {
  const lines: string[] = [];
  lines.push(
    `Run ${r.date} (${r.mode}, ${r.durationSeconds.toFixed(0)} s) on ${r.machine.nproc} × ${r.machine.cpu}, ` +
      `Node ${r.machine.node}, ${r.machine.h2load}; load average ${r.machine.loadAverageAtStart.toFixed(2)} at start, ` +
      `${fixed(r.machine.loadAverageAtEnd, 2)} at end.`,
    '',
    `h2load: ${r.plan.clients} connections × ${r.plan.streams} streams, ${r.plan.seconds} s per run, ` +
      `best of ${r.plan.rounds} alternating runs; latency at half of the scenario's maximum with ` +
      `${r.plan.latencyClients} × ${r.plan.latencyStreams}.`,
    '',
    '| scenario | checks/s | do-nothing checks/s | ratio | target | p50 ms @½ | p99 ms @½ | do-nothing p99 ms @½ | CPU µs/check | do-nothing CPU µs/check |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const s of r.scenarios) {
    if (s.status !== 'measured') {
      lines.push(
        `| ${s.title} | not available yet (${s.note ?? ''}) | | | ${pct(s.targetRatio)} | | | | | |`,
      );
      continue;
    }
    const target =
      s.targetRatio === undefined
        ? '–'
        : `≥ ${pct(s.targetRatio)} ${verdictMark((s.ratio ?? 0) >= s.targetRatio)}`;
    lines.push(
      `| ${s.title} | ${fixed(s.rps)} | ${fixed(s.baselineRps)} | ${pct(s.ratio)} | ${target} | ` +
        `${fixed(s.latencyAtHalf?.p50Ms, 2)} | ${fixed(s.latencyAtHalf?.p99Ms, 2)} | ` +
        `${fixed(s.baselineLatencyAtHalf?.p99Ms, 2)} | ${fixed(s.cpuUsPerCheck, 1)} | ${fixed(s.baselineCpuUsPerCheck, 1)} |`,
    );
  }
  lines.push(
    '',
    "The same frames against a do-nothing server on the server's own gRPC transport: what the " +
      'decision itself costs.',
    '',
    '| scenario | checks/s | transport do-nothing checks/s | ratio | CPU µs/check | transport do-nothing CPU µs/check | decision µs/check |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const s of r.scenarios) {
    if (s.status !== 'measured' || s.floorRps === undefined) continue;
    const decision =
      s.cpuUsPerCheck === undefined || s.floorCpuUsPerCheck === undefined
        ? undefined
        : s.cpuUsPerCheck - s.floorCpuUsPerCheck;
    lines.push(
      `| ${s.title} | ${fixed(s.rps)} | ${fixed(s.floorRps)} | ${pct((s.rps ?? 0) / s.floorRps)} | ` +
        `${fixed(s.cpuUsPerCheck, 1)} | ${fixed(s.floorCpuUsPerCheck, 1)} | ${fixed(decision, 1)} |`,
    );
  }
  lines.push(...renderRealisticMarkdown(r.realistic ?? []));
  lines.push('', '| cached sessions | RSS MiB | heap MiB | heap B/session | RSS B/session |');
  lines.push('| ---: | ---: | ---: | ---: | ---: |');
  for (const m of r.memory) {
    lines.push(
      `| ${m.sessions} | ${fixed(m.rssBytes / 2 ** 20)} | ${fixed(m.heapBytes / 2 ** 20)} | ` +
        `${fixed(m.heapPerSession)} | ${fixed(m.rssPerSession)} |`,
    );
  }
  lines.push(
    '',
    '| refresh herd | checks | all answered ms | p50 ms | p99 ms | grants | invalid_grant | allowed |',
  );
  lines.push('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const h of r.refreshHerd) {
    lines.push(
      `| ${h.replicas} replica(s) | ${h.checks} | ${fixed(h.allAnsweredMs)} | ${fixed(h.p50Ms)} | ` +
        `${fixed(h.p99Ms)} | ${h.grants} | ${h.invalidGrants} | ${h.allowed} |`,
    );
  }
  lines.push(
    '',
    '| cookie codec (median µs) | JWE chars | seal | open via jose | open via node:crypto | load cached |',
  );
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const c of r.codec) {
    lines.push(
      `| ${c.profile} tokens | ${c.jweChars} | ${fixed(c.sealUs, 1)} | ${fixed(c.openJoseUs, 1)} | ` +
        `${fixed(c.openNodeCryptoUs, 1)} | ${fixed(c.loadCachedUs, 1)} |`,
    );
  }
  const cold = median(r.coldStartMs);
  lines.push(
    '',
    `Cold start to SERVING (provider up), median of ${r.coldStartMs.length}: ${fixed(cold)} ms ` +
      `(${r.coldStartMs.map((ms) => fixed(ms)).join(', ')}).`,
    ...renderColdStartLoaded(r.coldStartLoaded ?? []),
    '',
    'Targets (SPEC §13):',
    '',
  );
  for (const s of r.scenarios) {
    if (s.targetRatio === undefined) continue;
    lines.push(
      s.status === 'measured'
        ? `- ${s.title} ≥ ${pct(s.targetRatio)} of the do-nothing server: ${pct(s.ratio)}, ${verdictMark((s.ratio ?? 0) >= s.targetRatio)}`
        : `- ${s.title} ≥ ${pct(s.targetRatio)}: not available yet`,
    );
  }
  const cookie = r.scenarios.find((s) => s.id === 'cookie');
  if (cookie?.latencyAtHalf !== undefined) {
    lines.push(
      `- hot cookie session p99 ≤ ${targets.p99Ms} ms at half of maximum load: ` +
        `${fixed(cookie.latencyAtHalf.p99Ms, 2)} ms, ${verdictMark(cookie.latencyAtHalf.p99Ms <= targets.p99Ms)} ` +
        `(the do-nothing server: ${fixed(cookie.baselineLatencyAtHalf?.p99Ms, 2)} ms at the same rate)`,
    );
  }
  for (const m of r.memory) {
    lines.push(
      `- ≤ 2 KiB per cached session at ${m.sessions}: ${fixed(m.heapPerSession)} B of heap, ` +
        verdictMark(m.heapPerSession <= targets.bytesPerSession),
    );
  }
  const big = r.memory.find((m) => m.sessions === 100_000);
  if (big !== undefined) {
    lines.push(
      `- under 300 MiB RSS at 100k sessions: ${fixed(big.rssBytes / 2 ** 20)} MiB, ` +
        verdictMark(big.rssBytes < targets.rssAt100kBytes),
    );
  }
  lines.push(
    `- cold start under 1 s: ${fixed(cold)} ms, ${verdictMark(cold < targets.coldStartMs)}`,
  );
  const loaded = median((r.coldStartLoaded ?? []).map((c) => c.serving));
  if ((r.coldStartLoaded ?? []).length > 0) {
    lines.push(
      `- cold start under 1 s on a loaded machine: ${fixed(loaded)} ms, ` +
        verdictMark(loaded < targets.coldStartMs),
    );
  }
  for (const h of r.refreshHerd) {
    lines.push(
      `- refresh herd, ${h.replicas} replica(s): ${h.grants} grant for ${h.checks} Checks, ` +
        `${h.checks - h.allowed} denied, ${verdictMark(h.grants === 1 && h.allowed === h.checks)}`,
    );
  }
  return lines.join('\n') + '\n';
}

const escape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A two-panel bar chart: throughput ratio to the do-nothing server, and p50/p99 at half load. */
export function renderSvg(r: BenchResults): string {
  const measured = r.scenarios.filter((s) => s.status === 'measured');
  const rowHeight = 34;
  const left = 250;
  const width = 900;
  const panel = 560;
  const top = 60;
  const ratioHeight = measured.length * rowHeight;
  const latencyTop = top + ratioHeight + 80;
  const height = latencyTop + measured.length * rowHeight + 50;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="20" y="28" font-size="16" font-weight="bold">envoy-oidc-authz: throughput relative to a do-nothing grpc-js Check server</text>`,
    `<text x="20" y="46" fill="#555">${escape(`${r.date} · ${r.machine.nproc} × ${r.machine.cpu} · Node ${r.machine.node} · ${r.mode}`)}</text>`,
  ];
  const x = (ratio: number) => left + Math.min(ratio, 1.1) * (panel / 1.1);
  out.push(
    `<line x1="${x(1)}" y1="${top - 6}" x2="${x(1)}" y2="${top + ratioHeight}" stroke="#999" stroke-dasharray="4 3"/>`,
  );
  out.push(`<text x="${x(1) + 4}" y="${top - 8}" fill="#555">100%</text>`);
  measured.forEach((s, i) => {
    const y = top + i * rowHeight;
    const ratio = s.ratio ?? 0;
    const met = s.targetRatio === undefined || ratio >= s.targetRatio;
    out.push(`<text x="${left - 10}" y="${y + 20}" text-anchor="end">${escape(s.title)}</text>`);
    out.push(
      `<rect x="${left}" y="${y + 6}" width="${x(ratio) - left}" height="20" fill="${met ? '#3b7dd8' : '#d8663b'}"/>`,
    );
    out.push(`<text x="${x(ratio) + 6}" y="${y + 21}">${pct(ratio)}</text>`);
    if (s.targetRatio !== undefined) {
      out.push(
        `<line x1="${x(s.targetRatio)}" y1="${y + 2}" x2="${x(s.targetRatio)}" y2="${y + 30}" stroke="#222" stroke-width="2"/>`,
      );
    }
  });
  out.push(
    `<text x="${left}" y="${top + ratioHeight + 20}" fill="#555">bar: share of the do-nothing server's checks/s with the same frame · black tick: target</text>`,
  );

  const maxMs = Math.max(
    targets.p99Ms * 1.5,
    ...measured.map((s) =>
      Math.max(s.latencyAtHalf?.p99Ms ?? 0, s.baselineLatencyAtHalf?.p99Ms ?? 0),
    ),
  );
  const lx = (ms: number) => left + (Math.min(ms, maxMs) / maxMs) * panel;
  out.push(
    `<text x="20" y="${latencyTop - 24}" font-size="15" font-weight="bold">Latency at half of maximum load (ms): p50 dark, p99 light, do-nothing p99 as a line</text>`,
  );
  out.push(
    `<line x1="${lx(targets.p99Ms)}" y1="${latencyTop - 6}" x2="${lx(targets.p99Ms)}" y2="${latencyTop + measured.length * rowHeight}" stroke="#999" stroke-dasharray="4 3"/>`,
  );
  out.push(
    `<text x="${lx(targets.p99Ms) + 4}" y="${latencyTop - 8}" fill="#555">p99 target ${targets.p99Ms} ms</text>`,
  );
  measured.forEach((s, i) => {
    const y = latencyTop + i * rowHeight;
    const p50 = s.latencyAtHalf?.p50Ms ?? 0;
    const p99 = s.latencyAtHalf?.p99Ms ?? 0;
    out.push(`<text x="${left - 10}" y="${y + 20}" text-anchor="end">${escape(s.title)}</text>`);
    out.push(
      `<rect x="${left}" y="${y + 6}" width="${lx(p99) - left}" height="20" fill="#9cc0ee"/>`,
    );
    out.push(
      `<rect x="${left}" y="${y + 6}" width="${lx(p50) - left}" height="20" fill="#3b7dd8"/>`,
    );
    out.push(`<text x="${lx(p99) + 6}" y="${y + 21}">${fixed(p50, 2)} / ${fixed(p99, 2)}</text>`);
    const base = s.baselineLatencyAtHalf?.p99Ms;
    if (base !== undefined) {
      out.push(
        `<line x1="${lx(base)}" y1="${y + 2}" x2="${lx(base)}" y2="${y + 30}" stroke="#222" stroke-width="2"/>`,
      );
    }
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/**
 * Writes `latest.json`, `latest.md` and `latest.svg` into `dir`, formatted as the repository's
 * Prettier config wants them (they are committed); returns their paths.
 */
export async function writeReports(results: BenchResults, dir: string): Promise<string[]> {
  const files = {
    json: join(dir, 'latest.json'),
    md: join(dir, 'latest.md'),
    svg: join(dir, 'latest.svg'),
  };
  const options = (await resolveConfig(files.md)) ?? {};
  writeFileSync(files.json, await format(JSON.stringify(results), { ...options, parser: 'json' }));
  writeFileSync(
    files.md,
    await format(renderMarkdown(results), { ...options, parser: 'markdown' }),
  );
  writeFileSync(files.svg, renderSvg(results));
  const realistic = results.realistic ?? [];
  if (realistic.length === 0) return Object.values(files);
  const latency = join(dir, 'latest-latency.svg');
  const subtitle = `${results.date} · ${results.machine.nproc} × ${results.machine.cpu} · Node ${results.machine.node} · ${results.mode}`;
  writeFileSync(latency, renderLatencySvg(realistic, subtitle));
  const curve = join(dir, 'latest-latency-curve.svg');
  writeFileSync(curve, renderLatencyCurveSvg(realistic, subtitle));
  return [...Object.values(files), latency, curve];
}
