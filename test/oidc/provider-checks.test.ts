import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { issuerOfDiscoveryUrl } from '../../src/config/issuer-key.ts';
import { MAX_REQUEST_URI_LENGTH, requestUriProblem } from '../../src/oidc/pushed-authorization.ts';
import {
  discoveryUrlOf,
  idTokenAlgMismatch,
  issuerMismatch,
  parMismatch,
  pushesAuthorization,
  sharedIdTokenAlgs,
} from '../../src/oidc/provider-checks.ts';

describe('issuer checks', () => {
  it('finds the issuer a discovery document URL stands for, in both placements', () => {
    const cases: [string, string | null | undefined][] = [
      ['https://idp.example.com/.well-known/openid-configuration', 'https://idp.example.com'],
      [
        'https://idp.example.com/realms/main/.well-known/openid-configuration',
        'https://idp.example.com/realms/main',
      ],
      [
        'https://idp.example.com/.well-known/openid-configuration/tenant',
        'https://idp.example.com/tenant',
      ],
      ['https://idp.example.com/.well-known/oauth-authorization-server', null],
      ['https://idp.example.com/realms/main', undefined],
      ['https://idp.example.com/', undefined],
      ['not a url', undefined],
      ['', undefined],
    ];
    for (const [url, issuer] of cases) assert.equal(issuerOfDiscoveryUrl(url), issuer, url);
  });

  it('builds the discovery URL from the issuer, and keeps one given as the issuer', () => {
    assert.equal(
      discoveryUrlOf('https://idp.example.com').href,
      'https://idp.example.com/.well-known/openid-configuration',
    );
    assert.equal(
      discoveryUrlOf('https://idp.example.com/realm/').href,
      'https://idp.example.com/realm/.well-known/openid-configuration',
    );
    const given = 'https://idp.example.com/realm/.well-known/openid-configuration';
    assert.equal(discoveryUrlOf(given).href, given);
  });

  it('accepts only an identical issuer', () => {
    assert.equal(issuerMismatch('https://idp.example.com', 'https://idp.example.com'), undefined);
    for (const announced of [
      'https://idp.example.com/',
      'https://IDP.example.com',
      'https://idp.example.com:443',
      'https://other.example.com',
    ]) {
      const message = issuerMismatch('https://idp.example.com', announced);
      assert.ok(message !== undefined, announced);
      assert.ok(message.includes(JSON.stringify(announced)), `names the provider's: ${message}`);
      assert.ok(message.includes('"https://idp.example.com"'), `names ours: ${message}`);
    }
  });

  it('recognises a trailing slash, either way, and suggests the provider’s value', () => {
    assert.match(
      issuerMismatch('https://idp.example.com/', 'https://idp.example.com')!,
      /trailing slash.*set oidc\.issuer to "https:\/\/idp\.example\.com" exactly/,
    );
    assert.match(
      issuerMismatch('https://tenant.example.com', 'https://tenant.example.com/')!,
      /trailing slash.*"https:\/\/tenant\.example\.com\/" exactly/,
    );
  });

  it('recognises the discovery URL given as the issuer', () => {
    assert.match(
      issuerMismatch(
        'https://idp.example.com/realm/.well-known/openid-configuration',
        'https://idp.example.com/realm',
      )!,
      /discovery document's URL: set it to "https:\/\/idp\.example\.com\/realm"/,
    );
  });

  it('keeps a hostile issuer on one bounded line', () => {
    for (const announced of [
      'https://evil.example\r\nlevel=info msg=forged',
      `https://idp.example.com/${'x'.repeat(100_000)}`,
      'https://ïdp.example.com/ünïcode',
      '',
    ]) {
      const message = issuerMismatch('https://idp.example.com', announced)!;
      assert.doesNotMatch(message, /[\r\n]/);
      assert.ok(message.length < 1_000, `${message.length} characters`);
    }
    assert.match(issuerMismatch('https://idp.example.com', undefined)!, /has no issuer/);
    assert.match(issuerMismatch('https://idp.example.com', 42)!, /has no issuer/);
  });
});

