/**
 * Where a server's CPU went, from the V8 CPU profiles `--profile DIR` writes: the busy time of
 * each profile (idle left out) split by what ran, so a workload's profile says how much of a
 * Check is the decision and how much the HTTP/2 stack, protobuf decoding, encoding and the
 * collector. Each sample counts for the function it was in (self time); a function is placed
 * by its file, and a built-in without one (`utf8Slice`, `writeBuffer`) by its caller's.
 *
 * `node dist/bench/profile-summary.js DIR|FILE...` prints one table per profile.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The parts a Check's CPU is split into, in the order they are reported. */
export const parts = [
  'decision: request parsing and policy',
  'decision: sessions, caches and digests',
  'decision: steps and identity headers',
  'decision: crypto (digests, ciphers, signatures)',
  'decision: metrics and logs',
  'transport and response encoding',
  'protobuf decoding of the request',
  'HTTP/2, streams and events (Node)',
  'garbage collector',
  'other (V8, module loading, timers)',
] as const;

export type Part = (typeof parts)[number];

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

/** The parts of a `.cpuprofile` this reads. */
export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** What one function counts as. */
export function partOf(frame: CallFrame): Part | 'idle' {
  const { functionName: name, url } = frame;
  if (name === '(idle)') return 'idle';
  if (name === '(garbage collector)') return 'garbage collector';
  if (name.endsWith('$decode') || url.includes('/node_modules/protobufjs/')) {
    return 'protobuf decoding of the request';
  }
  if (name.startsWith('RegExp:')) return 'decision: request parsing and policy';
  if (url.startsWith('node:internal/crypto') || url.includes('/node_modules/jose/')) {
    return 'decision: crypto (digests, ciphers, signatures)';
  }
  const ours = /\/dist\/src\/(.+)$/.exec(url)?.[1];
  if (ours !== undefined) {
    if (ours.startsWith('server/')) return 'transport and response encoding';
    if (ours.startsWith('observability/')) return 'decision: metrics and logs';
    if (ours.startsWith('policy/') || ours === 'authz/parse-request.js') {
      return 'decision: request parsing and policy';
    }
    if (ours.startsWith('session/') || ours === 'expiring-lru.js' || ours === 'digest.js') {
      return 'decision: sessions, caches and digests';
    }
    return 'decision: steps and identity headers';
  }
  if (/\/node_modules\/(prom-client|pino|thread-stream|sonic-boom)\//.test(url)) {
    return 'decision: metrics and logs';
  }
  if (/^node:(internal\/(http2|streams|stream_base_commons|net)|events|net|stream)/.test(url)) {
    return 'HTTP/2, streams and events (Node)';
  }
  return 'other (V8, module loading, timers)';
}

/** Busy milliseconds of a profile and each part's share of them. */
export interface ProfileSummary {
  readonly busyMs: number;
  readonly shares: Readonly<Record<Part, number>>;
}

export function summarize(profile: CpuProfile): ProfileSummary {
  const parent = new Map<number, number>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const partById = new Map<number, Part | 'idle'>();
  const placed = (id: number): Part | 'idle' => {
    const known = partById.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id);
    let part: Part | 'idle' =
      node === undefined ? 'other (V8, module loading, timers)' : partOf(node.callFrame);
    const up = parent.get(id);
    if (
      node !== undefined &&
      part === 'other (V8, module loading, timers)' &&
      node.callFrame.url === '' &&
      !node.callFrame.functionName.startsWith('(') &&
      up !== undefined
    ) {
      part = placed(up);
    }
    partById.set(id, part);
    return part;
  };
  for (const node of profile.nodes) placed(node.id);
  const micros = Object.fromEntries(parts.map((part) => [part, 0])) as Record<Part, number>;
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const part = partById.get(id);
    const delta = profile.timeDeltas[i] ?? 0;
    if (part === undefined || part === 'idle' || delta <= 0) return;
    micros[part] += delta;
    busy += delta;
  });
  const shares = Object.fromEntries(
    parts.map((part) => [part, busy === 0 ? 0 : micros[part] / busy]),
  ) as Record<Part, number>;
  return { busyMs: busy / 1000, shares };
}

/** The table of one summary: share of busy CPU per part, decision parts summed last. */
export function formatSummary(title: string, summary: ProfileSummary): string {
  const percent = (share: number) => `${(share * 100).toFixed(1)}%`.padStart(6);
  const decision = parts
    .filter((part) => part.startsWith('decision:'))
    .reduce((sum, part) => sum + summary.shares[part], 0);
  return [
    `${title}: ${summary.busyMs.toFixed(0)} ms busy`,
    ...parts.map((part) => `  ${percent(summary.shares[part])}  ${part}`),
    `  ${percent(decision)}  the decision in all`,
  ].join('\n');
}

function profilesIn(paths: readonly string[]): string[] {
  return paths.flatMap((path) =>
    statSync(path).isDirectory()
      ? readdirSync(path)
          .filter((name) => name.endsWith('.cpuprofile'))
          .sort()
          .map((name) => join(path, name))
      : [path],
  );
}

/** The table of every `.cpuprofile` among `paths` (files, or folders holding them). */
export function summariesOf(paths: readonly string[]): string[] {
  return profilesIn(paths).map((file) =>
    formatSummary(file, summarize(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile)),
  );
}

if (process.argv[1]?.endsWith('profile-summary.js') === true) {
  const summaries = summariesOf(process.argv.slice(2));
  if (summaries.length === 0) {
    console.error('usage: node dist/bench/profile-summary.js DIR|FILE... (.cpuprofile files)');
    process.exit(2);
  }
  console.log(summaries.join('\n\n'));
}
