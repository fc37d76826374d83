/**
 * Attack class: a session key anyone can know or guess. Whoever knows the key seals a session
 * cookie for any user with any groups, so the key must be refused before a server runs with it:
 * at `check-config`, at `serve` and on reload. Each row is a key an attacker would try first and
 * the safe outcome: one problem naming the config path and the command that generates a key,
 * never the key itself.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { parseAllDocuments } from 'yaml';

import { checkConfigFile } from '../../src/config/check.ts';
import { loadConfig } from '../../src/config/load.ts';
import { GENERATE_SECRET_COMMAND, sessionSecretProblem } from '../../src/config/secret-strength.ts';
import { repoPath } from '../deploy/repo-path.ts';
import { cliPath } from '../support/server-process.ts';

/** The session key the Istio Secret shipped before it held a refused placeholder. */
const formerIstioPlaceholder = 'REPLACE-with-a-random-session-key-of-48-bytes-or-more';

function shippedIstioKey(): string {
  const documents = parseAllDocuments(readFileSync(repoPath('istio/secret.yaml'), 'utf8'));
  const secret = documents[0]!.toJS() as { stringData: Record<string, string> };
  return secret.stringData['session-keys']!.trim();
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
      for (let i = 0; i < 2_000; i++) {
        const key = generate();
        // The placeholder words are 6+ letters: a random key holds one less than once in 10^7.
        const problem = sessionSecretProblem(key);
        assert.equal(
          problem === undefined || /placeholder/.test(problem),
          true,
          `${shape}: ${key}`,
        );
      }
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
    it(`envoy-oidc-authz ${command}: exits 1 with one line naming the path and the command`, () => {
      const result = spawnSync(process.execPath, [cliPath, command, '--config', configFile], {
        encoding: 'utf8',
        timeout: 10_000,
      });
      assert.equal(result.status, 1, result.stdout + result.stderr);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0]!, /^apps\[0\]\.session\.secrets\[0\]: is a placeholder/);
      assert.ok(lines[0]!.includes(GENERATE_SECRET_COMMAND), lines[0]);
      assert.ok(!result.stderr.includes(formerIstioPlaceholder), 'the key is never printed');
    });
  }
});
