/** The DPoP mix sends proofs the server accepts, each once: fresh on every use of the rotation. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DpopProofVerifier } from '../../src/authz/dpop-proof.ts';
import { benchDpopClient } from '../../bench/dpop-signer.ts';
import { onceOnlyCalls, onceOnlyRotation } from '../../bench/realistic.ts';
import { dpopHtu, mixRequests, realisticWorkloads } from '../../bench/realistic-workloads.ts';

const header = (
  r: { request: { headers?: readonly (readonly [string, string])[] } },
  name: string,
) => r.request.headers?.find(([n]) => n === name)?.[1];

describe('bench DPoP mix', () => {
  const signer = benchDpopClient();
  const dpop = { signer, tokens: ['bound-0', 'bound-1', 'bound-2'] };
  const cookies = Array.from({ length: 150 }, (_, i) => `__Host-_eoa_web=c${i}`);
  const mix = mixRequests(cookies, ['t0', 't1'], dpop);

  it('makes 20% of the bearer share DPoP-bound, each token with its own subject', () => {
    const bearer = mix.filter((r) => r.expected.app === 'api');
    const bound = bearer.filter((r) => header(r, 'authorization')?.startsWith('DPoP ') === true);
    assert.equal(bearer.length, 40);
    assert.equal(bound.length, 8);
    assert.ok(
      bound.every((r) => r.renew !== undefined),
      'DPoP requests are once-only',
    );
    assert.ok(bearer.filter((r) => !bound.includes(r)).every((r) => r.renew === undefined));
    assert.deepEqual(
      bound.slice(0, 4).map((r) => [header(r, 'authorization'), r.expected.user]),
      [
        ['DPoP bound-0', 'svc-dpop-0'],
        ['DPoP bound-1', 'svc-dpop-1'],
        ['DPoP bound-2', 'svc-dpop-2'],
        ['DPoP bound-0', 'svc-dpop-0'],
      ],
    );
    assert.equal(mix.filter((r) => r.expected.reason === 'session').length, 150);
  });

  it('renews every proof at every use, each one accepted by the server and never repeated', () => {
    const calls = mix.length * 3 + 7;
    const rotation = onceOnlyRotation(mix, calls);
    assert.equal(rotation.length, calls);
    // Everything else is sent as encoded once: the same objects, in the rotation's order.
    rotation.forEach((r, k) => {
      const base = mix[k % mix.length]!;
      if (base.renew === undefined) assert.equal(r, base);
      else assert.notEqual(r, base);
      assert.deepEqual(r.expected, base.expected);
    });
    const proofs = rotation.flatMap((r) => header(r, 'dpop') ?? []);
    assert.equal(proofs.length, 8 * 3, 'one proof per DPoP call (the 7 extra are sessions)');
    const verifier = new DpopProofVerifier(
      { algs: ['ES256'], maxAgeMs: 60_000, clockSkewMs: 5_000 },
      Date.now,
    );
    const jtis = new Set<string>();
    const now = Date.now();
    for (const r of rotation.filter((one) => header(one, 'dpop') !== undefined)) {
      const token = header(r, 'authorization')!.slice('DPoP '.length);
      const check = verifier.verify(header(r, 'dpop')!, 'GET', dpopHtu, token, now);
      assert.equal(check.kind, 'valid', JSON.stringify(check));
      if (check.kind !== 'valid') continue;
      assert.equal(check.jkt, signer.jkt);
      jtis.add(check.jti);
    }
    assert.equal(jtis.size, proofs.length, 'no jti twice');
    // A proof for another token (ath) is refused: each proof is bound to its own request's token.
    const first = rotation.find((one) => header(one, 'dpop') !== undefined)!;
    assert.equal(
      verifier.verify(header(first, 'dpop')!, 'GET', dpopHtu, 'bound-9', now).kind,
      'invalid',
    );
  });

  it('sizes a once-only run for the rate, half again, and what is in flight', () => {
    assert.equal(onceOnlyCalls(10_000, 5, 64), 75_064);
    assert.equal(onceOnlyCalls(3, 0.5, 4), 7);
    assert.throws(() => onceOnlyRotation([], 3), /no requests/);
  });

  it('needs bound tokens for the DPoP mix, and refuses an empty set', () => {
    const minted = { cookies, serverCookies: [], tokens: ['t0'] };
    const sizes = { cookies: 20, manyCookies: 20, serverSessions: 1, tokens: 1 };
    assert.throws(() => realisticWorkloads(sizes, minted)['mix-dpop'](), /DPoP-bound tokens/);
    assert.throws(() => mixRequests(cookies, ['t0'], { signer, tokens: [] }), /no DPoP-bound/);
    const workload = realisticWorkloads(sizes, { ...minted, dpop })['mix-dpop']();
    assert.equal(workload.requests.filter((r) => r.renew !== undefined).length, 1);
  });
});
