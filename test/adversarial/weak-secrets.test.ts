/**
 * Attack class: a session key anyone can know or guess. Whoever knows the key seals a session
 * cookie for any user with any groups, so the key must be refused before a server runs with it:
 * at `check-config`, at `serve` and on reload. Each row is a key an attacker would try first and
 * the safe outcome: one problem naming the config path and the command that generates a key,
 * never the key itself.
 *
 * The same holds, more narrowly, for the client secrets and the Redis password: a template value
 * nobody replaced (a shipped Kubernetes Secret applied as it is) is refused where it is
 * configured, asking for the value the provider issued or Redis is configured with; a short or
 * wordy value a provider or a dev setup honestly uses is not.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';

import { parseAllDocuments } from 'yaml';

import { checkConfigFile } from '../../src/config/check.ts';
import { loadConfig } from '../../src/config/load.ts';
import { GENERATE_SECRET_COMMAND, sessionSecretProblem } from '../../src/config/secret-strength.ts';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { repoPath } from '../deploy/repo-path.ts';
import { cliPath, spawnServer } from '../support/server-process.ts';

/** The session key the Istio Secret shipped before it held a refused placeholder. */
const formerIstioPlaceholder = 'REPLACE-with-a-random-session-key-of-48-bytes-or-more';

/** A value of the Secret istio/secret.yaml ships, as the mounted file is read. */
function shippedIstioValue(key: string): string {
  const documents = parseAllDocuments(readFileSync(repoPath('istio/secret.yaml'), 'utf8'));
  const secret = documents[0]!.toJS() as { stringData: Record<string, string> };
  return secret.stringData[key]!.trim();
}

function shippedIstioKey(): string {
  return shippedIstioValue('session-keys');
}

interface Row {
  readonly attack: string;
  readonly key: string;
  readonly refusedAs: RegExp;
}

const rows: readonly Row[] = [
  {
    attack: 'the key istio/secret.yaml used to ship',
    key: formerIstioPlaceholder,
    refusedAs: /placeholder/,
  },
  {
    attack: 'the key istio/secret.yaml ships now',
    key: shippedIstioKey(),
    refusedAs: /placeholder/,
  },
  {
    attack: 'changeme repeated to length',
    key: 'changeme-changeme-changeme-changeme',
    refusedAs: /placeholder/,
  },
  {
    attack: 'CHANGE_ME in capitals',
    key: 'CHANGE_ME_TO_A_LONG_RANDOM_VALUE_PLEASE',
    refusedAs: /placeholder/,
  },
  {
    attack: 'a documentation example',
    key: 'example-key-from-the-docs-7Hq2Zx9Lm4Wc',
    refusedAs: /placeholder/,
  },
  {
    attack: '"secret" in the key',
    key: 'my-Session-SECRET-for-grafana-2024-prod',
    refusedAs: /placeholder/,
  },
  {
    attack: '"password" in the key',
    key: 'Password1Password2Password3Password4',
    refusedAs: /placeholder/,
  },
  { attack: '32 × a', key: 'a'.repeat(32), refusedAs: /predictable.*only 1 distinct character,/ },
  { attack: '64 × 0', key: '0'.repeat(64), refusedAs: /predictable/ },
  { attack: 'two characters alternating', key: 'ab'.repeat(20), refusedAs: /predictable/ },
  {
    attack: 'two characters in no period',
    key: 'abbabaabbaababbabaabbaababbaabab',
    refusedAs: /predictable.*only 2 distinct characters/,
  },
  {
    attack: 'a short word repeated',
    key: 'Grafana-2024!'.repeat(3),
    refusedAs: /predictable.*repeated pattern/,
  },
  {
    attack: 'hex digits ascending, twice',
    key: '0123456789abcdef0123456789abcdef',
    refusedAs: /predictable/,
  },
  {
    attack: 'the alphabet and digits ascending',
    key: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ',
    refusedAs: /predictable.*runs of repeated or consecutive characters/,
  },
  {
    attack: 'every other letter',
    key: 'acegikmoqsuwyACEGIKMOQSUWY02468!#%',
    refusedAs: /predictable/,
  },
  {
    attack: 'digits descending',
    key: '98765432109876543210987654321098',
    refusedAs: /predictable/,
  },
];

