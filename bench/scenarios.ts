/** The measured Check scenarios: the request each sends, and the verdict it must get. */
import {
  normaliseRequest,
  type DownstreamRequest,
  type EnvoyClient,
} from '../test/support/envoy-client.ts';
import type { UpstreamCheckResponse, UpstreamProtos } from '../test/support/upstream-protos.ts';
import type { VerdictOutcome } from '../src/authz/verdict.ts';
import { grpcFrame } from './grpc-frame.ts';

export type ScenarioId = 'cookie' | 'bearer' | 'login' | 'public' | 'server-session';

/** The verdict a scenario's frame must get, as `eoa_checks_total` labels it. */
export interface ExpectedVerdict {
  readonly app: string;
  readonly verdict: VerdictOutcome;
  readonly reason: string;
  /** HTTP status of the local reply. */
  readonly status?: number;
  /** For allows: the `x-auth-request-user` the upstream must receive. */
  readonly user?: string;
}

export interface Scenario {
  readonly id: ScenarioId;
  readonly title: string;
  /** Minimum share of the do-nothing server's throughput (SPEC §13), when there is a target. */
  readonly targetRatio?: number;
  readonly request: DownstreamRequest;
  readonly expected: ExpectedVerdict;
}

/** The CheckRequest frame of a scenario, and the request object it encodes. */
export function frameOf(
  envoy: EnvoyClient,
  protos: UpstreamProtos,
  scenario: Pick<Scenario, 'request'>,
): { readonly frame: Buffer; readonly decoded: Record<string, unknown> } {
  const request = envoy.buildCheckRequest(normaliseRequest(scenario.request), {
    sourcePort: 40_000,
  });
  const frame = grpcFrame(protos, request);
  // What h2load will send, read back with Envoy's protos: the verification uses exactly this.
  const decoded = protos.decode(protos.CheckRequest, frame.subarray(5));
  return { frame, decoded };
}

function headerOf(options: UpstreamCheckResponse['ok_response'], name: string): string | undefined {
  const found = (options?.headers ?? []).find((o) => o.header?.key === name);
  return found?.header?.value;
}

/**
 * Sends the exact frame once with the Envoy-like client and says what is wrong with the answer,
 * or `undefined` when it is the expected verdict. A benchmark of the wrong verdict is worthless.
 */
export async function verifyFrame(
  envoy: EnvoyClient,
  decoded: Record<string, unknown>,
  expected: ExpectedVerdict,
): Promise<string | undefined> {
  const { response, error } = await envoy.checkRaw(decoded);
  if (error !== undefined) return `gRPC error ${error.code}`;
  const code = response?.status?.code ?? 0;
  if (expected.verdict === 'allow') {
    if (code !== 0) {
      return `denied (code ${code}, HTTP ${response?.denied_response?.status?.code ?? '?'})`;
    }
    const user = headerOf(response?.ok_response, 'x-auth-request-user');
    if (expected.user !== undefined && user !== expected.user) {
      return `allowed without x-auth-request-user=${expected.user}`;
    }
    return undefined;
  }
  const status = response?.denied_response?.status?.code;
  if (code === 0) return 'allowed';
  if (status !== expected.status) return `denied with HTTP ${status ?? '?'}`;
  return undefined;
}
