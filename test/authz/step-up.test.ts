import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testConfig, testApp } from '../support/test-server.ts';
import {
  combineDemands,
  compileStepUp,
  insufficientAuthenticationChallenge,
  shortfallOf,
  stepUpParams,
} from '../../src/authz/step-up.ts';
import { readRequestPath, type RequestPath } from '../../src/policy/request-path.ts';

const NOW = 1_800_000_000_000;
const SKEW = 30_000;

function pathOf(raw: string): RequestPath {
  const path = readRequestPath(raw);
  assert.ok('readings' in path);
  return path;
}

function authorization(document: Record<string, unknown>) {
  const config = testConfig({ apps: [testApp('a', { authorization: document })] });
  return config.apps[0]!.authorization;
}

describe('shortfallOf', () => {
  const demand = { acrValues: ['gold', 'silver'], maxAgeMs: 300_000 };
  const authTime = (msAgo: number) => (NOW - msAgo) / 1000;

  it('accepts an acr in the list and an auth_time within maxAge and the skew', () => {
    assert.equal(
      shortfallOf({ acr: 'silver', auth_time: authTime(0) }, demand, NOW, SKEW),
      undefined,
    );
    assert.equal(
      shortfallOf({ acr: 'gold', auth_time: authTime(330_000) }, demand, NOW, SKEW),
      undefined,
    );
    assert.equal(
      shortfallOf({ acr: 'gold', auth_time: authTime(-30_000) }, demand, NOW, SKEW),
      undefined,
      'the skew allows a provider clock slightly ahead',
    );
  });

  for (const [name, claims, expected] of [
    ['no acr', { auth_time: NOW / 1000 }, 'acr missing'],
    ['acr null', { acr: null, auth_time: NOW / 1000 }, 'acr missing'],
    ['acr as a list', { acr: ['gold'], auth_time: NOW / 1000 }, 'acr missing'],
    ['acr not in the list', { acr: 'bronze', auth_time: NOW / 1000 }, 'acr not accepted'],
    ['acr differing in case', { acr: 'Gold', auth_time: NOW / 1000 }, 'acr not accepted'],
    ['acr with CR/LF', { acr: 'gold\r\n', auth_time: NOW / 1000 }, 'acr not accepted'],
    ['acr non-ASCII', { acr: 'gőld', auth_time: NOW / 1000 }, 'acr not accepted'],
    ['acr empty', { acr: '', auth_time: NOW / 1000 }, 'acr not accepted'],
    ['no auth_time', { acr: 'gold' }, 'auth_time missing'],
    ['auth_time as a string', { acr: 'gold', auth_time: String(NOW / 1000) }, 'auth_time missing'],
    ['auth_time NaN', { acr: 'gold', auth_time: Number.NaN }, 'auth_time missing'],
    ['auth_time Infinity', { acr: 'gold', auth_time: Infinity }, 'auth_time missing'],
    ['auth_time too old', { acr: 'gold', auth_time: authTime(330_001) }, 'auth_time too old'],
    ['auth_time at 0', { acr: 'gold', auth_time: 0 }, 'auth_time too old'],
    [
      'auth_time in the future',
      { acr: 'gold', auth_time: authTime(-30_001) },
      'auth_time in the future',
    ],
    ['auth_time in ms, not s', { acr: 'gold', auth_time: NOW }, 'auth_time in the future'],
  ] as const) {
    it(`refuses ${name}`, () => {
      assert.equal(shortfallOf(claims, demand, NOW, SKEW), expected);
    });
  }

  it('reads only own properties (an inherited acr does not count)', () => {
    const claims = Object.create({ acr: 'gold', auth_time: NOW / 1000 }) as Record<string, unknown>;
    assert.equal(shortfallOf(claims, demand, NOW, SKEW), 'acr missing');
  });
});

describe('combineDemands', () => {
  it('keeps acr values every list allows, in the order of the last, and the shortest maxAge', () => {
    assert.deepEqual(
      combineDemands([
        { acrValues: ['a', 'b', 'c'], maxAge: 600_000 },
        { acrValues: ['c', 'b'], maxAge: 60_000 },
        { acrValues: [] },
      ]),
      { acrValues: ['c', 'b'], maxAgeMs: 60_000 },
    );
  });

  it('is never met when no acr is in every list', () => {
    const demand = combineDemands([{ acrValues: ['a'] }, { acrValues: ['b'] }]);
    assert.equal(
      shortfallOf({ acr: 'a', auth_time: NOW / 1000 }, demand, NOW, SKEW),
      'no acr meets every rule',
    );
  });
});

describe('compileStepUp', () => {
  it('demands nothing without acrValues or maxAge', () => {
    const policy = compileStepUp(
      authorization({ paths: [{ prefix: '/x/', requireGroups: ['g'] }] }),
    );
    assert.equal(policy.demandFor('GET', pathOf('/x/y')), undefined);
  });

  it('applies the app demand everywhere and adds a path demand on any reading of its path', () => {
    const policy = compileStepUp(
      authorization({
        acrValues: ['silver', 'gold'],
        maxAge: '1h',
        paths: [{ prefix: '/admin/', acrValues: ['gold'], maxAge: '5m', methods: ['POST'] }],
      }),
    );
    assert.deepEqual(policy.demandFor('GET', pathOf('/home')), {
      acrValues: ['silver', 'gold'],
      maxAgeMs: 3_600_000,
    });
    const strict = { acrValues: ['gold'], maxAgeMs: 300_000 };
    assert.deepEqual(policy.demandFor('POST', pathOf('/admin/keys')), strict);
    assert.deepEqual(policy.demandFor('POST', pathOf('/%61dmin/keys')), strict);
    assert.deepEqual(policy.demandFor('POST', pathOf('/x/../admin/keys')), strict);
    assert.deepEqual(policy.demandFor('POST', pathOf('/admin;v=1/keys')), strict);
    assert.deepEqual(policy.demandFor('GET', pathOf('/admin/keys')), {
      acrValues: ['silver', 'gold'],
      maxAgeMs: 3_600_000,
    });
  });
});

describe('step-up parameters and challenge', () => {
  const demand = { acrValues: ['urn:loa:2', 'urn:loa:3'], maxAgeMs: 300_000 };

  it('asks the provider with acr_values and max_age in seconds', () => {
    assert.deepEqual(stepUpParams(demand), { acr_values: 'urn:loa:2 urn:loa:3', max_age: '300' });
    assert.deepEqual(stepUpParams({ acrValues: [], maxAgeMs: undefined }), {});
  });

  it('answers API callers with the RFC 9470 challenge', () => {
    assert.equal(
      insufficientAuthenticationChallenge('app', demand),
      'Bearer realm="app", error="insufficient_user_authentication", error_description="a stronger or more recent authentication is required", acr_values="urn:loa:2 urn:loa:3", max_age=300',
    );
  });
});

describe('step-up configuration', () => {
  for (const bad of ['with space', 'quo"te', 'back\\slash', '', 'é', 'x'.repeat(256), 'cr\r\nlf']) {
    it(`refuses the acr value ${JSON.stringify(bad.slice(0, 20))}`, () => {
      assert.throws(() => authorization({ acrValues: [bad] }), /acrValues/);
    });
  }
  for (const bad of ['500ms', '1500ms', '0s']) {
    it(`refuses maxAge ${bad}`, () => {
      assert.throws(() => authorization({ maxAge: bad }), /maxAge/);
    });
  }
});
