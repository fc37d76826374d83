/**
 * Start-up tells the truth (issue 15): an issuer or algorithm mistake that would fail every login
 * is named before the first login, by `/readyz` and by `check-config --online`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { freePort } from '../oidc/oidc-fixtures.ts';
import { cliPath } from '../support/server-process.ts';
import { waitFor } from '../support/redis-servers.ts';
import { startTestServer, testSessionSecret } from '../support/test-server.ts';

const secret = 'a-client-secret-that-is-long-enough';

/** Runs the CLI without blocking this process, where the providers answer. */
function runCli(
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      { encoding: 'utf8', timeout: 30_000 },
      (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr });
      },
    );
  });
}

function appYaml(
  name: string,
  issuer: string,
  idTokenAlgs?: readonly string[],
  par?: 'always' | 'never',
): string {
  return [
    `  - name: ${name}`,
    `    match: { hosts: [${name}.example.com] }`,
    `    oidc:`,
    `      issuer: ${JSON.stringify(issuer)}`,
    `      clientId: ${name}`,
    `      clientSecret: ${secret}`,
    ...(idTokenAlgs === undefined ? [] : [`      idTokenAlgs: [${idTokenAlgs.join(', ')}]`]),
    ...(par === undefined ? [] : [`      par: ${par}`]),
    `    session: { secrets: [${testSessionSecret}] }`,
  ].join('\n');
}

