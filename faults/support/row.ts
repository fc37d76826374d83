/**
 * One row of the fault table: users log in, browse (each page view two parallel Checks, round
 * robin over the replicas, cookies applied as a browser does), a fault is applied during the
 * traffic, and the row reports what users got and asserts the standard.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoPath } from '../../test/deploy/repo-path.ts';
import { AppBrowser, deniedHeader, locationOf } from '../../test/support/browser.ts';
import type { DownstreamRequest, Outcome } from '../../test/support/envoy-client.ts';
import type { Endpoint } from '../../test/support/health-checked-endpoint.ts';
import {
  ORIGIN,
  REQUEST_BUDGET_MS,
  TRANSPORT_ALLOWANCE_MS,
  startRig,
  userName,
  type Rig,
  type RigOptions,
} from './rig.ts';

/** Users browsing in every row. */
export const USERS = 20;
/** A user's pause between page views, ms. */
const THINK_MS = 400;
const XHR: [string, string][] = [['accept', 'application/json']];

/** One Check as the client saw it. */
interface CheckRecord {
  readonly user: number;
  /** `performance.now()` when it was sent. */
  readonly at: number;
  readonly ms: number;
  /** `allow`, `deny <status>` or `error <grpc code>`. */
  readonly result: string;
  readonly retryAfter: boolean;
  readonly endpoint: Endpoint;
}

function describeOutcome(outcome: Outcome): string {
  if (outcome.kind === 'allow') return 'allow';
  if (outcome.kind === 'deny') return `deny ${outcome.status}`;
  return `error ${outcome.grpcCode ?? '?'}`;
}

/** A user of the app, with the browser that holds their cookies. */
export interface User {
  readonly index: number;
  readonly browser: AppBrowser;
  /** Set once a Check of theirs was answered with a login or their session cookie went. */
  lost: boolean;
  /** Whether both Checks of their last page view were allowed. */
  servedLast: boolean;
}

/** A window during which no replica could reach any store node (server sessions may 503). */
interface Window {
  readonly from: number;
  to: number;
}

/** What a fault function can use and add to. */
export interface FaultContext {
  readonly rig: Rig;
  readonly users: readonly User[];
  /** Figures of this row besides the standard ones. */
  readonly extra: Record<string, unknown>;
  /** Marks the start of a time when no replica can reach any store node; returns its end. */
  readonly storeUnreachable: () => () => void;
  /**
   * Takes `endpoint` out of the balancer and SIGKILLs its process. The Checks it had in flight
   * fail with the connection: they are counted apart (no server can answer a Check after its
   * process died), not as failed.
   */
  readonly kill: (endpoint: Endpoint) => Promise<void>;
  /** A browser whose Checks go round robin over the healthy replicas, untimed. */
  readonly newBrowser: () => AppBrowser;
  /** Logs in `count` more users (they do not browse); returns how many got in. */
  readonly logInMore: (count: number) => Promise<number>;
}

export interface RowSpec {
  /** The row of the table, as it is reported. */
  readonly row: string;
  /** How the row departs from the table (durations scaled, …). */
  readonly scenario: string;
  readonly rig: RigOptions;
  /** Browsing before the fault, ms; default 1,500. */
  readonly warmupMs?: number;
  /** Browsing after the fault, ms; default 3,000. */
  readonly recoveryMs?: number;
  /** Default {@link USERS}; 0 for a row of logins only. */
  readonly users?: number;
  fault(context: FaultContext): Promise<void>;
}

