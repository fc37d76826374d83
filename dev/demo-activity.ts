/**
 * The demo's activity lines: each name signed in at the provider, each request the gateway let
 * through or turned away, and why. Paths only, never a query (a callback's carries the code),
 * a cookie or a token.
 */
import type { Outcome } from './envoy-client.ts';
import type { ProviderLogin } from './test-provider.ts';

/** Longest path or name shown; the rest is cut. */
const MAX_SHOWN = 120;

/** A value fit for one terminal line: control characters (an escape sequence, CR/LF) as `?`. */
function shown(text: string): string {
  const safe = text.replace(/[\p{Cc}\u2028\u2029]/gu, '?');
  return [...safe].length > MAX_SHOWN ? `${[...safe].slice(0, MAX_SHOWN).join('')}…` : safe;
}

function clock(now: Date): string {
  return now.toISOString().slice(11, 19);
}

/** The line for a name submitted at the provider's sign-in form. */
export function loginLine(login: ProviderLogin, now = new Date()): string {
  const name = JSON.stringify(shown(login.login));
  switch (login.outcome) {
    case 'known':
      return `${clock(now)} login  ${name} signed in at the provider as ${shown(login.accountId ?? '')}`;
    case 'new':
      return `${clock(now)} login  ${name} signed in at the provider as ${shown(login.accountId ?? '')} (a new demo user, group "users")`;
    case 'refused':
      return `${clock(now)} login  ${name} refused by the provider: a login name is 1 to 64 characters, without control characters`;
  }
}

/** What a deny's page or JSON body says it is: the HTML title or the JSON `error`. */
function denyReason(outcome: Extract<Outcome, { kind: 'deny' }>): string | undefined {
  const title = /<title>([^<]*)<\/title>/i.exec(outcome.body)?.[1];
  if (title !== undefined) return title;
  try {
    const parsed = JSON.parse(outcome.body) as { error?: unknown };
    return typeof parsed.error === 'string' ? parsed.error : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The line for one request through the gateway. `issuer` tells a redirect to log in from any
 * other; `identityHeader` names who an allowed request is for.
 */
export function checkLine(
  request: { readonly method: string; readonly path: string },
  outcome: Outcome,
  context: { readonly issuer: string; readonly identityHeader: string },
  now = new Date(),
): string {
  const path = request.path.split('?')[0] ?? '';
  const what = `${shown(request.method)} ${shown(path)}`;
  switch (outcome.kind) {
    case 'allow': {
      const user = outcome.upstream.headers.get(context.identityHeader);
      return `${clock(now)} allow  ${what} ${user === undefined ? '(public: no identity)' : `as ${shown(user)}`}`;
    }
    case 'deny': {
      const location = outcome.headers.find(([name]) => name === 'location')?.[1];
      if (outcome.status >= 300 && outcome.status < 400 && location !== undefined) {
        let target: URL | undefined;
        try {
          target = new URL(location, 'http://gateway.invalid');
        } catch {
          target = undefined;
        }
        const toProvider = target !== undefined && location.startsWith(context.issuer);
        const where = toProvider
          ? 'to the provider to sign in'
          : target === undefined
            ? 'elsewhere'
            : `to ${shown(target.pathname)}`;
        return `${clock(now)} deny   ${what} ${outcome.status} ${where}`;
      }
      const reason = denyReason(outcome);
      return `${clock(now)} deny   ${what} ${outcome.status}${reason === undefined ? '' : ` (${shown(reason)})`}`;
    }
    case 'error':
      return `${clock(now)} error  ${what} ${outcome.status}: the check failed (${shown(outcome.error.message)})`;
  }
}
