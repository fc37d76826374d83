/**
 * The benchmark (`npm run bench`; `npm run bench:smoke` with `--smoke`): the server and a
 * do-nothing Check server driven by h2load with real Check frames, memory per cached session,
 * cold start, the refresh herd and codec timings; results in `bench/results/latest.*`.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { startTestProvider, type TestProvider } from '../dev/test-provider.ts';
import { AppBrowser } from '../test/support/browser.ts';
import { EnvoyClient } from '../test/support/envoy-client.ts';
import { startRedis, type RedisProcess } from '../test/support/redis-servers.ts';
import { loadUpstreamProtos, type UpstreamProtos } from '../test/support/upstream-protos.ts';
import {
  startDoNothingServer,
  startServerProcess,
  type DoNothingProcess,
  type ServerProcess,
} from './child-servers.ts';
import { timeCookieCodec } from './codec-timing.ts';
import { measureColdStart, measureColdStartPhases } from './cold-start.ts';
import { runLoadProcess } from './grpc-load.ts';
import { writeFileSync } from 'node:fs';
import { h2loadInstallHint, h2loadVersion } from './h2load.ts';
import { herdAccessTokenTtlSeconds, herdOrigin, runRefreshHerd } from './refresh-herd.ts';
import { writeReports, type BenchResults, type ScenarioResult } from './report.ts';
import { frameOf, verifyFrame, type Scenario } from './scenarios.ts';
import {
  measureWorkload,
  p99AtHalfTarget,
  p99RatioAtHalf,
  type RealisticPlan,
  type RealisticResult,
} from './realistic.ts';
import {
  fullSizes,
  navigation,
  realisticWorkloads,
  smokeSizes,
  workloadIds,
  type DpopTokens,
  type WorkloadId,
} from './realistic-workloads.ts';
import { benchDpopClient } from './dpop-signer.ts';
import { mintSessions } from './session-minting.ts';
import { summariesOf } from './profile-summary.ts';
import {
  benchBearerToken,
  benchBearerTokens,
  benchDpopTokens,
  clientSecret,
  memoryServerConfig,
  redisServerConfig,
  sessionSecret,
} from './server-configs.ts';
import { checkCounts, countsDelta } from './server-metrics.ts';
import {
  endpointUrl,
  fixedRate,
  maxRateOnce,
  warmUp,
  type Endpoint,
  type LoadPlan,
  type MaxRate,
} from './throughput.ts';

const { values: flags } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    out: { type: 'string' },
    only: { type: 'string' },
    /** A folder for CPU profiles (`--cpu-prof`) of the server processes, written as they stop. */
    profile: { type: 'string' },
    /** Seconds per realistic-workload run (and per latency point), for a short run. */
    seconds: { type: 'string' },
    /** Alternating throughput rounds per realistic workload, for a short run. */
    rounds: { type: 'string' },
  },
});
/** A positive number given on the command line, or the plan's own when absent. */
function positive(flag: string | undefined, name: string): number | undefined {
  if (flag === undefined) return undefined;
  const n = Number(flag);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
}
const secondsFlag = positive(flags.seconds, 'seconds');
const roundsFlag = positive(flags.rounds, 'rounds');
const smoke = flags.smoke === true;
/**
 * `--only cookie,login,memory`: a subset of the parts (scenario ids, `cold-start`, `memory`,
 * `herd`, `codec`), for profiling and before/after comparisons; results then go to a temporary
 * folder unless `--out` says otherwise.
 */
const only = flags.only === undefined ? undefined : new Set(flags.only.split(','));
const wanted = (part: string): boolean => only === undefined || only.has(part);
const here = dirname(fileURLToPath(import.meta.url));
// dist/bench/ → the repository's bench/results/; a smoke run only proves the bench works, so its
// output goes to a temporary folder and never over the recorded results.
const outDir = resolve(
  flags.out ??
    (smoke || only !== undefined
      ? join(tmpdir(), 'eoa-bench-partial')
      : join(here, '..', '..', 'bench', 'results')),
);

const plan: LoadPlan = smoke
  ? {
      clients: 1,
      streams: 4,
      latencyClients: 1,
      latencyStreams: 4,
      seconds: 1,
      warmupSeconds: 0,
      rounds: 1,
    }
  : {
      clients: 2,
      streams: 32,
      // Envoy opens one HTTP/2 connection per worker thread to the authorization cluster and
      // multiplexes Checks on it: two workers on this two-core machine.
      latencyClients: 2,
      latencyStreams: 4,
      seconds: 6,
      warmupSeconds: 2,
      rounds: 3,
    };