function app(secrets: readonly string[]): Record<string, unknown> {
  return {
    name: 'grafana',
    oidc: { issuer: 'https://idp.example.com', clientId: 'grafana', clientSecret: 'from-the-idp' },
    session: { secrets },
  };
}

function problemsOf(document: Record<string, unknown>, env: Record<string, string> = {}): string[] {
  const result = loadConfig({ text: JSON.stringify(document), format: 'json' }, env);
  return result.ok ? [] : result.problems.map((p) => `${p.path}: ${p.message}`);
}

const honestKey = randomBytes(48).toString('base64');

describe('weak session keys are refused where they are configured', () => {
  it('names a command that really makes a key (so includes() below cannot pass on an empty one)', () => {
    assert.equal(GENERATE_SECRET_COMMAND, 'openssl rand -base64 48');
  });

  for (const row of rows) {
    it(`${row.attack}: refused at session.secrets with the command that makes a good key`, () => {
      const problems = problemsOf({ apps: [app([row.key])] });
      assert.equal(problems.length, 1, problems.join('\n'));
      const problem = problems[0]!;
      assert.ok(problem.startsWith('apps[0].session.secrets[0]: '), problem);
      assert.match(problem, row.refusedAs);
      assert.ok(problem.includes(GENERATE_SECRET_COMMAND), problem);
      assert.ok(!problem.includes(row.key), 'the message never quotes the key');
    });
  }

  it('a weak rotation key behind a good current key: refused at its own index', () => {
    const problems = problemsOf({
      apps: [app([honestKey, 'changeme-changeme-changeme-changeme'])],
    });
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /^apps\[0\]\.session\.secrets\[1\]: is a placeholder/);
  });

  it('a weak key in defaults: refused once, at defaults, not once per app', () => {
    const problems = problemsOf({
      defaults: { session: { secrets: ['a'.repeat(40)] } },
      apps: [
        { ...app([]), session: undefined, match: { hosts: ['a.example.com'] } },
        { ...app([]), name: 'wiki', session: undefined, match: { hosts: ['b.example.com'] } },
      ],
    });
    assert.deepEqual(
      problems.map((p) => p.split(':')[0]),
      ['defaults.session.secrets[0]'],
      problems.join('\n'),
    );
  });

  it('a placeholder fallback of an unset variable (${SESSION_KEY:-changeme…}): refused', () => {
    const problems = problemsOf({
      apps: [app(['${SESSION_KEY:-changeme-before-going-to-production}'])],
    });
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /^apps\[0\]\.session\.secrets\[0\]: is a placeholder/);
  });

  it('a key too short is reported once, as too short', () => {
    assert.deepEqual(problemsOf({ apps: [app(['aaaa'])] }), [
      'apps[0].session.secrets[0]: must be at least 32 bytes long',
    ]);
  });

  it('honest keys of every usual shape pass: base64 48, base64url 32, base64 24, hex 32, hex 16', () => {
    const shapes: [string, () => string][] = [
      ['openssl rand -base64 48', () => randomBytes(48).toString('base64')],
      ['base64url 32', () => randomBytes(32).toString('base64url')],
      ['base64 24', () => randomBytes(24).toString('base64')],
      ['openssl rand -hex 32', () => randomBytes(32).toString('hex')],
      ['openssl rand -hex 16', () => randomBytes(16).toString('hex')],
    ];
    for (const [shape, generate] of shapes) {
      let placeholders = 0;
      for (let i = 0; i < 2_000; i++) {
        const key = generate();
        // The placeholder words are 6+ letters: a random key holds one less than once in 10^7.
        const problem = sessionSecretProblem(key);
        if (problem === undefined) continue;
        assert.match(problem, /placeholder/, `${shape}: ${key}`);
        placeholders += 1;
      }
      // So at most one in 2,000 may read as a placeholder; a check that flags them all fails.
      assert.ok(placeholders <= 1, `${shape}: ${placeholders} of 2000 read as placeholders`);
    }
  });
});

