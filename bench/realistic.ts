/**
 * The realistic-scale workloads: many distinct sessions and tokens in rotation instead of one
 * repeated, driven by the bench's own load generator (`grpc-load.ts`, one frame per call in
 * turn) against the server and, with the same generator in the same run, against both
 * do-nothing servers (grpc-js, and the server's own transport: the floor whose difference to
 * the server is the decision alone).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DownstreamRequest, EnvoyClient } from '../test/support/envoy-client.ts';
import type { UpstreamProtos } from '../test/support/upstream-protos.ts';
import { runLoadProcess, type LoadJob, type LoadResult } from './grpc-load.ts';
import { cpuTimeMs } from './process-stats.ts';
import { frameOf, verifyFrame, type ExpectedVerdict } from './scenarios.ts';
import { checkCounts, countsDelta } from './server-metrics.ts';

/** One request of a workload's rotation and the verdict it must get. */
export interface WorkloadRequest {
  readonly request: DownstreamRequest;
  readonly expected: ExpectedVerdict;
  /**
   * A request the server refuses when replayed (a DPoP proof): makes it anew, fresh and unused.
   * A rotation with such requests is sent to the server with each frame at most once.
   */
  readonly renew?: () => WorkloadRequest;
}

/**
 * `calls` requests cycling through `requests` from the first: the same objects, except each
 * once-only request, made anew at every use (so no proof is ever sent twice).
 */
export function onceOnlyRotation(
  requests: readonly WorkloadRequest[],
  calls: number,
): WorkloadRequest[] {
  if (requests.length === 0) throw new Error('no requests to rotate through');
  return Array.from({ length: calls }, (_, k) => {
    const one = requests[k % requests.length]!;
    return one.renew === undefined ? one : one.renew();
  });
}

/** Frames for a once-only run: calls at `rate` for `seconds`, half again, plus what is in flight. */
export function onceOnlyCalls(rate: number, seconds: number, inFlight: number): number {
  return Math.ceil(rate * seconds * 1.5) + inFlight;
}

export interface Workload {
  readonly id: string;
  readonly title: string;
  /** Minimum share of the do-nothing server on the server's own transport (issue targets). */
  readonly floorTarget?: number;
  readonly requests: readonly WorkloadRequest[];
}

/** How hard and how long the generator drives each endpoint. */
export interface RealisticPlan {
  readonly connections: number;
  readonly streams: number;
  readonly latencyConnections: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly rounds: number;
  /** Shares of the server's maximum rate at which latency is measured. */
  readonly latencyLoads: readonly number[];
  /** Frames of the rotation sent once each through the Envoy-like client and checked. */
  readonly verifiedSample: number;
}

/** The server under test as the workload runner needs it. */
export interface ServerUnderTest {
  readonly target: string;
  readonly pid: number;
  readonly adminBase: string;
  readonly envoy: EnvoyClient;
}

export interface Floor {
  readonly target: string;
  readonly pid: number;
}

/** p99 at half load within this many times the floor's at the same rate (issue target). */
export const p99AtHalfTarget = 1.3;

/**
 * The open-loop rates latency is measured at: each share of the maximum `rps`, whole calls per
 * second and never below one, in the order given.
 */
export function latencyRates(
  rps: number,
  loads: readonly number[],
): { readonly load: number; readonly rate: number }[] {
  if (!Number.isFinite(rps) || rps <= 0)
    throw new Error(`no maximum rate to take shares of: ${rps}`);
  return loads.map((load) => {
    if (!(load > 0 && load <= 1)) throw new Error(`a load is a share of the maximum, got ${load}`);
    return { load, rate: Math.max(1, Math.round(rps * load)) };
  });
}

/** The server's p99 over the floor's at half load, when both were measured. */
export function p99RatioAtHalf(latency: readonly LatencyPoint[]): number | undefined {
  const half = latency.find((l) => l.load === 0.5);
  if (half === undefined || !(half.floor.p99 > 0)) return undefined;
  return half.server.p99 / half.floor.p99;
}

export interface LatencyPoint {
  /** Share of the server's maximum rate. */
  readonly load: number;
  readonly rate: number;
  readonly server: LoadResult['latencyMs'];
  readonly floor: LoadResult['latencyMs'];
}

