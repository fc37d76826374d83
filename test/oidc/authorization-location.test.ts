/** Authorization URLs built from a kept prefix are the very strings the URL machinery writes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AuthorizationLocations,
  type PerLoginValues,
} from '../../src/oidc/authorization-location.ts';
import { createLoginSecrets } from '../../src/oidc/pkce.ts';

/** What openid-client does: the endpoint as a URL, each parameter appended in order. */
function builder(endpoint: string, extras: Record<string, string> = {}, trailing = false) {
  let calls = 0;
  const build = (values: PerLoginValues): URL => {
    calls += 1;
    const url = new URL(endpoint);
    const params: Record<string, string> = {
      ...extras,
      client_id: 'web app',
      response_type: 'code',
      redirect_uri: values.redirectUri,
      scope: 'openid email profile',
      state: values.state,
      nonce: values.nonce,
      code_challenge: values.codeChallenge,
      code_challenge_method: 'S256',
    };
    if (trailing) params['response_mode'] = 'jwt';
    for (const [name, value] of Object.entries(params)) url.searchParams.append(name, value);
    return url;
  };
  return { build, calls: () => calls };
}

function values(redirectUri: string): PerLoginValues {
  const secrets = createLoginSecrets();
  return {
    redirectUri,
    state: secrets.state,
    nonce: secrets.nonce,
    codeChallenge: secrets.codeChallenge,
  };
}

const redirectUris = [
  'https://web.example.com/oauth2/callback',
  'http://127.0.0.1:8080/oauth2/callback',
  "https://a!b'c(d)e~f*g.example.com:8443/cb?x=1&y=a b",
  'https://[::1]:8443/oauth2/callback',
  'https://wëb.example.com/callback/ünïcode',
];

describe('AuthorizationLocations', () => {
  for (const endpoint of [
    'https://idp.example.com/auth',
    'https://idp.example.com/auth?tenant=a%20b&x=~*',
    'http://127.0.0.1:4000/oidc/auth/',
  ]) {
    it(`spells every URL as the URL machinery does: ${endpoint}`, () => {
      const { build } = builder(endpoint, { ui_locales: 'de en', 'x-odd': "!'()~*" });
      const locations = new AuthorizationLocations(build);
      for (const redirectUri of redirectUris) {
        for (let i = 0; i < 3; i++) {
          const login = values(redirectUri);
          assert.equal(locations.location(login), build(login).href);
        }
      }
    });
  }

  it('builds the URL once per redirect URI, not once per login', () => {
    const { build, calls } = builder('https://idp.example.com/auth');
    const locations = new AuthorizationLocations(build);
    for (let i = 0; i < 10; i++) locations.location(values(redirectUris[0]!));
    assert.equal(calls(), 1);
  });

  it('falls back to the URL machinery where a prefix would not give the same string', () => {
    const endsOtherwise = builder('https://idp.example.com/auth', {}, true);
    const locations = new AuthorizationLocations(endsOtherwise.build);
    const login = values(redirectUris[0]!);
    assert.equal(locations.location(login), endsOtherwise.build(login).href);

    const plain = builder('https://idp.example.com/auth');
    const encoded = new AuthorizationLocations(plain.build);
    const odd = { ...login, state: 'needs encoding+/=', nonce: 'a b' };
    assert.equal(encoded.location(odd), plain.build(odd).href);
  });

  it('keeps a bounded number of redirect URIs', () => {
    const { build, calls } = builder('https://idp.example.com/auth');
    const locations = new AuthorizationLocations(build, 2);
    for (const uri of ['https://a.example/cb', 'https://b.example/cb', 'https://c.example/cb']) {
      const login = values(uri);
      assert.equal(locations.location(login), build(login).href);
    }
    const before = calls();
    locations.location(values('https://a.example/cb'));
    assert.equal(calls(), before + 1, 'dropped, so built again');
  });
});