/**
 * The realistic-scale workloads, driven by the bench's own generator; a smoke run sends a few
 * distinct sessions of two of them, only to prove they work.
 */
const plannedRealistic: RealisticPlan = smoke
  ? {
      connections: 1,
      streams: 4,
      latencyConnections: 1,
      seconds: 0.5,
      warmupSeconds: 0,
      rounds: 1,
      latencyLoads: [0.5],
      verifiedSample: 5,
    }
  : {
      connections: 2,
      streams: 32,
      latencyConnections: 2,
      seconds: 5,
      warmupSeconds: 1,
      rounds: 3,
      latencyLoads: [0.25, 0.5, 0.8],
      verifiedSample: 50,
    };
/** `--seconds 2 --rounds 1`: a short run of the same workloads, its figures labelled as such. */
const realisticPlan: RealisticPlan = {
  ...plannedRealistic,
  ...(secondsFlag === undefined ? {} : { seconds: secondsFlag }),
  ...(roundsFlag === undefined ? {} : { rounds: Math.round(roundsFlag) }),
  ...(secondsFlag === undefined && roundsFlag === undefined
    ? {}
    : { warmupSeconds: Math.min(plannedRealistic.warmupSeconds, secondsFlag ?? 1) }),
};
const sizes = smoke ? smokeSizes : fullSizes;
const smokeWorkloads: ReadonlySet<WorkloadId> = new Set(['cookies', 'mix']);
const wantedWorkload = (id: WorkloadId): boolean =>
  only === undefined ? !smoke || smokeWorkloads.has(id) : only.has(id);

const log = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

function machine(): BenchResults['machine'] {
  const lscpu = spawnSync('lscpu', { encoding: 'utf8' }).stdout ?? '';
  return {
    nproc: cpus().length,
    cpu: /Model name:\s*(.+)/.exec(lscpu)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown',
    node: process.version,
    h2load: h2loadVersion() ?? 'missing',
    loadAverageAtStart: loadavg()[0] ?? 0,
  };
}

async function loginCookie(envoy: EnvoyClient, origin: string): Promise<string> {
  const browser = new AppBrowser(envoy);
  await browser.login(`${origin}/`);
  const cookie = browser.cookieHeader();
  if (cookie === undefined) throw new Error(`no session cookie after logging in at ${origin}`);
  return cookie;
}

function scenarios(cookies: { web: string; srv: string }, bearerToken: string): Scenario[] {
  return [
    {
      id: 'cookie',
      title: 'hot cookie session',
      targetRatio: 0.85,
      request: {
        url: 'https://web.example.com/dashboard/overview',
        headers: [...navigation, ['cookie', `${cookies.web}; _ga=GA1.2.3456789.1234567890`]],
      },
      expected: { app: 'web', verdict: 'allow', reason: 'session', user: 'alice' },
    },
    {
      id: 'bearer',
      title: 'hot bearer JWT',
      targetRatio: 0.8,
      request: {
        url: 'https://api.example.com/v1/things?limit=20',
        headers: [
          ['accept', 'application/json'],
          ['authorization', `Bearer ${bearerToken}`],
          ['user-agent', 'bench-client/1.0'],
        ],
      },
      expected: { app: 'api', verdict: 'allow', reason: 'bearer', user: 'svc-bench' },
    },
    {
      id: 'login',
      title: 'unauthenticated navigation (302)',
      targetRatio: 0.7,
      request: { url: 'https://web.example.com/dashboard/overview', headers: navigation },
      expected: { app: 'web', verdict: 'login', reason: 'login', status: 302 },
    },
    {
      id: 'public',
      title: 'public path',
      request: { url: 'https://web.example.com/public/logo.svg', headers: navigation },
      expected: { app: 'web', verdict: 'allow', reason: 'public_path' },
    },
    {
      id: 'server-session',
      title: 'server session on redis-server',
      request: {
        url: 'https://srv.example.com/reports',
        headers: [...navigation, ['cookie', cookies.srv]],
      },
      expected: { app: 'srv', verdict: 'allow', reason: 'session', user: 'alice' },
    },
  ];
}

