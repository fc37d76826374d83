/** The realistic-scale workloads' rotations: distinct sessions, distinct tokens, and the mix. */
import type { Workload, WorkloadRequest } from './realistic.ts';
import type { DpopSigner } from './dpop-signer.ts';
import { mintedUser } from './session-minting.ts';

export const navigation: readonly (readonly [string, string])[] = [
  ['accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
  ['sec-fetch-mode', 'navigate'],
  ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) bench'],
  ['accept-language', 'en-GB,en;q=0.9'],
];

/** A page of the cookie-session app with session `i`'s cookie (plus an analytics cookie). */
export function sessionRequest(cookie: string, i: number, host = 'web'): WorkloadRequest {
  return {
    request: {
      url: `https://${host}.example.com/dashboard/overview`,
      headers: [...navigation, ['cookie', `${cookie}; _ga=GA1.2.3456789.1234567890`]],
    },
    expected: { app: host, verdict: 'allow', reason: 'session', user: mintedUser(i) },
  };
}

/** An API call with token `i` (subject `svc-<i>`). */
export function bearerRequest(token: string, i: number): WorkloadRequest {
  return {
    request: {
      url: 'https://api.example.com/v1/things?limit=20',
      headers: [
        ['accept', 'application/json'],
        ['authorization', `Bearer ${token}`],
        ['user-agent', 'bench-client/1.0'],
      ],
    },
    expected: { app: 'api', verdict: 'allow', reason: 'bearer', user: `svc-${i}` },
  };
}

const apiUrl = 'https://api.example.com/v1/things?limit=20';
/** The URL a DPoP proof names: the request's without query or fragment (RFC 9449 §4.2). */
export const dpopHtu = 'https://api.example.com/v1/things';

/**
 * An API call with DPoP-bound token `i` (subject `svc-dpop-<i>`) and a fresh proof, made anew
 * (new `jti`, `iat` now) each time it is renewed: a proof is refused when replayed.
 */
export function dpopRequest(signer: DpopSigner, token: string, i: number): WorkloadRequest {
  const make = (): WorkloadRequest => ({
    request: {
      url: apiUrl,
      headers: [
        ['accept', 'application/json'],
        ['authorization', `DPoP ${token}`],
        ['dpop', signer.proof(dpopHtu, token)],
        ['user-agent', 'bench-client/1.0'],
      ],
    },
    expected: { app: 'api', verdict: 'allow', reason: 'bearer', user: `svc-dpop-${i}` },
    renew: make,
  });
  return make();
}

/** DPoP-bound tokens and the key they are bound to. */
export interface DpopTokens {
  readonly signer: DpopSigner;
  readonly tokens: readonly string[];
}

/** A navigation without a session, to page `i`: the 302 to the provider. */
export function loginRequest(i: number): WorkloadRequest {
  return {
    request: { url: `https://web.example.com/dashboard/item/${i}`, headers: navigation },
    expected: { app: 'web', verdict: 'login', reason: 'login', status: 302 },
  };
}

/**
 * `count` unauthenticated navigations, each to a page of its own (path and query differ, so no
 * answer can be reused): every one a 302 to the provider with fresh login state.
 */
export function loginRequests(count: number): WorkloadRequest[] {
  return Array.from({ length: count }, (_, i) => {
    const one = loginRequest(i);
    return {
      ...one,
      request: {
        ...one.request,
        url: `https://web.example.com/reports/${i % 97}/item/${i}?tab=${i % 7}&q=${i.toString(36)}`,
      },
    };
  });
}

/**
 * Blocks of 20 Checks: 15 sessions, 4 bearer tokens and 1 new login (75% / 20% / 5%), until
 * every session has been used once; tokens are used in turn. With `dpop`, every fifth bearer
 * call (20% of the bearer share) is a DPoP-bound token with a fresh proof, those tokens in turn.
 */
export function mixRequests(
  cookies: readonly string[],
  tokens: readonly string[],
  dpop?: DpopTokens,
): WorkloadRequest[] {
  if (dpop !== undefined && dpop.tokens.length === 0) throw new Error('no DPoP-bound tokens');
  const requests: WorkloadRequest[] = [];
  let session = 0;
  let token = 0;
  let bearer = 0;
  let bound = 0;
  for (let block = 0; session < cookies.length; block++) {
    for (let k = 0; k < 15 && session < cookies.length; k++, session++)
      requests.push(sessionRequest(cookies[session]!, session));
    for (let k = 0; k < 4; k++, bearer++) {
      if (dpop !== undefined && bearer % 5 === 4) {
        const i = bound++ % dpop.tokens.length;
        requests.push(dpopRequest(dpop.signer, dpop.tokens[i]!, i));
      } else {
        requests.push(bearerRequest(tokens[token % tokens.length]!, token % tokens.length));
        token++;
      }
    }
    requests.push(loginRequest(block));
  }
  return requests;
}

