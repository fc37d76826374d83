/**
 * The sessions of an API-only app (no `oidc.clientId`): there are none. No cookie is read or
 * written, so a session or login-state cookie a browser sends is neither decoded nor expired,
 * and goes upstream as any other cookie would.
 */
import type { LoginStates } from './login-state.ts';
import type { SessionLoad, Sessions } from './sessions.ts';

const none: SessionLoad = Object.freeze({ kind: 'none' });

function noSession(): Promise<never> {
  return Promise.reject(new Error('an API-only app has no sessions'));
}

function noLogin(): never {
  // A bug: the pipeline never starts or finishes a login for an app without a client.
  throw new Error('an API-only app has no browser login');
}

export const noSessions: Sessions = Object.freeze({
  get loginStates(): LoginStates {
    return noLogin();
  },
  cookieNames: (): string[] => [],
  load: (): Promise<SessionLoad> => Promise.resolve(none),
  create: noSession,
  update: noSession,
  end: (): Promise<string[]> => Promise.resolve([]),
  endBySid: (): Promise<number> => Promise.resolve(0),
  endBySub: (): Promise<number> => Promise.resolve(0),
});
