/** The CheckResponse encoder against protobufjs and Envoy's upstream protos. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { allow, localReply, jsonReply, redirect, type Verdict } from '../../src/authz/verdict.ts';
import { CheckResponseEncoder } from '../../src/server/check-response.ts';
import { toCheckResponse } from '../support/check-response.ts';
import { loadCheckTypes } from '../../src/server/protos.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const types = loadCheckTypes();
const upstream = loadUpstreamProtos();

/** What protobufjs writes for the response object the verdict maps to. */
function referenceBytes(verdict: Verdict, app: string | undefined): Buffer {
  return Buffer.from(types.response.encode(toCheckResponse(verdict, app)).finish());
}

const long = 'v'.repeat(300);
const wide = 'ü€😀'.repeat(50);

const verdicts: readonly [string, Verdict][] = [
  ['bare allow', allow('unmatched')],
  [
    'session allow',
    allow('session', {
      upstreamHeaders: [
        ['x-auth-request-user', 'alice'],
        ['x-auth-request-email', 'alice@example.com'],
        ['cookie', '_ga=GA1.2.3456789.1234567890'],
      ],
      removeHeaders: ['x-auth-request-groups', 'cookie'],
      responseHeaders: [['set-cookie', `__Host-_eoa=${long}; Path=/; Secure; HttpOnly`]],
    }),
  ],
  [
    'non-ASCII and long values',
    allow('bearer', {
      upstreamHeaders: [
        ['x-name', 'Zoë Ünïcödé'],
        ['x-wide', wide],
        ['x-long', long.repeat(60)],
        ['x-empty', ''],
      ],
      removeHeaders: ['authorization'],
    }),
  ],
  [
    'allow with dynamic metadata',
    allow('session', {
      upstreamHeaders: [['x-auth-request-user', 'zoë']],
      metadata: [
        ['email', 'zoë@example.com'],
        ['groups', 'admins,ops'],
        ['auth_method', 'session'],
        ['long', wide],
      ],
    }),
  ],
  ['json deny', jsonReply('unauthenticated', 401, 'unauthenticated', 'authentication required')],
  [
    'redirect',
    redirect('login', `https://idp.example.com/auth?x=${long}`, [['set-cookie', 'a=b']]),
  ],
  [
    'local reply with a long body',
    localReply('forbidden', 403, `${wide}\n`, [['content-type', 'text/plain']]),
  ],
  ['local reply without headers or body', localReply('callback', 400, '')],
  ['503', jsonReply('unavailable', 503, 'store_unavailable', 'y', [['retry-after', '5']])],
];

describe('CheckResponseEncoder', () => {
  for (const app of ['web', undefined, 'äpp']) {
    for (const [name, verdict] of verdicts) {
      it(`writes what protobufjs writes: ${name}, app ${app ?? 'none'}`, () => {
        const encoder = new CheckResponseEncoder();
        const bytes = encoder.encode(verdict, app);
        assert.deepEqual(bytes, referenceBytes(verdict, app));
        // Again, now with the fixed parts cached.
        assert.deepEqual(encoder.encode(verdict, app), referenceBytes(verdict, app));
      });
    }
  }

  it('is read by Envoy protos as the verdict says', () => {
    const encoder = new CheckResponseEncoder();
    const verdict = verdicts[1]![1];
    const decoded = upstream.decode(upstream.CheckResponse, encoder.encode(verdict, 'web'));
    assert.deepEqual(
      decoded,
      upstream.decode(upstream.CheckResponse, referenceBytes(verdict, 'web')),
    );
    const ok = (decoded as { ok_response?: { headers_to_remove?: string[] } }).ok_response;
    assert.deepEqual(ok?.headers_to_remove, ['x-auth-request-groups', 'cookie']);
  });

  it('keeps the bytes of a frozen verdict encoded twice, per app, and not of others', () => {
    const encoder = new CheckResponseEncoder();
    const shared = Object.freeze(allow('session', { upstreamHeaders: [['x-u', 'alice']] }));
    const once = encoder.encode(shared, 'web');
    const first = encoder.encode(shared, 'web');
    assert.notEqual(first, once, 'encoded once: nothing kept yet');
    assert.deepEqual(first, once);
    assert.equal(encoder.encode(shared, 'web'), first, 'the same buffer again');
    assert.equal(encoder.encode(shared, 'web'), first, 'and again');
    const other = encoder.encode(shared, 'admin');
    assert.notEqual(other, first);
    assert.deepEqual(other, referenceBytes(shared, 'admin'));

    const fresh = allow('session', { upstreamHeaders: [['x-u', 'alice']] });
    assert.notEqual(encoder.encode(fresh, 'web'), encoder.encode(fresh, 'web'));
  });

  it('remembers at most 1,024 verdicts encoded once: an older one is encoded again', () => {
    const encoder = new CheckResponseEncoder();
    const verdictOf = (i: number) =>
      Object.freeze(allow('session', { upstreamHeaders: [['x-u', `user-${i}`]] }));
    const oldest = verdictOf(0);
    encoder.encode(oldest, 'web');
    const newer = Array.from({ length: 1_024 }, (_, i) => verdictOf(i + 1));
    for (const verdict of newer) encoder.encode(verdict, 'web');
    // Pushed out: its next encoding counts as its first again, so it is not kept.
    const again = encoder.encode(oldest, 'web');
    assert.notEqual(encoder.encode(oldest, 'web'), again);
    assert.deepEqual(again, referenceBytes(oldest, 'web'));
    // The newest of them is still remembered: its second encoding is kept.
    const last = newer[newer.length - 1]!;
    const kept = encoder.encode(last, 'web');
    assert.equal(encoder.encode(last, 'web'), kept);
    assert.deepEqual(kept, referenceBytes(last, 'web'));
  });
});
