/** The realistic-scale workloads rotate through what they claim to. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  loginRequests,
  mixRequests,
  realisticWorkloads,
  smokeSizes,
} from '../../bench/realistic-workloads.ts';

const label = (r: { expected: { app: string; verdict: string; reason: string } }): string =>
  `${r.expected.app}/${r.expected.verdict}/${r.expected.reason}`;

describe('bench realistic workloads', () => {
  it('mixes 75% sessions, 20% bearer tokens and 5% logins, every session once', () => {
    const cookies = Array.from({ length: 300 }, (_, i) => `__Host-_eoa_web=c${i}`);
    const tokens = ['t0', 't1', 't2'];
    const mix = mixRequests(cookies, tokens);
    const counts = new Map<string, number>();
    for (const r of mix) counts.set(label(r), (counts.get(label(r)) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(counts), {
      'web/allow/session': 300,
      'api/allow/bearer': 80,
      'web/login/login': 20,
    });
    const users = mix.filter((r) => r.expected.reason === 'session').map((r) => r.expected.user);
    assert.equal(new Set(users).size, 300, 'each session once, with its own user');
    // Tokens in turn, each checked against its own subject.
    const bearer = mix.filter((r) => r.expected.reason === 'bearer');
    assert.deepEqual(
      bearer.slice(0, 4).map((r) => [r.request.headers?.[1]?.[1], r.expected.user]),
      [
        ['Bearer t0', 'svc-0'],
        ['Bearer t1', 'svc-1'],
        ['Bearer t2', 'svc-2'],
        ['Bearer t0', 'svc-0'],
      ],
    );
  });

  it('gives each workload the sessions or tokens its title counts', () => {
    const minted = {
      cookies: Array.from({ length: smokeSizes.manyCookies }, (_, i) => `c=${i}`),
      serverCookies: Array.from({ length: smokeSizes.serverSessions }, (_, i) => `s=${i}`),
      tokens: Array.from({ length: smokeSizes.tokens }, (_, i) => `t${i}`),
    };
    const workloads = realisticWorkloads(smokeSizes, minted);
    assert.equal(workloads.cookies().requests.length, smokeSizes.cookies);
    assert.equal(workloads['many-cookies']().requests.length, smokeSizes.manyCookies);
    assert.equal(workloads['server-sessions']().requests[0]?.expected.app, 'srv');
    assert.equal(workloads.bearers().requests.length, smokeSizes.tokens);
    assert.equal(workloads['hot-cookie-gen']().requests.length, 1);
  });
});

describe('bench login workload', () => {
  it('sends each navigation to a page of its own, every one expecting the 302 login', () => {
    const logins = loginRequests(500);
    assert.equal(logins.length, 500);
    assert.equal(new Set(logins.map((r) => r.request.url)).size, 500, 'no URL twice');
    for (const r of logins) {
      assert.deepEqual(r.expected, { app: 'web', verdict: 'login', reason: 'login', status: 302 });
      assert.equal(new URL(r.request.url).host, 'web.example.com');
      assert.ok(
        !r.request.headers?.some(([name]) => name === 'cookie' || name === 'authorization'),
        'unauthenticated',
      );
    }
    const minted = { cookies: ['c=0'], serverCookies: [], tokens: ['t0'] };
    const workload = realisticWorkloads(smokeSizes, minted).logins();
    assert.equal(workload.requests.length, smokeSizes.cookies);
    assert.equal(workload.floorTarget, 0.7);
  });
});
