/** Two apps whose session cookies would meet in one browser under one name are refused at load. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cookieNamesCollide, legacyCookieNameFor } from '../../src/config/cookie-scopes.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { ConfigProblem } from '../../src/errors.ts';
import { cliPath } from '../support/server-process.ts';

const SESSION_KEY = 'fEooI4RF2oqSEcHXLD1uzDqiM0up4HPehiyFuEH_oiH7';
const fixture = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'test',
  'fixtures',
  'cli',
  'shared-cookie-name.yaml',
);

function app(name: string, match: unknown, session: Record<string, unknown> = {}) {
  return {
    name,
    ...(match === undefined ? {} : { match }),
    oidc: { issuer: 'https://idp.example.com', clientId: name, clientSecret: 'Zt4mQ9vL2xKp7Rw1' },
    session: { secrets: [SESSION_KEY], ...session },
  };
}

function problemsOf(apps: readonly unknown[], defaults?: unknown): readonly ConfigProblem[] {
  const result = loadConfig(
    { document: { ...(defaults === undefined ? {} : { defaults }), apps } },
    {},
  );
  return result.ok ? [] : result.problems;
}

function refused(apps: readonly unknown[], defaults?: unknown): ConfigProblem {
  const problems = problemsOf(apps, defaults);
  assert.equal(problems.length, 1, JSON.stringify(problems));
  return problems[0]!;
}

describe('cookie scopes at config load', () => {
  const named = { cookieName: 'sso' };

  it('accepts one name on two hosts that never share cookies', () => {
    const apps = [
      app('a', { hosts: ['a.example.com'] }, named),
      app('b', { hosts: ['b.example.com'] }, named),
    ];
    assert.deepEqual(problemsOf(apps), []);
  });

  it('refuses one name on one host even with different path prefixes (cookies are Path=/)', () => {
    const problem = refused([
      app('a', { hosts: ['tools.example.com'], pathPrefix: '/a/' }, named),
      app('b', { hosts: ['tools.example.com'], pathPrefix: '/b/' }, named),
    ]);
    assert.equal(problem.path, 'apps[1].session.cookieName');
    assert.match(problem.message, /apps\[0\]\.session\.cookieName/);
    assert.match(problem.message, /on tools\.example\.com/);
    assert.match(problem.message, /_eoa_b/, 'names the default that would fix it');
  });

  it('accepts two apps on one host with their default names', () => {
    const apps = [
      app('a', { hosts: ['tools.example.com'], pathPrefix: '/a/' }),
      app('b', { hosts: ['tools.example.com'], pathPrefix: '/b/' }),
    ];
    assert.deepEqual(problemsOf(apps), []);
  });

  it('refuses a name shared through defaults, as the old examples set it', () => {
    const problem = refused(
      [
        app('a', { hosts: ['tools.example.com'], pathPrefix: '/a/' }),
        app('b', { hosts: ['tools.example.com'], pathPrefix: '/b/' }),
      ],
      { session: { cookieName: '_eoa' } },
    );
    assert.equal(problem.path, 'apps[1].session.cookieName');
  });

  it('refuses an exact host that a wildcard app also covers', () => {
    const problem = refused([
      app('a', { hosts: ['*.example.com'] }, named),
      app('b', { hosts: ['grafana.example.com'] }, named),
    ]);
    assert.match(problem.message, /on grafana\.example\.com/);
  });

  it('refuses nested wildcards and accepts sibling ones', () => {
    refused([
      app('a', { hosts: ['*.example.com'] }, named),
      app('b', { hosts: ['*.eu.example.com'] }, named),
    ]);
    assert.deepEqual(
      problemsOf([
        app('a', { hosts: ['*.eu.example.com'] }, named),
        app('b', { hosts: ['*.us.example.com'] }, named),
      ]),
      [],
    );
  });

  it('refuses a Domain cookie and a host-only cookie under that domain', () => {
    const problem = refused([
      app('a', { hosts: ['a.example.com'] }, { ...named, domain: 'example.com' }),
      app('b', { hosts: ['b.example.com'] }, named),
    ]);
    assert.match(problem.message, /on b\.example\.com/);
  });

  it('refuses a Domain cookie and a host-only cookie on the domain itself', () => {
    refused([
      app('a', { hosts: ['www.example.com'] }, { ...named, domain: '.example.com' }),
      app('b', { hosts: ['example.com'] }, named),
    ]);
  });

  it('accepts a Domain cookie and a host outside that domain', () => {
    const apps = [
      app('a', { hosts: ['a.example.com'] }, { ...named, domain: 'example.com' }),
      app('b', { hosts: ['b.example.org'] }, named),
    ];
    assert.deepEqual(problemsOf(apps), []);
  });

  it('refuses two Domain cookies where one domain is under the other', () => {
    refused([
      app('a', { hosts: ['a.example.com'] }, { ...named, domain: 'example.com' }),
      app('b', { hosts: ['x.eu.example.com'] }, { ...named, domain: 'eu.example.com' }),
    ]);
  });

  it('refuses an app matching any host beside any other app of the same name', () => {
    const problem = refused([
      app('a', { hosts: ['a.example.com'] }, named),
      app('b', undefined, named),
    ]);
    assert.match(problem.message, /on any host/);
  });

  it("refuses a name that is another app's chunk or login-state cookie", () => {
    refused([
      app('a', { hosts: ['t.example.com'] }, { cookieName: 'sso' }),
      app('b', { hosts: ['t.example.com'] }, { cookieName: 'sso.1' }),
    ]);
    refused([
      app('a', { hosts: ['t.example.com'] }, { cookieName: 'sso' }),
      app('b', { hosts: ['t.example.com'] }, { cookieName: 'sso_login_x' }),
    ]);
    assert.equal(cookieNamesCollide('sso', 'ssox'), false);
    assert.equal(cookieNamesCollide('_eoa', '_eoa_wiki'), false);
  });

  it('reports two apps of one name once, as a duplicate name', () => {
    const problems = problemsOf([app('a', undefined), app('a', undefined)]);
    assert.deepEqual(
      problems.map((p) => p.path),
      ['apps[1].name'],
    );
  });

  it('sweeps the legacy _eoa cookie only for apps on their default name, when no app uses _eoa', () => {
    const a = { name: 'a', session: { cookieName: '_eoa_a' } } as const;
    const b = { name: 'b', session: { cookieName: 'custom' } } as const;
    const old = { name: 'old', session: { cookieName: '_eoa' } } as const;
    assert.equal(legacyCookieNameFor([a, b], a), '_eoa');
    assert.equal(legacyCookieNameFor([a, b], b), undefined);
    assert.equal(legacyCookieNameFor([a, old], a), undefined);
  });

  for (const command of ['check-config', 'serve'] as const) {
    it(`${command} refuses the shared-cookie-name fixture and names the path`, () => {
      const result = spawnSync(process.execPath, [cliPath, command, '--config', fixture], {
        encoding: 'utf8',
        timeout: 10_000,
        env: {
          ...process.env,
          SESSION_KEY,
          GRAFANA_SECRET: 'Zt4mQ9vL2xKp7Rw1',
          WIKI_SECRET: 'H8sD3fJ6kL0qW5eR',
        },
      });
      assert.notEqual(result.status, 0, result.stdout + result.stderr);
      assert.match(result.stdout + result.stderr, /apps\[1\]\.session\.cookieName: "_eoa" meets/);
    });
  }
});