function best(runs: readonly MaxRate[]): MaxRate {
  return runs.reduce((a, b) => (b.rps > a.rps ? b : a));
}

async function measureScenario(
  scenario: Scenario,
  server: ServerProcess,
  envoy: EnvoyClient,
  baselines: { readonly grpcJs: DoNothingProcess; readonly transport: DoNothingProcess },
  protos: UpstreamProtos,
  scratch: string,
): Promise<ScenarioResult> {
  const { frame, decoded } = frameOf(envoy, protos, scenario);
  const frameFile = join(scratch, `${scenario.id}.grpc`);
  writeFileSync(frameFile, frame);
  const wrong = await verifyFrame(envoy, decoded, scenario.expected);
  if (wrong !== undefined) {
    return { id: scenario.id, title: scenario.title, status: 'unavailable', note: wrong };
  }
  const label = `${scenario.expected.app}/${scenario.expected.verdict}/${scenario.expected.reason}`;
  const ours: Endpoint = {
    url: endpointUrl(server.grpcTarget),
    pid: server.child.pid ?? 0,
    countChecks: async () => {
      let total = 0;
      for (const [key, n] of await checkCounts(server.adminBase)) if (key !== 'errors') total += n;
      return total;
    },
  };
  const theirs: Endpoint = {
    url: endpointUrl(baselines.grpcJs.grpcTarget),
    pid: baselines.grpcJs.pid,
  };
  const floor: Endpoint = {
    url: endpointUrl(baselines.transport.grpcTarget),
    pid: baselines.transport.pid,
  };

  const countsBefore = await checkCounts(server.adminBase);
  await warmUp(theirs, frameFile, plan);
  await warmUp(floor, frameFile, plan);
  await warmUp(ours, frameFile, plan);
  const baselineRuns: MaxRate[] = [];
  const floorRuns: MaxRate[] = [];
  const serverRuns: MaxRate[] = [];
  for (let round = 0; round < plan.rounds; round++) {
    baselineRuns.push(await maxRateOnce(theirs, frameFile, plan));
    floorRuns.push(await maxRateOnce(floor, frameFile, plan));
    serverRuns.push(await maxRateOnce(ours, frameFile, plan));
  }
  const maxBaseline = best(baselineRuns);
  const maxFloor = best(floorRuns);
  const maxServer = best(serverRuns);
  const halfRate = maxServer.rps / 2;
  const latency = await fixedRate(ours, frameFile, plan, halfRate, scratch);
  const baselineLatency = await fixedRate(theirs, frameFile, plan, halfRate, scratch);

  // Every Check the server counted while h2load ran must carry the expected verdict, and no
  // Check may have ended in a gRPC error (h2load only sees HTTP 200 either way).
  const delta = countsDelta(countsBefore, await checkCounts(server.adminBase));
  const expectedChecks = delta.get(label) ?? 0;
  const allChecks = [...delta].reduce((sum, [key, n]) => (key === 'errors' ? sum : sum + n), 0);
  if (expectedChecks === 0 || expectedChecks !== allChecks || (delta.get('errors') ?? 0) > 0) {
    throw new Error(
      `${scenario.id}: checks under load were not all ${label}: ${JSON.stringify([...delta])}`,
    );
  }
  return {
    id: scenario.id,
    title: scenario.title,
    status: 'measured',
    frameBytes: frame.length,
    verdict: label,
    checksVerified: expectedChecks,
    rps: maxServer.rps,
    baselineRps: maxBaseline.rps,
    ratio: maxServer.rps / maxBaseline.rps,
    ...(scenario.targetRatio === undefined ? {} : { targetRatio: scenario.targetRatio }),
    cpuUsPerCheck: maxServer.cpuUsPerCheck,
    baselineCpuUsPerCheck: maxBaseline.cpuUsPerCheck,
    latencyAtHalf: latency,
    baselineLatencyAtHalf: baselineLatency,
    floorRps: maxFloor.rps,
    floorCpuUsPerCheck: maxFloor.cpuUsPerCheck,
    runs: {
      server: serverRuns.map((r) => r.rps),
      baseline: baselineRuns.map((r) => r.rps),
      floor: floorRuns.map((r) => r.rps),
    },
  };
}

