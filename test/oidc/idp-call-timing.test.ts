/** Provider calls timed by endpoint: what the guard runs, answered or failed, never what it refuses. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runUnguarded, timeIdpCalls, type IdpCallGuard } from '../../src/oidc/idp-call-guard.ts';
import { IdpUnavailableError } from '../../src/errors.ts';

function recorder() {
  const seen: [string, number][] = [];
  return {
    seen,
    observe: (endpoint: string, seconds: number) => void seen.push([endpoint, seconds]),
  };
}

describe('timeIdpCalls', () => {
  it('times answered and failed calls under their endpoint, a probe as discovery', async () => {
    const { seen, observe } = recorder();
    const guard = timeIdpCalls(runUnguarded, observe);
    assert.equal(await guard('token', () => Promise.resolve('ok')), 'ok');
    await assert.rejects(
      guard('jwks', () => Promise.reject(new IdpUnavailableError('jwks', 'network'))),
      IdpUnavailableError,
    );
    await guard('probe', () => Promise.resolve(undefined));
    assert.deepEqual(
      seen.map(([endpoint]) => endpoint),
      ['token', 'jwks', 'discovery'],
    );
    for (const [, seconds] of seen) assert.ok(seconds >= 0 && seconds < 5, String(seconds));
  });

  it('does not time a call the guard refuses to run (an open breaker)', async () => {
    const { seen, observe } = recorder();
    const open: IdpCallGuard = (kind) =>
      Promise.reject(
        new IdpUnavailableError(kind === 'probe' ? 'discovery' : kind, 'circuit_open'),
      );
    await assert.rejects(
      timeIdpCalls(open, observe)('token', () => Promise.resolve('never')),
      IdpUnavailableError,
    );
    assert.deepEqual(seen, []);
  });
});