describe('the commands refuse a weak key with its path and the fix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eoa-weak-secrets-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const keysFile = join(dir, 'session-keys');
  writeFileSync(keysFile, `${formerIstioPlaceholder}\n`);
  const configFile = join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    [
      'listen: { grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0 }',
      'log: { level: silent }',
      'apps:',
      '  - name: grafana',
      '    oidc: { issuer: http://127.0.0.1:1, clientId: grafana, clientSecret: from-the-idp }',
      `    session: { secretsFile: ${keysFile} }`,
      '',
    ].join('\n'),
  );

  it('check-config: the library call the CLI prints', () => {
    const result = checkConfigFile(configFile, {});
    assert.equal(result.ok, false);
    assert.match(result.output, /^apps\[0\]\.session\.secrets\[0\]: is a placeholder/);
  });

  for (const command of ['check-config', 'serve']) {
    it(`envoy-oidc-authz ${command}: exits 3 with one line naming the path and the command`, () => {
      const result = spawnSync(process.execPath, [cliPath, command, '--config', configFile], {
        encoding: 'utf8',
        timeout: 10_000,
      });
      assert.equal(result.status, 3, result.stdout + result.stderr);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0]!, /^apps\[0\]\.session\.secrets\[0\]: is a placeholder/);
      assert.ok(lines[0]!.includes(GENERATE_SECRET_COMMAND), lines[0]);
      assert.ok(!result.stderr.includes(formerIstioPlaceholder), 'the key is never printed');
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Client secrets and the Redis password
// ---------------------------------------------------------------------------------------------

/** A template value nobody replaced. */
interface TemplateRow {
  readonly attack: string;
  readonly value: string;
}

const templateRows: readonly TemplateRow[] = [
  {
    attack: 'the client secret istio/secret.yaml ships',
    value: shippedIstioValue('grafana-client-secret'),
  },
  {
    attack: 'the Redis password istio/secret.yaml ships',
    value: shippedIstioValue('redis-password'),
  },
  { attack: 'changeme', value: 'changeme' },
  { attack: 'CHANGE-ME in capitals', value: 'CHANGE-ME' },
  { attack: 'change_me inside a longer value', value: 'change_me_before_production' },
  { attack: 'a placeholder named so', value: 'Client-Secret-Placeholder' },
  { attack: 'a value wrapped in <…>', value: '<client-secret>' },
  {
    attack: 'a value wrapped in <…> with spaces',
    value: '<the password Redis is configured with>',
  },
  { attack: 'a ${VAR} nobody substituted (envsubst not run)', value: '${GRAFANA_CLIENT_SECRET}' },
  { attack: 'three dots', value: '...' },
  { attack: 'an ellipsis character', value: '…' },
];

/** A value a provider or a dev setup honestly uses: accepted everywhere. */
const honestRows: readonly TemplateRow[] = [
  { attack: 'a short dev password', value: 's3cr3t-dev' },
  { attack: 'one character', value: 'p' },
  { attack: 'the word secret', value: 'secret' },
  { attack: 'the word password', value: 'password' },
  { attack: 'a name with secret in it', value: 'grafana-client-secret' },
  { attack: 'example in it', value: 'example-app-secret' },
  { attack: 'default in it', value: 'default-dev-password' },
  { attack: 'a provider-issued random secret', value: randomBytes(32).toString('base64url') },
  { attack: 'a UUID (Keycloak issues these)', value: '7f3c2b1e-9a4d-4e8f-b6a1-0c5d2e9f8a71' },
  { attack: 'angle brackets inside, not around', value: 'a<b>c' },
  { attack: 'dots inside, not alone', value: 'x...y' },
  { attack: 'a dollar sign without braces', value: 'pa$w0rd' },
];

/** Where a client secret or Redis password is configured, and what the refusal asks for. */
interface Place {
  readonly path: string;
  readonly asks: RegExp;
  /** The config document holding `value` there; `files` are the secret files it reads. */
  readonly document: (value: string, files: Map<string, string>) => Record<string, unknown>;
}

const goodSessionKey = randomBytes(48).toString('base64');
const issuer = 'https://idp.example.com';
/** A value inline in the config as written: `$${` stands for a literal `${`. */
const inline = (value: string) => value.replaceAll('${', () => '$${');
const clientAsks =
  /^is a placeholder, not the client secret \(.+\): put the client secret the OpenID Provider issued for this client here$/;
const redisAsks =
  /^is a placeholder, not the Redis password \(.+\): put the password Redis is configured with here/;

function appWith(oidc: Record<string, unknown>, more: Record<string, unknown> = {}) {
  return {
    name: 'grafana',
    oidc: { issuer, clientId: 'grafana', ...oidc },
    session: { secrets: [goodSessionKey] },
    ...more,
  };
}

function withRedis(redis: Record<string, unknown>): Record<string, unknown> {
  return {
    store: { type: 'redis', redis: { url: 'redis://127.0.0.1:6379/0', ...redis } },
    apps: [appWith({ clientSecret: 'from-the-idp' })],
  };
}

const places: readonly Place[] = [
  {
    path: 'apps[0].oidc.clientSecret',
    asks: clientAsks,
    document: (value) => ({ apps: [appWith({ clientSecret: inline(value) })] }),
  },
  {
    path: 'apps[0].oidc.clientSecret',
    asks: clientAsks,
    document: (value, files) => {
      files.set('/secrets/grafana-client-secret', `${value}\n`);
      return { apps: [appWith({ clientSecretFile: '/secrets/grafana-client-secret' })] };
    },
  },
  {
    path: 'defaults.oidc.clientSecret',
    asks: clientAsks,
    document: (value) => ({
      defaults: { oidc: { clientSecret: inline(value) } },
      apps: [
        { ...appWith({}), match: { hosts: ['a.example.com'] } },
        { ...appWith({}), name: 'wiki', match: { hosts: ['b.example.com'] } },
      ],
    }),
  },
  {
    path: 'apps[0].bearer.introspection.clientSecret',
    asks: clientAsks,
    document: (value) => ({
      apps: [
        appWith(
          { clientSecret: 'from-the-idp' },
          {
            bearer: {
              introspection: { enabled: true, clientId: 'rs', clientSecret: inline(value) },
            },
          },
        ),
      ],
    }),
  },
  {
    path: 'store.redis.password',
    asks: redisAsks,
    document: (value) => withRedis({ password: inline(value) }),
  },
  {
    path: 'store.redis.password',
    asks: redisAsks,
    document: (value, files) => {
      files.set('/secrets/redis-password', `${value}\n`);
      return withRedis({ passwordFile: '/secrets/redis-password' });
    },
  },
  {
    path: 'store.redis.url',
    asks: /^the password in it is a placeholder, not the Redis password \(.+\): put the password Redis is configured with/,
    document: (value) =>
      withRedis({ url: `redis://:${encodeURIComponent(value)}@127.0.0.1:6379/0` }),
  },
];

function problemsAt(place: Place, value: string): string[] {
  const files = new Map<string, string>();
  const document = place.document(value, files);
  const result = loadConfig(
    { text: JSON.stringify(document), format: 'json' },
    {},
    {
      readFile: (path) => {
        const text = files.get(path);
        if (text === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
        return text;
      },
    },
  );
  return result.ok ? [] : result.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('client secrets and Redis passwords left as template values are refused', () => {
  for (const row of templateRows) {
    it(`${row.attack}: refused at every place a client secret or Redis password is configured`, () => {
      for (const place of places) {
        const problems = problemsAt(place, row.value);
        const where = `${place.path} (${problems.join(' | ')})`;
        assert.equal(problems.length, 1, where);
        const problem = problems[0]!;
        assert.ok(problem.startsWith(`${place.path}: `), where);
        assert.match(problem.slice(place.path.length + 2), place.asks, where);
        // The word from the list is named; the value itself never is.
        const unquoted = problem.replace(/\(it contains "[a-z_-]+"\)/, '');
        assert.ok(!unquoted.includes(row.value), `${where}: the message never quotes the value`);
      }
    });
  }

  for (const row of honestRows) {
    it(`${row.attack}: accepted at every place (no entropy rule for issued secrets)`, () => {
      for (const place of places) {
        assert.deepEqual(problemsAt(place, row.value), [], `${place.path}: ${row.value}`);
      }
    });
  }
});

describe('the commands refuse the shipped client secret and Redis password, with their paths', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eoa-placeholders-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const clientSecretFile = join(dir, 'grafana-client-secret');
  writeFileSync(clientSecretFile, `${shippedIstioValue('grafana-client-secret')}\n`);
  const passwordFile = join(dir, 'redis-password');
  writeFileSync(passwordFile, `${shippedIstioValue('redis-password')}\n`);
  const configFile = join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    [
      'listen: { grpc: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0 }',
      'log: { level: silent }',
      `store: { type: redis, redis: { url: "redis://127.0.0.1:1/0", passwordFile: ${passwordFile} } }`,
      'apps:',
      '  - name: grafana',
      `    oidc: { issuer: http://127.0.0.1:1, clientId: grafana, clientSecretFile: ${clientSecretFile} }`,
      `    session: { secrets: ["${goodSessionKey}"] }`,
      '',
    ].join('\n'),
  );

  for (const command of ['check-config', 'serve']) {
    it(`envoy-oidc-authz ${command}: exits 3 with one line per placeholder, values never printed`, () => {
      const result = spawnSync(process.execPath, [cliPath, command, '--config', configFile], {
        encoding: 'utf8',
        timeout: 10_000,
      });
      assert.equal(result.status, 3, result.stdout + result.stderr);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 2, result.stderr);
      assert.match(lines[0]!, /^store\.redis\.password: is a placeholder, not the Redis password/);
      assert.match(
        lines[1]!,
        /^apps\[0\]\.oidc\.clientSecret: is a placeholder, not the client secret/,
      );
      for (const key of ['grafana-client-secret', 'redis-password']) {
        assert.ok(!result.stderr.includes(shippedIstioValue(key)), `${key} is never printed`);
      }
    });
  }
});