function sessionMemory(sessions: number): BenchResults['memory'][number] {
  const child = spawnSync(
    process.execPath,
    ['--expose-gc', join(here, 'session-memory.js'), String(sessions), 'opaque'],
    { encoding: 'utf8' },
  );
  if (child.status !== 0) throw new Error(`session-memory failed:\n${child.stderr}`);
  return JSON.parse(child.stdout) as BenchResults['memory'][number];
}

/** A DPoP client key and a fifth as many tokens bound to it as the plain bearer tokens. */
async function dpopTokens(provider: TestProvider): Promise<DpopTokens> {
  const signer = benchDpopClient();
  const count = Math.max(1, Math.round(sizes.tokens / 5));
  return { signer, tokens: await benchDpopTokens(provider, signer.jkt, count) };
}

/** Mints what the wanted workloads rotate through, then measures each. */
async function runRealistic(
  provider: TestProvider,
  redis: RedisProcess,
  servers: { readonly memory: ServerProcess; readonly redis: ServerProcess },
  envoys: { readonly web: EnvoyClient; readonly srv: EnvoyClient },
  floors: { readonly grpcJs: DoNothingProcess; readonly transport: DoNothingProcess },
  protos: UpstreamProtos,
  scratch: string,
): Promise<RealisticResult[]> {
  const ids = workloadIds.filter(wantedWorkload);
  if (ids.length === 0) return [];
  // Only what the wanted workloads send is minted: a short run of the logins needs none.
  const cookieCount = ids.includes('many-cookies')
    ? sizes.manyCookies
    : ids.some(
          (id) =>
            id !== 'logins' &&
            id !== 'bearers' &&
            id !== 'hot-bearer-gen' &&
            id !== 'server-sessions',
        )
      ? sizes.cookies
      : 1;
  log(`realistic workloads: minting ${cookieCount} cookie sessions and ${sizes.tokens} tokens`);
  const minted = {
    cookies: await mintSessions(memoryServerConfig(provider.issuer), 'web', cookieCount),
    serverCookies: ids.includes('server-sessions')
      ? await mintSessions(
          redisServerConfig(provider.issuer, redis.url),
          'srv',
          sizes.serverSessions,
        )
      : [],
    tokens: await benchBearerTokens(provider, sizes.tokens),
    ...(ids.includes('mix-dpop') ? { dpop: await dpopTokens(provider) } : {}),
  };
  const workloads = realisticWorkloads(sizes, minted);
  const transportFloors = {
    grpcJs: { target: floors.grpcJs.grpcTarget, pid: floors.grpcJs.pid },
    transport: { target: floors.transport.grpcTarget, pid: floors.transport.pid },
  };
  let assertions: ServerProcess | undefined;
  let assertionsEnvoy: EnvoyClient | undefined;
  const results: RealisticResult[] = [];
  try {
    for (const id of ids) {
      let server = id === 'server-sessions' ? servers.redis : servers.memory;
      let envoy = id === 'server-sessions' ? envoys.srv : envoys.web;
      if (id === 'mix-assertions') {
        assertions = await startServerProcess(
          memoryServerConfig(provider.issuer, { assertions: true }),
          flags.profile,
        );
        assertionsEnvoy = new EnvoyClient({
          target: assertions.grpcTarget,
          protos,
          timeoutMs: 5_000,
        });
        server = assertions;
        envoy = assertionsEnvoy;
      }
      let result: RealisticResult;
      try {
        result = await measureWorkload(
          workloads[id](),
          {
            target: server.grpcTarget,
            pid: server.child.pid ?? 0,
            adminBase: server.adminBase,
            envoy,
          },
          transportFloors,
          protos,
          realisticPlan,
          scratch,
        );
      } catch (error) {
        // One workload that fails is reported; the others are still measured and written.
        log(`${id}: failed: ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      results.push(result);
      const half = result.latency.find((l) => l.load === 0.5);
      const p99Ratio = p99RatioAtHalf(result.latency);
      log(
        `${result.title}: ${result.rps.toFixed(0)} checks/s = ` +
          `${(result.ratioToFloor * 100).toFixed(1)}% of the transport floor ` +
          `(${result.floorRps.toFixed(0)}), ${(result.cpuRatioToFloor * 100).toFixed(1)}% of it by CPU, ` +
          `${(result.ratioToGrpcJs * 100).toFixed(1)}% of grpc-js ` +
          `(${result.grpcJsRps.toFixed(0)}); ${result.cpuUsPerCheck.toFixed(1)} µs CPU per check; ` +
          `p99 at half load ${half?.server.p99.toFixed(2) ?? '–'} ms (floor ${half?.floor.p99.toFixed(2) ?? '–'} ms, ` +
          `×${p99Ratio?.toFixed(2) ?? '–'} against ≤ ${p99AtHalfTarget})`,
      );
    }
  } finally {
    assertionsEnvoy?.close();
    await assertions?.stop();
  }
  return results;
}

async function main(): Promise<void> {
  if (h2loadVersion() === undefined) {
    process.stderr.write(`${h2loadInstallHint}\n`);
    process.exit(2);
  }
  const started = Date.now();
  const protos = loadUpstreamProtos();
  const scratch = mkdtempSync(join(tmpdir(), 'eoa-bench-'));
  const origins = ['web', 'api', 'srv', 'dash'].map((n) => `https://${n}.example.com`);
  const clients = ['web', 'api', 'srv', 'dash'].map((name, i) => ({
    clientId: name,
    clientSecret,
    redirectUris: [`${origins[i]}/oauth2/callback`],
  }));
  let provider: TestProvider | undefined;
  let herdProvider: TestProvider | undefined;
  let redis: RedisProcess | undefined;
  let memoryServer: ServerProcess | undefined;
  let redisServer: ServerProcess | undefined;
  let baseline: DoNothingProcess | undefined;
  let floor: DoNothingProcess | undefined;
  const envoys: EnvoyClient[] = [];
  try {
    log(`bench (${smoke ? 'smoke' : 'full'}): starting provider, redis-server and servers`);
    provider = await startTestProvider({ clients, accessTokenTtlSeconds: 3_600 });
    redis = await startRedis();
    const coldStartMs: number[] = [];
    for (let i = 0; i < (!wanted('cold-start') ? 0 : smoke ? 1 : 5); i++)
      coldStartMs.push(await measureColdStart(memoryServerConfig(provider.issuer)));
    log(`cold start to SERVING: ${coldStartMs.map((ms) => ms.toFixed(0)).join(', ')} ms`);

    memoryServer = await startServerProcess(memoryServerConfig(provider.issuer), flags.profile);
    redisServer = await startServerProcess(
      redisServerConfig(provider.issuer, redis.url),
      flags.profile,
    );
    baseline = await startDoNothingServer('grpc-js');
    floor = await startDoNothingServer('transport');
    const webEnvoy = new EnvoyClient({ target: memoryServer.grpcTarget, protos, timeoutMs: 5_000 });
    const srvEnvoy = new EnvoyClient({ target: redisServer.grpcTarget, protos, timeoutMs: 5_000 });
    envoys.push(webEnvoy, srvEnvoy);
    const cookies = {
      web: await loginCookie(webEnvoy, 'https://web.example.com'),
      srv: await loginCookie(srvEnvoy, 'https://srv.example.com'),
    };
    const bearerToken = await benchBearerToken(provider);

    // Cold start on a loaded machine: the generator drives the do-nothing server on our own
    // transport (closed loop, as hard as it can) in 2 s runs until every cold start is done.
    const coldStartLoaded: Awaited<ReturnType<typeof measureColdStartPhases>>[] = [];
    if (wanted('cold-start')) {
      const loadFrames = join(scratch, 'cold-start-load.grpc');
      const login = scenarios(cookies, bearerToken).find((s) => s.id === 'login')!;
      writeFileSync(loadFrames, frameOf(webEnvoy, protos, login).frame);
      let loading = true;
      const load = (async () => {
        while (loading) {
          await runLoadProcess(
            {
              target: floor.grpcTarget,
              connections: realisticPlan.connections,
              streams: realisticPlan.streams,
              seconds: 2,
              framesFile: loadFrames,
            },
            join(scratch, 'cold-start-load.json'),
          );
        }
      })();
      try {
        for (let i = 0; i < (smoke ? 1 : 5); i++)
          coldStartLoaded.push(await measureColdStartPhases(memoryServerConfig(provider.issuer)));
      } finally {
        loading = false;
        await load;
      }
      log(
        `cold start to SERVING under load (modules/config/listening/SERVING ms): ` +
          coldStartLoaded
            .map((c) =>
              [c.modules, c.config, c.listening, c.serving]
                .map((n) => n?.toFixed(0) ?? '–')
                .join('/'),
            )
            .join(', '),
      );
    }

    const results: ScenarioResult[] = [];
    for (const scenario of scenarios(cookies, bearerToken)) {
      if (!wanted(scenario.id)) continue;
      const server = scenario.id === 'server-session' ? redisServer : memoryServer;
      const envoy = scenario.id === 'server-session' ? srvEnvoy : webEnvoy;
      const result = await measureScenario(
        scenario,
        server,
        envoy,
        { grpcJs: baseline, transport: floor },
        protos,
        scratch,
      );
      results.push(result);
      log(
        result.status === 'measured'
          ? `${scenario.title}: ${result.rps?.toFixed(0)} checks/s = ` +
              `${((result.ratio ?? 0) * 100).toFixed(1)}% of ${result.baselineRps?.toFixed(0)}; ` +
              `p99 at half load ${result.latencyAtHalf?.p99Ms.toFixed(2)} ms; ` +
              `${result.cpuUsPerCheck?.toFixed(1)} µs CPU per check`
          : `${scenario.title}: not available yet (${result.note ?? ''})`,
      );
    }

    const realistic = await runRealistic(
      provider,
      redis,
      { memory: memoryServer, redis: redisServer },
      { web: webEnvoy, srv: srvEnvoy },
      { grpcJs: baseline, transport: floor },
      protos,
      scratch,
    );

    const memory = !wanted('memory')
      ? []
      : smoke
        ? [sessionMemory(1_000)]
        : [sessionMemory(10_000), sessionMemory(100_000)];
    for (const m of memory)
      log(
        `${m.sessions} cached sessions: RSS ${(m.rssBytes / 2 ** 20).toFixed(0)} MiB, ` +
          `${m.heapPerSession.toFixed(0)} B heap and ${m.rssPerSession.toFixed(0)} B RSS per session`,
      );

    herdProvider = await startTestProvider({
      clients: [
        { clientId: 'dash', clientSecret, redirectUris: [`${herdOrigin}/oauth2/callback`] },
      ],
      accessTokenTtlSeconds: herdAccessTokenTtlSeconds,
    });
    const herd = [];
    for (const replicas of wanted('herd') ? [1, 3] : []) {
      const result = await runRefreshHerd({
        provider: herdProvider,
        protos,
        replicas,
        checks: smoke ? 30 : 500,
        redisUrl: redis.url,
        clientSecret,
        sessionSecret,
      });
      herd.push(result);
      log(
        `refresh herd, ${replicas} replica(s): ${result.checks} checks answered in ` +
          `${result.allAnsweredMs.toFixed(0)} ms, ${result.grants} grant(s), ${result.allowed} allowed`,
      );
    }

    const codec = wanted('codec') ? await timeCookieCodec(smoke ? 500 : 10_000) : [];
    const results_: BenchResults = {
      mode: smoke
        ? 'smoke'
        : secondsFlag !== undefined || roundsFlag !== undefined
          ? 'short'
          : 'full',
      date: new Date(started).toISOString(),
      durationSeconds: (Date.now() - started) / 1000,
      machine: { ...machine(), loadAverageAtEnd: loadavg()[0] ?? 0 },
      plan,
      scenarios: results,
      realistic,
      memory,
      coldStartMs,
      coldStartLoaded,
      refreshHerd: herd,
      codec,
    };
    mkdirSync(outDir, { recursive: true });
    const written = await writeReports(results_, outDir);
    log(`results: ${written.join(', ')}`);
  } finally {
    for (const envoy of envoys) envoy.close();
    await memoryServer?.stop();
    await redisServer?.stop();
    await baseline?.stop();
    await floor?.stop();
    await redis?.stop();
    await provider?.close();
    await herdProvider?.close();
    rmSync(scratch, { recursive: true, force: true });
  }
  // Written as the servers stopped: where each server's CPU went.
  if (flags.profile !== undefined) {
    try {
      for (const summary of summariesOf([flags.profile])) log(summary);
    } catch (error) {
      // The figures are written already; a profile that cannot be read only loses its summary.
      log(`profiles in ${flags.profile} not summarised: ${String(error)}`);
    }
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