export interface RealisticResult {
  readonly id: string;
  readonly title: string;
  readonly distinct: number;
  readonly frameBytes: number;
  readonly verdicts: Readonly<Record<string, number>>;
  readonly sampleVerified: number;
  readonly rps: number;
  readonly grpcJsRps: number;
  readonly floorRps: number;
  readonly ratioToGrpcJs: number;
  readonly ratioToFloor: number;
  readonly floorTarget?: number;
  readonly cpuUsPerCheck: number;
  readonly floorCpuUsPerCheck: number;
  /**
   * The floor's CPU per Check over the server's: the share of the floor's throughput the server
   * reaches when each has a core to itself, whatever the generator beside them costs.
   */
  readonly cpuRatioToFloor: number;
  /** The generator's own CPU per call in the server's best run. */
  readonly generatorCpuUsPerCall: number;
  readonly latency: readonly LatencyPoint[];
  /** Once-only runs discarded because their frames ran out (a generator limit), then repeated. */
  readonly onceOnlyRepeats?: number;
  readonly runs: {
    readonly server: readonly number[];
    readonly grpcJs: readonly number[];
    readonly floor: readonly number[];
  };
}

const label = (e: ExpectedVerdict): string => `${e.app}/${e.verdict}/${e.reason}`;

function add(into: Map<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [key, n] of Object.entries(from)) into.set(key, (into.get(key) ?? 0) + n);
}

/** A run with every answer a `grpc-status` 0 and no stream lost, or the reason it is not. */
function failures(result: LoadResult, target: string): string | undefined {
  const bad = Object.entries(result.byGrpcStatus).filter(([status]) => status !== '0');
  if (result.errors + result.httpErrors === 0 && bad.length === 0) return undefined;
  return (
    `load against ${target}: ${result.errors} lost, ${result.httpErrors} non-200, ` +
    `statuses ${JSON.stringify(result.byGrpcStatus)}`
  );
}

/**
 * Encodes the rotation, checks a sample of it with the Envoy-like client, drives the server and
 * both floors in alternating rounds, measures latency at shares of the server's maximum next to
 * the transport floor at the same rates, and proves from `eoa_checks_total` that every Check
 * the generator saw answered got its frame's verdict.
 */