export interface RowReport {
  readonly row: string;
  readonly scenario: string;
  readonly measuredAt: string;
  readonly replicas: number;
  readonly store: string;
  readonly sessions: 'cookie' | 'server';
  readonly budgetMs: number;
  readonly transportAllowanceMs: number;
  readonly users: number;
  /** Logins (before and during the row) that did not end in the app, by reason. */
  readonly loginsFailed: Record<string, number>;
  readonly checksSent: number;
  readonly failed: number;
  readonly failedByResult: Record<string, number>;
  /** Checks in flight at a replica when it was SIGKILLed (they fail with its connection). */
  readonly inFlightAtKilledReplica: number;
  /** Server sessions: 503 with Retry-After while no replica could reach any store node. */
  readonly unavailableWhileStoreUnreachable: number;
  readonly heldBeyondBudget: number;
  /** Held Checks by the second (from the fault's start) they were sent in: when they cluster. */
  readonly heldBySecond: Record<string, number>;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly sessionsLost: number;
  /** Users still logged in whose last page view was not served (stuck, not recovered). */
  readonly notServedAtEnd: number;
  /** Grants at the provider during browsing, `grantType → outcome → count`. */
  readonly grants: Record<string, Record<string, number>>;
  readonly extra: Record<string, unknown>;
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]!);
}

function grantsSince(
  before: Record<string, Record<string, number>>,
  after: Record<string, Record<string, number>>,
): Record<string, Record<string, number>> {
  const delta: Record<string, Record<string, number>> = {};
  for (const [type, outcomes] of Object.entries(after)) {
    for (const [outcome, count] of Object.entries(outcomes)) {
      const n = count - (before[type]?.[outcome] ?? 0);
      if (n > 0) (delta[type] ??= {})[outcome] = n;
    }
  }
  return delta;
}

/** Logins that did not end in the app, by what went wrong. */
type LoginFailures = Record<string, number>;

/**
 * Logs users `indices` in, a few at a time, each through the balancer (start and callback may
 * land on different replicas); a failed login is counted, not thrown.
 */
