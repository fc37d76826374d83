/**
 * Attack class: header injection from claims. A user controls claims the provider releases
 * (display name, custom attributes) and puts in them what would split, fold or break a header:
 * CR/LF, NUL, U+2028/U+2029, DEL, C1 controls, very long values, lone surrogates, and the
 * non-Latin-1 text Node's `writeHead` refused. Expected, in both Envoy modes: no crash, no
 * injected header, an unsafe value's header left out (never cleaned up into another value, and
 * a forged copy of it removed too), a safe value sent as the same UTF-8 bytes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestProvider } from '../../dev/test-provider.ts';
import { bothModes, modeNames, type EnvoyMode } from '../support/both-modes.ts';
import { AppBrowser } from '../support/browser.ts';
import type { Outcome } from '../support/envoy-client.ts';
import { startAppStack, type TestServer } from '../support/test-server.ts';

const origin = 'https://wiki.example.com';
const clientSecret = 'wiki-client-secret-long-enough';

interface Row {
  readonly attack: string;
  /** The claim's value, sent as the `x-auth-request-claim-<claim>` identity header (the prefix the shipped lists let through). */
  readonly claim: string;
  readonly value: string | readonly string[];
  /** What the upstream gets: the value itself, or nothing. */
  readonly sent: boolean;
}

const rows: readonly Row[] = [
  { attack: 'CR LF and a header line', claim: 'crlf', value: 'eve\r\nx-injected: 1', sent: false },
  { attack: 'a bare LF', claim: 'lf', value: 'eve\nx-injected: 1', sent: false },
  { attack: 'a bare CR', claim: 'cr', value: 'eve\rx-injected: 1', sent: false },
  {
    attack: 'NUL (ad\\0min would clean up to admin)',
    claim: 'nul',
    value: 'ad\u0000min',
    sent: false,
  },
  { attack: 'U+2028 line separator', claim: 'ls', value: 'eve\u2028x-injected: 1', sent: false },
  { attack: 'U+2029 paragraph separator', claim: 'ps', value: 'eve\u2029x', sent: false },
  { attack: 'DEL', claim: 'del', value: 'eve\u007f', sent: false },
  { attack: 'C1 control NEL (U+0085)', claim: 'nel', value: 'eve\u0085x-injected: 1', sent: false },
  { attack: 'C1 control CSI (U+009B)', claim: 'csi', value: 'eve\u009b31m', sent: false },
  { attack: 'HTAB', claim: 'tab', value: 'eve\tadmin', sent: false },
  { attack: 'a lone surrogate', claim: 'lone', value: 'eve\ud800', sent: false },
  // RFC 9110 §5.5: parsers drop a value's leading and trailing whitespace (RFC 9113 §8.2.1 makes
  // it malformed), so `admin ` would reach the upstream as someone else's `admin`.
  {
    attack: 'a trailing space (admin␠ read as admin)',
    claim: 'trail',
    value: 'admin ',
    sent: false,
  },
  { attack: 'a leading space (␠admin read as admin)', claim: 'lead', value: ' admin', sent: false },
  { attack: 'a space inside', claim: 'inner', value: 'Eve Admin', sent: true },
  // A list is comma-joined, and upstreams split it on `,` and trim each item (RFC 9110 §5.6.1).
  {
    attack: 'a group holding a comma (x,admins read as two groups)',
    claim: 'commagroups',
    value: ['staff', 'x,admins'],
    sent: false,
  },
  {
    attack: 'a group with a leading space (staff, admins read as admins)',
    claim: 'spacegroups',
    value: ['staff', ' admins'],
    sent: false,
  },
  { attack: 'a value over 8 KiB', claim: 'long', value: 'x'.repeat(8 * 1024 + 1), sent: false },
  { attack: 'a value of 8 KiB, multibyte', claim: 'longok', value: 'ł'.repeat(4096), sent: true },
  { attack: 'Latin-1 (é, ü)', claim: 'latin', value: 'José Müller', sent: true },
  { attack: 'Latin Extended (Ł)', claim: 'polish', value: 'Łukasz Żółć', sent: true },
  { attack: 'Cyrillic', claim: 'cyrillic', value: 'Дмитрий', sent: true },
  { attack: 'CJK', claim: 'cjk', value: '山田太郎', sent: true },
  { attack: 'emoji (a surrogate pair)', claim: 'emoji', value: '🦄', sent: true },
  { attack: 'U+FFFD and a BOM', claim: 'odd', value: '\ufffd\ufeffeve', sent: true },
];

const headerOf = (row: Row): string => `x-auth-request-claim-${row.claim}`;

describe('header injection from claims', () => {
  let provider: TestProvider;
  let server: TestServer;
  let modes: EnvoyMode[];
  const outcomes = new Map<string, Outcome>();

  before(async () => {
    ({ provider, server } = await startAppStack({
      name: 'wiki',
      clientSecret,
      provider: {
        users: [
          {
            sub: 'eve',
            preferredUsername: 'eve',
            extraClaims: Object.fromEntries(rows.map((row) => [row.claim, row.value])),
          },
        ],
      },
      oidc: { scopes: ['openid', 'profile'] },
      // The long claims make a session too large for cookies.
      session: { store: 'server' },
      app: {
        upstreamHeaders: Object.fromEntries(
          rows.map((row) => [headerOf(row), `{{ claims.${row.claim} }}`]),
        ),
      },
    }));
    modes = bothModes(server);
    for (const mode of modes) {
      const browser = new AppBrowser(mode.envoy);
      await browser.login(`${origin}/`, 'eve');
      // A forged copy of every header rides along: one left out must not let it through.
      const forged = rows.map((row) => [headerOf(row), 'FORGED'] as const);
      outcomes.set(mode.name, await browser.request(`${origin}/`, { headers: forged }));
    }
  });

  after(async () => {
    for (const mode of modes) mode.close();
    await server.close();
    await provider.close();
  });

  it('serves the user in both modes, no header injected', () => {
    // Every row loops over these outcomes: an empty map would pass them all.
    assert.deepEqual([...outcomes.keys()], [...modeNames]);
    for (const [mode, outcome] of outcomes) {
      assert.equal(outcome.kind, 'allow', mode);
      if (outcome.kind !== 'allow') continue;
      assert.equal(outcome.upstream.headers.get('x-auth-request-user'), 'eve', mode);
      assert.equal(outcome.upstream.headers.has('x-injected'), false, mode);
      for (const [name, value] of outcome.upstream.headers) {
        // eslint-disable-next-line no-control-regex -- looking for exactly these
        assert.doesNotMatch(value, /[\r\n\u0000\u2028\u2029]/, `${mode}: ${name}`);
        assert.notEqual(value, 'FORGED', `${mode}: ${name}`);
      }
    }
  });

  for (const row of rows) {
    it(`${row.attack}: ${row.sent ? 'sent as is, same bytes in both modes' : 'left out in both modes'}`, () => {
      for (const [mode, outcome] of outcomes) {
        assert.ok(outcome.kind === 'allow', mode);
        const value = outcome.upstream.headers.get(headerOf(row));
        assert.equal(value, row.sent ? row.value : undefined, mode);
        if (row.sent) {
          assert.deepEqual(
            Buffer.from(value!, 'utf8'),
            Buffer.from(String(row.value), 'utf8'),
            mode,
          );
        }
      }
    });
  }
});
