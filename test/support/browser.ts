/** A scripted browser on one app origin, talking to the server through the Envoy-like client. */
import assert from 'node:assert/strict';
import { errorCatalogue } from '../../src/errors.ts';
import { escapeHtml } from '../../src/authz/pages.ts';
import type { DownstreamRequest, Outcome } from './envoy-client.ts';
import { scriptedLogin, type CookieJar } from './scripted-login.ts';

const navigationHeaders: readonly (readonly [string, string])[] = [
  ['accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
  ['sec-fetch-mode', 'navigate'],
  ['user-agent', 'Mozilla/5.0 (scripted)'],
];

/** The `set-cookie` lines a client would receive for this outcome. */
export function setCookieLines(outcome: Outcome): string[] {
  if (outcome.kind === 'deny')
    return outcome.headers.filter(([n]) => n === 'set-cookie').map(([, v]) => v);
  if (outcome.kind === 'allow')
    return outcome.responseHeaders.filter(([n]) => n === 'set-cookie').map(([, v]) => v);
  return [];
}

export function locationOf(outcome: Outcome): string | undefined {
  return deniedHeader(outcome, 'location');
}

/** A header of the answer a denied client receives; undefined when the request was allowed. */
export function deniedHeader(outcome: Outcome, name: string): string | undefined {
  return outcome.kind === 'deny' ? outcome.headers.find(([n]) => n === name)?.[1] : undefined;
}

/** The status of a denied answer, else the outcome's kind (`allow`, `error`). */
export function statusOf(outcome: Outcome): number | string {
  return outcome.kind === 'deny' ? outcome.status : outcome.kind;
}

/**
 * Asserts the one answer a provider outage gets wherever it is met (login, session refresh,
 * bearer keys or introspection): 503, `Retry-After` of at least a second, and the catalogue's
 * JSON body.
 */
export function assertProviderUnavailable(outcome: Outcome, what: string): void {
  assert.equal(statusOf(outcome), 503, what);
  assert.ok(Number(deniedHeader(outcome, 'retry-after')) >= 1, `${what}: Retry-After`);
  const { message } = errorCatalogue.IDP_UNAVAILABLE;
  if (deniedHeader(outcome, 'content-type') === 'text/html; charset=utf-8') {
    // A browser navigation: the page says what happened and when to try again.
    const body = outcome.kind === 'deny' ? outcome.body : '';
    assert.match(body, /<title>Service temporarily unavailable<\/title>/, what);
    assert.ok(body.includes(escapeHtml(message)), `${what}: the message`);
    assert.ok(reloadsItself(outcome), `${what}: reloads after Retry-After`);
    return;
  }
  assert.equal(deniedHeader(outcome, 'content-type'), 'application/json', what);
  assert.deepEqual(
    JSON.parse(outcome.kind === 'deny' ? outcome.body : '""'),
    { error: 'idp_unavailable', message: errorCatalogue.IDP_UNAVAILABLE.message },
    what,
  );
}

/** A page that reloads itself (`<meta http-equiv="refresh">`), as a browser would follow. */
function reloadsItself(outcome: Outcome): boolean {
  return outcome.kind === 'deny' && /<meta http-equiv="refresh"/.test(outcome.body);
}

/** What a browser sends its requests through: Envoy in gRPC mode or in HTTP mode. */
export interface ExtAuthzCaller {
  check(request: DownstreamRequest): Promise<Outcome>;
}

export class AppBrowser {
  readonly cookies = new Map<string, string>();
  readonly #envoy: ExtAuthzCaller;
  /** The provider's own cookies (its login session), kept across logins like a real browser. */
  providerJar: CookieJar | undefined;

  constructor(envoy: ExtAuthzCaller) {
    this.#envoy = envoy;
  }

  /** Applies `set-cookie` lines: an expired one deletes, anything else sets. */
  store(lines: readonly string[]): void {
    for (const line of lines) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      if (/;\s*Max-Age=0(;|$)|;\s*Expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(eq + 1));
    }
  }

  cookieHeader(extra: readonly string[] = []): string | undefined {
    const pairs = [...[...this.cookies].map(([n, v]) => `${n}=${v}`), ...extra];
    return pairs.length === 0 ? undefined : pairs.join('; ');
  }

  /** One request as the browser would send it; cookies stored from the answer. */
  async request(
    url: string,
    options: {
      headers?: readonly (readonly [string, string])[];
      method?: string;
      extraCookies?: readonly string[];
      navigate?: boolean;
    } = {},
  ): Promise<Outcome> {
    const headers: (readonly [string, string])[] = [
      ...(options.navigate === false ? [] : navigationHeaders),
      ...(options.headers ?? []),
    ];
    const cookie = this.cookieHeader(options.extraCookies);
    if (cookie !== undefined) headers.push(['cookie', cookie]);
    const outcome = await this.#envoy.check({ url, method: options.method ?? 'GET', headers });
    this.store(setCookieLines(outcome));
    return outcome;
  }

  /**
   * Navigates to `url` without a session, logs in at the provider as `login`, and follows the
   * callback. Returns where the server finally sent the browser.
   */
  async login(url: string, login = 'alice'): Promise<string> {
    const { callbackUrl } = await this.startAndAuthenticate(url, login);
    return this.finish(callbackUrl);
  }

  /** The first half: the 302 to the provider and the provider's pages; returns the callback URL. */
  async startAndAuthenticate(
    url: string,
    login = 'alice',
  ): Promise<{ callbackUrl: URL; authorizationUrl: URL }> {
    const start = await this.request(url);
    assert.equal(start.kind, 'deny', 'a navigation without a session is not let through');
    assert.equal(
      start.kind === 'deny' && start.status,
      302,
      'a navigation without a session is redirected',
    );
    const authorizationUrl = new URL(locationOf(start)!);
    const result = await scriptedLogin(authorizationUrl, {
      login,
      ...(this.providerJar ? { jar: this.providerJar } : {}),
    });
    this.providerJar = result.jar;
    return { callbackUrl: result.callbackUrl, authorizationUrl };
  }

  /** The second half: the callback Check; returns the final location. */
  async finish(callbackUrl: URL): Promise<string> {
    let done = await this.request(callbackUrl.href);
    // As a browser does with a page that reloads itself (a callback that outlasted the request
    // budget, or one another request is completing): reload after Retry-After, a few times.
    for (let reloads = 0; reloads < 5 && reloadsItself(done); reloads++) {
      await new Promise((resolve) =>
        setTimeout(resolve, Number(deniedHeader(done, 'retry-after') ?? '1') * 1_000),
      );
      done = await this.request(callbackUrl.href);
    }
    assert.equal(
      done.kind === 'deny' && done.status,
      302,
      `callback answered ${JSON.stringify(done.kind === 'deny' ? [done.status, done.body] : done.kind)}`,
    );
    return locationOf(done)!;
  }
}