async function logIn(
  indices: readonly number[],
  browserFor: (index: number) => AppBrowser,
  failures: LoginFailures,
): Promise<User[]> {
  const users: User[] = [];
  const queue = [...indices];
  const worker = async (): Promise<void> => {
    for (let index = queue.shift(); index !== undefined; index = queue.shift()) {
      const browser = browserFor(index);
      try {
        await browser.login(`${ORIGIN}/`, userName(index));
        users.push({ index, browser, lost: false, servedLast: true });
      } catch (error) {
        // The page's text, without its markup.
        const reason = (error instanceof Error ? error.message : String(error))
          .replace(/<(style|script)\b[\s\S]*?<\/\1>|<[^>]+>|\\n/g, ' ')
          .replace(/\s+/g, ' ')
          .slice(0, 240);
        failures[reason] = (failures[reason] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return users.sort((a, b) => a.index - b.index);
}

/** Runs the row against a fresh rig; the rig is torn down whatever happens. */
export async function runRow(spec: RowSpec): Promise<RowReport> {
  const rig = await startRig(spec.rig);
  try {
    return await measure(spec, rig);
  } finally {
    await rig.stop();
  }
}

async function measure(spec: RowSpec, rig: Rig): Promise<RowReport> {
  const records: CheckRecord[] = [];
  /** Users answered with a login at least once. */
  const sentToLogin = new Set<number>();
  let recording = false;
  const timedCaller = (user: number) => ({
    check: async (request: DownstreamRequest): Promise<Outcome> => {
      const at = performance.now();
      const endpoint = rig.cluster.pick();
      const outcome = await endpoint.client.check(request);
      const ms = performance.now() - at;
      if (recording) {
        const status = outcome.kind === 'deny' ? outcome.status : undefined;
        const toProvider =
          status === 302 && (locationOf(outcome) ?? '').startsWith(rig.provider.issuer);
        const login = status === 401 || toProvider;
        if (login) sentToLogin.add(user);
        records.push({
          user,
          at,
          ms,
          result: describeOutcome(outcome),
          retryAfter: deniedHeader(outcome, 'retry-after') !== undefined,
          endpoint,
        });
      }
      return outcome;
    },
  });
  const loginFailures: LoginFailures = {};
  const userCount = spec.users ?? USERS;
  const users = await logIn(
    Array.from({ length: userCount }, (_, i) => i),
    (i) => new AppBrowser(timedCaller(i)),
    loginFailures,
  );
  let nextUser = userCount;
  const untimed = () => new AppBrowser({ check: (r) => rig.cluster.pick().client.check(r) });

  const windows: Window[] = [];
  const killed = new Set<Endpoint>();
  const extra: Record<string, unknown> = {};
  const context: FaultContext = {
    rig,
    users,
    extra,
    storeUnreachable: () => {
      const window = { from: performance.now(), to: Number.POSITIVE_INFINITY };
      windows.push(window);
      return () => (window.to = performance.now());
    },
    newBrowser: untimed,
    kill: async (endpoint) => {
      killed.add(endpoint);
      endpoint.remove();
      rig.cluster.endpoints.splice(rig.cluster.endpoints.indexOf(endpoint), 1);
      await endpoint.proc.stop('SIGKILL');
    },
    logInMore: async (count) => {
      const indices = Array.from({ length: count }, () => nextUser++);
      return (await logIn(indices, untimed, loginFailures)).length;
    },
  };

  const grantsBefore = rig.provider.counters().grants;
  recording = true;
  let browsing = true;
  const browse = async (user: User): Promise<void> => {
    let view = 0;
    while (browsing && !user.lost) {
      view++;
      const page = (n: number) =>
        user.browser.request(`${ORIGIN}/page/${view}/${n}`, { navigate: false, headers: XHR });
      const outcomes = await Promise.all([page(1), page(2)]);
      user.servedLast = outcomes.every((o) => o.kind === 'allow');
      // Answered with a login (401, or a redirect to the provider): this user is logged out.
      if (sentToLogin.has(user.index)) user.lost = true;
      await sleep(THINK_MS);
    }
  };
  let faultAt = 0;
  const load = Promise.all(users.map(browse));
  try {
    await sleep(spec.warmupMs ?? 1_500);
    faultAt = performance.now();
    // A fault that could not be applied as written is reported with the figures, not instead.
    await spec.fault(context).catch((error: unknown) => {
      extra['faultError'] = error instanceof Error ? error.message : String(error);
    });
    await sleep(spec.recoveryMs ?? 3_000);
  } finally {
    browsing = false;
    await load;
    recording = false;
  }

  // Whoever was not answered with a login may still have lost their cookie: one more look.
  for (const user of users) {
    if (user.lost) continue;
    if (user.browser.cookieHeader() === undefined) user.lost = true;
  }

  const budgetLine = REQUEST_BUDGET_MS + TRANSPORT_ALLOWANCE_MS;
  const sessions = spec.rig.sessions ?? 'cookie';
  const inWindow = (at: number) => windows.some((w) => at >= w.from && at <= w.to);
  const failedByResult: Record<string, number> = {};
  let unavailableWhileStoreUnreachable = 0;
  let inFlightAtKilledReplica = 0;
  for (const record of records) {
    if (record.result === 'allow') continue;
    if (killed.has(record.endpoint) && record.result.startsWith('error')) {
      inFlightAtKilledReplica++;
      continue;
    }
    if (
      sessions === 'server' &&
      record.result === 'deny 503' &&
      record.retryAfter &&
      inWindow(record.at)
    ) {
      unavailableWhileStoreUnreachable++;
      continue;
    }
    const key = record.retryAfter ? `${record.result} retry-after` : record.result;
    failedByResult[key] = (failedByResult[key] ?? 0) + 1;
  }
  const latencies = records.map((r) => r.ms).sort((a, b) => a - b);
  const report: RowReport = {
    row: spec.row,
    scenario: spec.scenario,
    measuredAt: new Date().toISOString(),
    replicas: spec.rig.replicas ?? 2,
    store: spec.rig.store,
    sessions,
    budgetMs: REQUEST_BUDGET_MS,
    transportAllowanceMs: TRANSPORT_ALLOWANCE_MS,
    users: userCount,
    loginsFailed: loginFailures,
    checksSent: records.length,
    failed: Object.values(failedByResult).reduce((a, b) => a + b, 0),
    failedByResult,
    unavailableWhileStoreUnreachable,
    inFlightAtKilledReplica,
    heldBeyondBudget: records.filter((r) => r.ms > budgetLine).length,
    heldBySecond: countBy(
      records.filter((r) => r.ms > budgetLine),
      (r) => `${Math.floor((r.at - faultAt) / 1000)}s`,
    ),
    latencyMs: {
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      max: quantile(latencies, 1),
    },
    sessionsLost: users.filter((u) => u.lost).length,
    notServedAtEnd: users.filter((u) => !u.lost && !u.servedLast).length,
    grants: grantsSince(grantsBefore, rig.provider.counters().grants),
    extra,
  };
  record(report);
  return report;
}

/** Prints the row's line and adds the row to `faults/results/latest.json`. */
function record(report: RowReport): void {
  const grants = Object.entries(report.grants)
    .map(([type, outcomes]) => `${type} ${JSON.stringify(outcomes)}`)
    .join(', ');
  console.log(
    `# ${report.row}: ${report.checksSent} Checks sent, ${report.failed} failed ` +
      `${JSON.stringify(report.failedByResult)}, ${report.heldBeyondBudget} held beyond ` +
      `${report.budgetMs}+${report.transportAllowanceMs} ms` +
      (report.heldBeyondBudget > 0 ? ` ${JSON.stringify(report.heldBySecond)}` : '') +
      ` (p50 ${report.latencyMs.p50}, ` +
      `p99 ${report.latencyMs.p99}, max ${report.latencyMs.max} ms), ` +
      `${report.sessionsLost} of ${report.users} sessions lost, ${report.notServedAtEnd} not served at the end, ` +
      `grants: ${grants || 'none'}` +
      (Object.keys(report.loginsFailed).length > 0
        ? `, logins failed: ${JSON.stringify(report.loginsFailed)}`
        : '') +
      (report.inFlightAtKilledReplica > 0
        ? `, ${report.inFlightAtKilledReplica} in flight at the killed replica`
        : '') +
      (report.unavailableWhileStoreUnreachable > 0
        ? `, ${report.unavailableWhileStoreUnreachable} 503 while no store node was reachable`
        : '') +
      (Object.keys(report.extra).length > 0 ? `; ${JSON.stringify(report.extra)}` : ''),
  );
  const path = repoPath('faults/results/latest.json');
  let rows: Record<string, RowReport> = {};
  try {
    rows = (JSON.parse(readFileSync(path, 'utf8')) as { rows: Record<string, RowReport> }).rows;
  } catch {
    // First row of a run on this machine.
  }
  rows[report.row] = report;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify({ rows }, null, 2)}\n`);
}

/**
 * The "Done when": nobody logged out, no Check held beyond the budget, no failed Check
 * (server sessions: 503 with Retry-After only while no replica could reach any store node).
 */
export function assertDoneWhen(report: RowReport): void {
  const problems: string[] = [];
  if (report.sessionsLost > 0) problems.push(`${report.sessionsLost} sessions lost`);
  const faultError = report.extra['faultError'];
  if (typeof faultError === 'string')
    problems.push(`the fault was not applied as written: ${faultError}`);
  if (report.notServedAtEnd > 0)
    problems.push(`${report.notServedAtEnd} users not served at the end`);
  const loginsFailed = Object.values(report.loginsFailed).reduce((a, b) => a + b, 0);
  if (loginsFailed > 0)
    problems.push(`${loginsFailed} logins failed ${JSON.stringify(report.loginsFailed)}`);
  if (report.heldBeyondBudget > 0)
    problems.push(
      `${report.heldBeyondBudget} Checks held beyond ${report.budgetMs}+${report.transportAllowanceMs} ms (max ${report.latencyMs.max} ms)`,
    );
  if (report.failed > 0)
    problems.push(`${report.failed} failed Checks ${JSON.stringify(report.failedByResult)}`);
  assert.ok(report.checksSent > 0, 'traffic flowed');
  assert.deepEqual(problems, [], `${report.row}: ${problems.join('; ')}`);
}
