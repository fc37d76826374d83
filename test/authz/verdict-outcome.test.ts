/** The `verdict` metric label: a login redirect, a callback and a logout are not refusals. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  allow,
  jsonReply,
  localReply,
  outcomeOf,
  providerUnavailable,
  redirect,
  verdictOutcomes,
  type Verdict,
  type VerdictOutcome,
} from '../../src/authz/verdict.ts';

const cases: readonly (readonly [string, Verdict, VerdictOutcome])[] = [
  ['an allow', allow('session'), 'allow'],
  ['a public path', allow('public_path'), 'allow'],
  ['a redirect to the provider', redirect('login', 'https://idp.example.com/auth'), 'login'],
  [
    'a 401 to an API caller asking it to log in',
    jsonReply('unauthenticated', 401, 'unauthenticated', 'authentication required'),
    'login',
  ],
  ['a completed callback', redirect('callback', 'https://app.example.com/'), 'callback'],
  ['a callback that failed', localReply('callback', 400, 'no'), 'deny'],
  ['a callback the provider refused', localReply('callback_error', 401, 'no'), 'deny'],
  ['a logout redirect', redirect('logout', 'https://idp.example.com/end'), 'logout'],
  ['a back-channel logout answer', localReply('provider_logout', 200, ''), 'logout'],
  ['a provider outage', providerUnavailable(3), 'unavailable'],
  ['the budget running out', localReply('unavailable', 503, ''), 'unavailable'],
  ['a role rule refusing', jsonReply('forbidden', 403, 'forbidden', 'no'), 'deny'],
  ['a throttled client', jsonReply('throttled', 429, 'too_many_requests', 'slow down'), 'deny'],
  ['no app for the host', jsonReply('no_app', 403, 'forbidden', 'no app for host'), 'deny'],
  ['a malformed request', jsonReply('bad_request', 400, 'bad_request', 'bad'), 'deny'],
];

describe('outcomeOf', () => {
  for (const [name, verdict, expected] of cases) {
    it(`labels ${name} ${expected}`, () => {
      assert.equal(outcomeOf(verdict), expected);
    });
  }

  it('keeps to the documented set, each value reachable', () => {
    const seen = new Set(cases.map(([, verdict]) => outcomeOf(verdict)));
    assert.deepEqual([...seen].sort(), [...verdictOutcomes].sort());
  });
});