/** Which workloads to build and how many distinct sessions and tokens each rotates through. */
export interface WorkloadSizes {
  readonly cookies: number;
  readonly manyCookies: number;
  readonly serverSessions: number;
  readonly tokens: number;
}

export const fullSizes: WorkloadSizes = {
  cookies: 10_000,
  manyCookies: 100_000,
  serverSessions: 10_000,
  tokens: 1_000,
};
export const smokeSizes: WorkloadSizes = {
  cookies: 40,
  manyCookies: 80,
  serverSessions: 40,
  tokens: 10,
};

const k = (n: number): string => (n >= 1_000 ? `${n / 1_000}k` : String(n));

/** Every workload id, in the order they run; `--only` picks among them. */
export const workloadIds = [
  'hot-cookie-gen',
  'hot-bearer-gen',
  'cookies',
  'many-cookies',
  'server-sessions',
  'bearers',
  'logins',
  'mix',
  'mix-assertions',
  'mix-dpop',
] as const;
export type WorkloadId = (typeof workloadIds)[number];

/** The workloads, given the minted sessions (cookie app `web`, server app `srv`) and tokens. */
export function realisticWorkloads(
  sizes: WorkloadSizes,
  minted: {
    readonly cookies: readonly string[];
    readonly serverCookies: readonly string[];
    readonly tokens: readonly string[];
    /** Needed by `mix-dpop` only. */
    readonly dpop?: DpopTokens;
  },
): Record<WorkloadId, () => Workload> {
  const { cookies, serverCookies, tokens, dpop } = minted;
  const mix = () => mixRequests(cookies.slice(0, sizes.cookies), tokens);
  return {
    'hot-cookie-gen': () => ({
      id: 'hot-cookie-gen',
      title: 'hot cookie session (one, repeated)',
      floorTarget: 0.85,
      requests: [sessionRequest(cookies[0]!, 0)],
    }),
    'hot-bearer-gen': () => ({
      id: 'hot-bearer-gen',
      title: 'hot bearer JWT (one, repeated)',
      floorTarget: 0.85,
      requests: [bearerRequest(tokens[0]!, 0)],
    }),
    cookies: () => ({
      id: 'cookies',
      title: `${k(sizes.cookies)} distinct cookie sessions`,
      floorTarget: 0.75,
      requests: cookies.slice(0, sizes.cookies).map((c, i) => sessionRequest(c, i)),
    }),
    'many-cookies': () => ({
      id: 'many-cookies',
      title: `${k(sizes.manyCookies)} distinct cookie sessions (beyond every cache)`,
      requests: cookies.slice(0, sizes.manyCookies).map((c, i) => sessionRequest(c, i)),
    }),
    'server-sessions': () => ({
      id: 'server-sessions',
      title: `${k(sizes.serverSessions)} distinct server sessions on redis-server`,
      requests: serverCookies.map((c, i) => sessionRequest(c, i, 'srv')),
    }),
    bearers: () => ({
      id: 'bearers',
      title: `${k(sizes.tokens)} distinct bearer JWTs`,
      floorTarget: 0.75,
      requests: tokens.map((t, i) => bearerRequest(t, i)),
    }),
    logins: () => ({
      id: 'logins',
      title: `${k(sizes.cookies)} distinct unauthenticated navigations (302)`,
      floorTarget: 0.7,
      requests: loginRequests(sizes.cookies),
    }),
    mix: () => ({
      id: 'mix',
      title: `mix: 75% of ${k(sizes.cookies)} sessions, 20% of ${k(sizes.tokens)} tokens, 5% logins`,
      floorTarget: 0.7,
      requests: mix(),
    }),
    'mix-assertions': () => ({
      id: 'mix-assertions',
      title: 'the mix, with signed upstream assertions',
      requests: mix(),
    }),
    'mix-dpop': () => {
      if (dpop === undefined) throw new Error('mix-dpop needs DPoP-bound tokens');
      return {
        id: 'mix-dpop',
        title: `the mix, with DPoP on 20% of its bearer calls (${k(dpop.tokens.length)} bound tokens)`,
        requests: mixRequests(cookies.slice(0, sizes.cookies), tokens, dpop),
      };
    },
  };
}