describe('ID-token algorithm checks', () => {
  it('finds the algorithms both sides accept; RS256 when the provider announces none', () => {
    assert.deepEqual(sharedIdTokenAlgs(['ES256', 'RS256'], ['RS256']), ['RS256']);
    assert.deepEqual(sharedIdTokenAlgs(undefined, ['ES256', 'RS256']), ['RS256']);
    assert.equal(idTokenAlgMismatch(['RS256', 'HS256'], ['RS256']), undefined);
  });

  it('names both lists when they share nothing', () => {
    const message = idTokenAlgMismatch(['HS256'], ['RS256', 'ES256']);
    assert.ok(message !== undefined);
    assert.match(message, /"HS256"/);
    assert.match(message, /RS256, ES256/);
    assert.match(message, /every login would fail/);
    assert.match(idTokenAlgMismatch(undefined, ['ES256'])!, /RS256.*not announced/);
    assert.match(idTokenAlgMismatch([], ['RS256'])!, /only with nothing/);
  });

  it('keeps a hostile algorithm list bounded and on one line', () => {
    const hostile = [
      'a\r\nforged',
      ...Array.from({ length: 10_000 }, (_, i) => `X${i}`),
      'a\r\nforged',
    ];
    const message = idTokenAlgMismatch(hostile, ['RS256'])!;
    assert.doesNotMatch(message, /[\r\n]/);
    assert.ok(message.length < 2_000, `${message.length} characters`);
    // Not a list at all (a hostile document): treated as not announced.
    assert.equal(
      idTokenAlgMismatch('RS256' as unknown as string[], ['RS256']),
      undefined,
      'a string is not a list; RS256 assumed',
    );
  });
});

describe('pushed authorization request checks (oidc.par)', () => {
  const endpoint = 'https://idp.example.com/par';
  const offered = { pushed_authorization_request_endpoint: endpoint };
  const required = { ...offered, require_pushed_authorization_requests: true };

  it('pushes with always, with auto only where the provider requires it, never with never', () => {
    assert.equal(pushesAuthorization(offered, 'always'), true);
    assert.equal(pushesAuthorization(offered, 'auto'), false);
    assert.equal(pushesAuthorization(required, 'auto'), true);
    assert.equal(pushesAuthorization(required, 'never'), false);
    // Only the boolean true requires them: a string "true" is not the provider's requirement.
    assert.equal(
      pushesAuthorization({ require_pushed_authorization_requests: 'true' }, 'auto'),
      false,
    );
  });

  it('names what cannot work, and nothing else', () => {
    assert.equal(parMismatch(offered, 'always'), undefined);
    assert.equal(parMismatch(required, 'auto'), undefined);
    assert.equal(parMismatch({}, 'auto'), undefined);
    assert.equal(parMismatch({}, 'never'), undefined);
    assert.match(
      parMismatch({}, 'always') ?? '',
      /^oidc\.par is always but .* no pushed_authorization_request_endpoint/,
    );
    assert.match(
      parMismatch({ require_pushed_authorization_requests: true }, 'auto') ?? '',
      /^the provider requires .* announces no pushed_authorization_request_endpoint/,
    );
    assert.match(
      parMismatch({ pushed_authorization_request_endpoint: 'not a url' }, 'always') ?? '',
      /no pushed_authorization_request_endpoint/,
    );
    assert.match(
      parMismatch(required, 'never') ?? '',
      /oidc\.par is never: every login would be refused/,
    );
  });
});

describe('request_uri checks', () => {
  it('accepts a URN and refuses what a redirect cannot carry', () => {
    assert.equal(
      requestUriProblem('urn:ietf:params:oauth:request_uri:6esc_11ACC5bwc014ltc14eY22c'),
      undefined,
    );
    assert.equal(requestUriProblem('x'.repeat(MAX_REQUEST_URI_LENGTH)), undefined);
    assert.match(requestUriProblem(null) ?? '', /no request_uri/);
    assert.match(requestUriProblem('') ?? '', /no request_uri/);
    assert.match(requestUriProblem('x'.repeat(MAX_REQUEST_URI_LENGTH + 1)) ?? '', /at most 512/);
    for (const bad of [
      'urn:a\r\nset-cookie: x=y',
      'urn:a b',
      'urn:\u0000',
      'urn:é',
      'urn:\u2028',
    ]) {
      assert.match(requestUriProblem(bad) ?? '', /outside visible ASCII/, JSON.stringify(bad));
    }
  });
});
