/**
 * docs/oauth2-proxy.md names keys of this server's config for each oauth2-proxy flag, and shows
 * configuration blocks. Every key it names must exist in the schema, and every block must load
 * with the real config loader, so that a renamed key or a typo in the guide fails here rather
 * than in someone's migration. The flags a migration meets most must each have a row.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { parse } from 'yaml';

import { loadConfig } from '../../src/config/load.ts';
import { renderConfigReference } from '../../src/config/reference.ts';
import { repoPath } from '../deploy/repo-path.ts';

const guide = readFileSync(repoPath('docs/oauth2-proxy.md'), 'utf8');

/** Every key path the reference documents: `apps[].oidc.issuer`, `allowUnmatched`, … */
const referenceKeys: ReadonlySet<string> = (() => {
  const reference = renderConfigReference();
  const keys = new Set<string>();
  for (const m of reference.matchAll(/^\| `([^`]+)`/gm)) keys.add(m[1] ?? '');
  for (const m of reference.matchAll(/^## `([^`]+)`/gm)) keys.add(m[1] ?? '');
  return keys;
})();

/** The sections a key the guide names starts with: the top level, and an app's own keys. */
const sections: ReadonlySet<string> = new Set(
  [...referenceKeys].flatMap((key) => {
    const [first] = key.split('.');
    const app = /^apps\[\]\.([^.[]+)/.exec(key)?.[1];
    return [first ?? '', ...(app === undefined ? [] : [app])];
  }),
);

/** Whether `key` (as the guide writes it: `oidc.issuer` for `apps[].oidc.issuer`) exists. */
function documented(key: string): boolean {
  // `clientSecretFile`, `secretsFile`, `passwordFile`: the file form of a documented key.
  const forms = [key, key.replace(/File$/, '')];
  return forms.some((form) => referenceKeys.has(form) || referenceKeys.has(`apps[].${form}`));
}

/** The key of each backticked config reference in the guide's prose and tables. */
function namedKeys(): string[] {
  const keys = new Set<string>();
  for (const m of guide.matchAll(/`([^`\n]+)`/g)) {
    const token = (m[1] ?? '').split(/[:\s]/)[0] ?? '';
    if (!/^[a-z][A-Za-z]*(\.[a-z][A-Za-z]*)*$/.test(token)) continue;
    if (!sections.has(token.split('.')[0] ?? '')) continue;
    keys.add(token);
  }
  return [...keys].sort();
}

/** The guide's YAML blocks, each with the comment that says whose it is. */
function yamlBlocks(): { owner: string; text: string }[] {
  return [...guide.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => {
    const text = m[1] ?? '';
    return { owner: /^# ([\w-]+)/.exec(text)?.[1] ?? '', text };
  });
}

/** Secret files the blocks read, and the variables they name. */
const files = new Map([
  ['/etc/envoy-oidc-authz/secrets/grafana-client-secret', 'Hx4Rt8Np2Vc6Lz0Qw3Jm7Bf1Ks5Yd9Ga\n'],
  ['/etc/envoy-oidc-authz/secrets/session-keys', `${randomBytes(48).toString('base64')}\n`],
]);

/** One app around a block that holds only some of an app's keys. */
function asConfig(block: Record<string, unknown>): Record<string, unknown> {
  if ('apps' in block) return block;
  return {
    apps: [
      {
        name: 'grafana',
        oidc: {
          issuer: 'https://idp.example.com/realms/main',
          clientId: 'grafana',
          clientSecretFile: '/etc/envoy-oidc-authz/secrets/grafana-client-secret',
        },
        session: { secretsFile: '/etc/envoy-oidc-authz/secrets/session-keys' },
        ...block,
      },
    ],
  };
}

describe('docs/oauth2-proxy.md', () => {
  it('names only keys the schema has', () => {
    const keys = namedKeys();
    // A scan that finds nothing would pass the check below: the guide names dozens.
    assert.ok(keys.length >= 40, `found only ${keys.length}: ${keys.join(', ')}`);
    for (const expected of ['oidc.issuer', 'session.secrets', 'store.redis.url', 'publicPaths'])
      assert.ok(keys.includes(expected), expected);
    assert.deepEqual(
      keys.filter((key) => !documented(key)),
      [],
    );
  });

  it('has a row for every common flag', () => {
    const rows = guide
      .split('\n')
      .filter((line) => line.startsWith('| `--'))
      .map((line) => line.split('|')[1] ?? '');
    const flags = new Set(
      rows.flatMap((cell) => [...cell.matchAll(/`(--[a-z-]+)/g)].map((m) => m[1])),
    );
    for (const flag of [
      '--provider',
      '--oidc-issuer-url',
      '--client-id',
      '--client-secret',
      '--client-secret-file',
      '--cookie-secret',
      '--cookie-name',
      '--cookie-domain',
      '--cookie-secure',
      '--cookie-expire',
      '--cookie-refresh',
      '--email-domain',
      '--allowed-group',
      '--allowed-groups',
      '--upstream',
      '--redirect-url',
      '--pass-access-token',
      '--pass-authorization-header',
      '--set-xauthrequest',
      '--skip-auth-regex',
      '--skip-auth-route',
      '--session-store-type',
      '--redis-connection-url',
      '--reverse-proxy',
      '--whitelist-domain',
      '--skip-provider-button',
      '--scope',
      '--code-challenge-method',
      '--insecure-oidc-allow-unverified-email',
      '--ssl-insecure-skip-verify',
      '--backend-logout-url',
      '--api-route',
      '--skip-jwt-bearer-tokens',
      '--extra-jwt-issuers',
    ])
      assert.ok(flags.has(flag), flag);
    for (const endpoint of [
      '/oauth2/start',
      '/oauth2/callback',
      '/oauth2/sign_out',
      '/oauth2/auth',
      '/oauth2/userinfo',
    ])
      assert.match(guide, new RegExp(`^\\| \`${endpoint}\``, 'm'), endpoint);
  });

  it('shows only configuration blocks the config loader accepts', () => {
    const blocks = yamlBlocks();
    assert.deepEqual(
      blocks
        .map((b) => b.owner)
        .filter((owner) => owner !== 'oauth2-proxy' && owner !== 'envoy-oidc-authz'),
      [],
      'every block says whose config it is',
    );
    const ours = blocks.filter((b) => b.owner === 'envoy-oidc-authz');
    assert.ok(ours.length >= 2, 'the header example and the migrated config');
    for (const { text } of ours) {
      const loaded = loadConfig(
        { document: asConfig(parse(text) as Record<string, unknown>) },
        {},
        {
          readFile: (path) => {
            const found = files.get(path);
            if (found === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
            return found;
          },
        },
      );
      assert.ok(loaded.ok, `${text}\n${loaded.ok ? '' : JSON.stringify(loaded.problems, null, 2)}`);
    }
    // The "before" blocks are YAML too.
    for (const { text } of blocks.filter((b) => b.owner === 'oauth2-proxy')) parse(text);
  });

  it('migrates the Helm values into a config that keeps their meaning', () => {
    const [before] = yamlBlocks().filter((b) => b.owner === 'oauth2-proxy');
    const after = yamlBlocks().find(
      (b) => b.owner === 'envoy-oidc-authz' && /^apps:/m.test(b.text),
    );
    assert.ok(before && after);
    const values = parse(before.text) as {
      extraArgs: Record<string, unknown>;
      config: { clientID: string };
    };
    const loaded = loadConfig(
      { document: parse(after.text) },
      {},
      { readFile: (path) => files.get(path) ?? '' },
    );
    assert.ok(loaded.ok);
    const app = loaded.config.apps[0];
    assert.ok(app !== undefined);
    assert.equal(app.oidc.issuer, values.extraArgs['oidc-issuer-url']);
    assert.equal(app.oidc.clientId, values.config.clientID);
    assert.equal(
      new URL(values.extraArgs['redirect-url'] as string).pathname,
      app.oidc.callbackPath,
      'the redirect URI registered at the provider stays the same',
    );
    assert.deepEqual(app.authorization.requireGroups, [values.extraArgs['allowed-group']]);
    assert.equal(app.session.store, 'server');
    assert.equal(loaded.config.store.type, 'redis');
    assert.equal(loaded.config.store.redis?.url, values.extraArgs['redis-connection-url']);
    assert.equal(app.session.maxAge, 12 * 3600 * 1000);
    assert.equal(loaded.config.request.trustedHops, 1);
  });
});