describe('a reload that brings a placeholder client secret is rejected', () => {
  let provider: TestProvider;
  before(async () => {
    provider = await startTestProvider({ clients: [] });
  });
  after(async () => {
    await provider.close();
  });

  it(
    'SIGHUP: rejected with the path, the old config keeps serving, the value never logged',
    { timeout: 15_000 },
    async () => {
      const app = (clientSecret: string) => ({
        name: 'grafana',
        oidc: { issuer: provider.issuer, clientId: 'grafana', clientSecret },
        session: { secrets: [goodSessionKey] },
      });
      const proc = await spawnServer({ log: { level: 'info' }, apps: [app('from-the-idp')] });
      try {
        const placeholder = shippedIstioValue('grafana-client-secret');
        proc.writeConfig({ log: { level: 'info' }, apps: [app(placeholder)] });
        const rejected = new Promise<void>((resolve) => {
          const onData = () => {
            if (/new configuration rejected/.test(proc.output())) {
              proc.child.stdout!.off('data', onData);
              proc.child.stderr!.off('data', onData);
              resolve();
            }
          };
          proc.child.stdout!.on('data', onData);
          proc.child.stderr!.on('data', onData);
        });
        proc.child.kill('SIGHUP');
        await rejected;
        const line = proc
          .output()
          .split('\n')
          .find((l) => l.includes('new configuration rejected'))!;
        assert.match(
          line,
          /apps\[0\]\.oidc\.clientSecret: is a placeholder, not the client secret/,
        );
        assert.ok(!proc.output().includes(placeholder), 'the value is never logged');
        assert.equal(
          (await fetch(`${proc.adminBase}/readyz`)).status,
          200,
          'the old config serves',
        );
      } finally {
        proc.child.kill('SIGTERM');
        await once(proc.child, 'exit');
      }
    },
  );
});