export async function measureWorkload(
  workload: Workload,
  server: ServerUnderTest,
  floors: { readonly grpcJs: Floor; readonly transport: Floor },
  protos: UpstreamProtos,
  plan: RealisticPlan,
  scratch: string,
): Promise<RealisticResult> {
  const frames: Buffer[] = [];
  const labels: string[] = [];
  const decoded: Record<string, unknown>[] = [];
  for (const one of workload.requests) {
    const encoded = frameOf(server.envoy, protos, one);
    frames.push(encoded.frame);
    decoded.push(encoded.decoded);
    labels.push(label(one.expected));
  }
  const step = Math.max(1, Math.floor(frames.length / plan.verifiedSample));
  let sampleVerified = 0;
  for (let i = 0; i < frames.length; i += step) {
    const wrong = await verifyFrame(server.envoy, decoded[i]!, workload.requests[i]!.expected);
    if (wrong !== undefined) throw new Error(`${workload.id}: frame ${i}: ${wrong}`);
    sampleVerified++;
  }
  const framesFile = join(scratch, `${workload.id}.grpc`);
  writeFileSync(framesFile, Buffer.concat(frames));
  // Once-only requests (DPoP proofs) are made anew before each run against the server, enough
  // for the run, and the generator sends each frame at most once; the floors take the rotation.
  const onceOnly = workload.requests.some((r) => r.renew !== undefined);
  const frameOfRequest = new Map(workload.requests.map((r, i) => [r, frames[i]!]));
  const onceOnlyFrames = (calls: number): Partial<LoadJob> => {
    const rotation = onceOnlyRotation(workload.requests, calls);
    const file = join(scratch, `${workload.id}.once.grpc`);
    writeFileSync(
      file,
      Buffer.concat(
        rotation.map((r) => frameOfRequest.get(r) ?? frameOf(server.envoy, protos, r).frame),
      ),
    );
    return { framesFile: file, labels: rotation.map((r) => label(r.expected)), once: true };
  };
  const jobFile = join(scratch, `${workload.id}.json`);
  const job = (target: string, seconds: number, extra: Partial<LoadJob> = {}): LoadJob => ({
    target,
    connections: plan.connections,
    streams: plan.streams,
    seconds,
    framesFile,
    labels,
    ...extra,
  });

  const served = new Map<string, number>();
  const countsBefore = await checkCounts(server.adminBase);
  // The server's rotation carries on from run to run, so each session is seen in turn.
  let serverAt = 0;
  /**
   * The server's fastest closed-loop rate yet (before its first run, the floors'): what a
   * once-only run must have frames for. The floors' alone would ask for far more frames than
   * the server can use.
   */
  let fastest = { server: 0, floor: 0 };
  let repeats = 0;
  const drive = async (
    endpoint: Floor,
    isServer: boolean,
    seconds: number,
    extra: Partial<LoadJob> = {},
  ): Promise<{ result: LoadResult; cpuUs: number }> => {
    let cpuBefore = cpuTimeMs(endpoint.pid);
    let result: LoadResult;
    if (isServer && onceOnly) {
      // Frames for the rate, and twice as many again when they ran out (the run is discarded).
      const inFlight = plan.connections * plan.streams;
      const rate = extra.rate ?? (fastest.server > 0 ? fastest.server : fastest.floor);
      let calls = onceOnlyCalls(rate, seconds, inFlight);
      for (let attempt = 1; ; attempt++) {
        const once = onceOnlyFrames(calls);
        cpuBefore = cpuTimeMs(endpoint.pid);
        result = await runLoadProcess(
          job(endpoint.target, seconds, { ...extra, ...once }),
          jobFile,
        );
        if (!result.exhausted) break;
        if (attempt === 3) {
          throw new Error(
            `${workload.id}: generator limit: ${calls} once-only frames ran out in ${seconds} s`,
          );
        }
        add(served, result.byLabel);
        repeats++;
        calls *= 2;
      }
    } else {
      result = await runLoadProcess(
        job(endpoint.target, seconds, isServer ? { ...extra, startAt: serverAt } : extra),
        jobFile,
      );
    }
    if (extra.rate === undefined) {
      const side = isServer ? 'server' : 'floor';
      fastest = { ...fastest, [side]: Math.max(fastest[side], result.rps) };
    }
    const cpuUs = ((cpuTimeMs(endpoint.pid) - cpuBefore) * 1000) / Math.max(1, result.calls);
    const wrong = failures(result, endpoint.target);
    if (wrong !== undefined) throw new Error(`${workload.id}: ${wrong}`);
    if (isServer) {
      serverAt = result.nextFrame;
      add(served, result.byLabel);
    }
    return { result, cpuUs };
  };

  if (plan.warmupSeconds > 0) {
    await drive(floors.grpcJs, false, plan.warmupSeconds);
    await drive(floors.transport, false, plan.warmupSeconds);
    await drive(server, true, plan.warmupSeconds);
  }
  const runs = { server: [] as number[], grpcJs: [] as number[], floor: [] as number[] };
  let best = { rps: 0, cpuUs: Number.NaN, generatorUs: Number.NaN };
  let bestFloor = { rps: 0, cpuUs: Number.NaN };
  for (let round = 0; round < plan.rounds; round++) {
    runs.grpcJs.push((await drive(floors.grpcJs, false, plan.seconds)).result.rps);
    const floor = await drive(floors.transport, false, plan.seconds);
    runs.floor.push(floor.result.rps);
    if (floor.result.rps > bestFloor.rps) bestFloor = { rps: floor.result.rps, cpuUs: floor.cpuUs };
    const ours = await drive(server, true, plan.seconds);
    runs.server.push(ours.result.rps);
    if (ours.result.rps > best.rps)
      best = { rps: ours.result.rps, cpuUs: ours.cpuUs, generatorUs: ours.result.cpuUsPerCall };
  }
  const latency: LatencyPoint[] = [];
  for (const { load, rate } of latencyRates(best.rps, plan.latencyLoads)) {
    const fixed = { rate, connections: plan.latencyConnections };
    const ours = await drive(server, true, plan.seconds, fixed);
    const floor = await drive(floors.transport, false, plan.seconds, fixed);
    latency.push({ load, rate, server: ours.result.latencyMs, floor: floor.result.latencyMs });
  }

  const delta = countsDelta(countsBefore, await checkCounts(server.adminBase));
  const deltaErrors = delta.get('errors') ?? 0;
  delta.delete('errors');
  const same =
    deltaErrors === 0 &&
    delta.size === served.size &&
    [...served].every(([key, n]) => delta.get(key) === n);
  if (!same) {
    throw new Error(
      `${workload.id}: the server counted ${JSON.stringify([...delta])} (errors ${deltaErrors}) ` +
        `where the generator saw ${JSON.stringify([...served])}`,
    );
  }
  const maxGrpcJs = Math.max(...runs.grpcJs);
  return {
    id: workload.id,
    title: workload.title,
    distinct: frames.length,
    frameBytes: Math.round(frames.reduce((n, f) => n + f.length, 0) / frames.length),
    verdicts: Object.fromEntries(served),
    sampleVerified,
    rps: best.rps,
    grpcJsRps: maxGrpcJs,
    floorRps: bestFloor.rps,
    ratioToGrpcJs: best.rps / maxGrpcJs,
    ratioToFloor: best.rps / bestFloor.rps,
    ...(workload.floorTarget === undefined ? {} : { floorTarget: workload.floorTarget }),
    cpuUsPerCheck: best.cpuUs,
    floorCpuUsPerCheck: bestFloor.cpuUs,
    cpuRatioToFloor: bestFloor.cpuUs / best.cpuUs,
    generatorCpuUsPerCall: best.generatorUs,
    latency,
    ...(onceOnly ? { onceOnlyRepeats: repeats } : {}),
    runs,
  };
}