describe('start-up tells the truth', () => {
  let rs256: TestProvider;
  let es256: TestProvider;
  /** Announces no pushed authorization request endpoint. */
  let noPar: TestProvider;
  /** Requires pushed authorization requests of every client. */
  let parRequired: TestProvider;
  let dir: string;

  before(async () => {
    const client = { clientId: 'web', clientSecret: secret, redirectUris: ['https://x/cb'] };
    rs256 = await startTestProvider({ clients: [client], idTokenSigningAlgs: ['RS256'] });
    es256 = await startTestProvider({ clients: [client], idTokenSigningAlgs: ['ES256'] });
    noPar = await startTestProvider({ clients: [client], par: 'off' });
    parRequired = await startTestProvider({ clients: [client], par: 'required' });
    dir = mkdtempSync(join(tmpdir(), 'eoa-online-'));
  });
  after(async () => {
    await rs256.close();
    await es256.close();
    await noPar.close();
    await parRequired.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function configFile(name: string, apps: readonly string[]): string {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(path, `apps:\n${apps.join('\n')}\n`);
    return path;
  }

  it('check-config --online passes, exit 0, when every app matches its provider', async () => {
    const path = configFile('good', [
      appYaml('one', rs256.issuer),
      appYaml('two', es256.issuer, ['ES256']),
    ]);
    const result = await runCli(['check-config', '--online', '--config', path]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /config OK: 2 apps/);
    assert.match(result.stdout, /apps\[0\] one: provider .* OK/);
    assert.match(result.stdout, /apps\[1\] two: provider .* OK/);
  });

  it('check-config --online names each mistake with both values and exits non-zero', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const path = configFile('bad', [
      appYaml('slash', `${rs256.issuer}/`),
      appYaml('algs', es256.issuer, ['RS256', 'PS256']),
      appYaml('dead', dead),
      appYaml('fine', rs256.issuer),
    ]);
    const result = await runCli(['check-config', '--online', '--config', path]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const lines = result.stderr.trim().split('\n');
    const slash = lines.find((l) => l.startsWith('apps[0].oidc.issuer:')) ?? '';
    assert.ok(slash.includes(JSON.stringify(rs256.issuer)), result.stderr);
    assert.ok(slash.includes(JSON.stringify(`${rs256.issuer}/`)), slash);
    assert.match(slash, /trailing slash/);
    assert.match(
      lines.find((l) => l.startsWith('apps[1].oidc.idTokenAlgs:')) ?? '',
      /"ES256".*RS256, PS256/,
    );
    assert.match(
      lines.find((l) => l.startsWith('apps[2].oidc.issuer:')) ?? '',
      /discovery failed: .*network/,
    );
    assert.ok(
      lines.some((l) => l.startsWith('apps[3] fine: provider')),
      'the good app is reported too',
    );
  });

  it('check-config without --online does not talk to providers', async () => {
    const path = configFile('offline', [appYaml('slash', `${rs256.issuer}/`)]);
    const before = rs256.counters().discovery;
    const result = await runCli(['check-config', '--config', path]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(rs256.counters().discovery, before);
  });

  it('check-config refuses the discovery URL as the issuer, offline, suggesting the issuer', async () => {
    const path = configFile('well-known', [
      appYaml('wk', 'https://idp.example.com/realms/main/.well-known/openid-configuration'),
    ]);
    const result = await runCli(['check-config', '--config', path]);
    assert.equal(result.code, 3, 'an invalid configuration');
    assert.match(
      result.stderr,
      /apps\[0\]\.oidc\.issuer: is the discovery document's URL, not the issuer: .*likely https:\/\/idp\.example\.com\/realms\/main/,
    );
  });

  it('/readyz names the app whose provider signs with no allowed algorithm, and the issuer mismatch', async () => {
    const server = await startTestServer(
      {
        apps: [
          {
            name: 'algs',
            match: { hosts: ['algs.example.com'] },
            oidc: {
              issuer: es256.issuer,
              clientId: 'web',
              clientSecret: secret,
              idTokenAlgs: ['RS256'],
            },
            session: { secrets: [testSessionSecret] },
          },
          {
            name: 'slash',
            match: { hosts: ['slash.example.com'] },
            oidc: { issuer: `${rs256.issuer}/`, clientId: 'web', clientSecret: secret },
            session: { secrets: [testSessionSecret] },
          },
        ],
      },
      { waitReady: false },
    );
    try {
      let body: { ready: boolean; waiting: { name: string; reason: string }[] } | undefined;
      await waitFor('both apps to be found misconfigured', async () => {
        const response = await fetch(`${server.adminBase}/readyz`);
        body = (await response.json()) as typeof body;
        return (
          response.status === 503 &&
          body!.waiting.filter((w) => w.reason.startsWith('misconfigured')).length === 2
        );
      });
      const algs = body!.waiting.find((w) => w.name === 'app:algs');
      assert.match(algs?.reason ?? '', /"ES256".*oidc\.idTokenAlgs \(RS256\)/);
      const slash = body!.waiting.find((w) => w.name === 'app:slash');
      assert.match(slash?.reason ?? '', /trailing slash/);
      assert.equal(body!.ready, false);
    } finally {
      await server.close();
    }
  });

  it('check-config --online and /readyz name oidc.par at odds with the provider', async () => {
    const path = configFile('par', [
      appYaml('always', noPar.issuer, undefined, 'always'),
      appYaml('never', parRequired.issuer, undefined, 'never'),
      appYaml('auto', parRequired.issuer),
    ]);
    const result = await runCli(['check-config', '--online', '--config', path]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const lines = result.stderr.trim().split('\n');
    assert.match(
      lines.find((l) => l.startsWith('apps[0].oidc.par:')) ?? '',
      /oidc\.par is always but its discovery document announces no pushed_authorization_request_endpoint/,
    );
    assert.match(
      lines.find((l) => l.startsWith('apps[1].oidc.par:')) ?? '',
      /requires pushed authorization requests .* oidc\.par is never/,
    );
    assert.ok(
      lines.some((l) => l.startsWith('apps[2] auto: provider')),
      result.stderr,
    );

    const server = await startTestServer(
      {
        apps: [
          {
            name: 'always',
            match: { hosts: ['always.example.com'] },
            oidc: { issuer: noPar.issuer, clientId: 'web', clientSecret: secret, par: 'always' },
            session: { secrets: [testSessionSecret] },
          },
        ],
      },
      { waitReady: false },
    );
    try {
      let body: { waiting: { name: string; reason: string }[] } | undefined;
      await waitFor('the app to be found misconfigured', async () => {
        const response = await fetch(`${server.adminBase}/readyz`);
        body = (await response.json()) as typeof body;
        return (
          response.status === 503 &&
          body!.waiting.some((w) => w.name === 'app:always' && w.reason.startsWith('misconfigured'))
        );
      });
      const reason = body!.waiting.find((w) => w.name === 'app:always')?.reason ?? '';
      assert.match(reason, /no pushed_authorization_request_endpoint/);
    } finally {
      await server.close();
    }
  });

  it('check-config --online checks an API-only app for its issuer only: it receives no ID token', async () => {
    const path = configFile('api-only', [
      [
        '  - name: api',
        '    match: { hosts: [api.example.com] }',
        '    oidc:',
        `      issuer: ${JSON.stringify(rs256.issuer)}`,
        '      idTokenAlgs: [ES256]',
        '      par: always',
        '    bearer: { enabled: true, audiences: [https://api.example.com/] }',
      ].join('\n'),
    ]);
    const result = await runCli(['check-config', '--online', '--config', path]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /app api: accepts bearer tokens from .*; no browser login/);
    assert.match(result.stdout, /apps\[0\] api: provider .* OK/);
  });
});
