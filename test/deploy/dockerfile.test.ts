import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { contextFiles, isIgnored, parseDockerignore } from './docker-context.ts';
import { repoPath, repoRoot } from './repo-path.ts';

interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: { readonly op: string; readonly args: string }[];
}

/** Splits a Dockerfile into stages of instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const stages: {
    from: string;
    name: string | undefined;
    instructions: Stage['instructions'][number][];
  }[] = [];
  for (const line of lines) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [op = '', ...rest] = trimmed.split(/\s+/);
    const args = rest.join(' ');
    if (op.toUpperCase() === 'FROM') {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      assert.ok(match, `FROM ${args}`);
      stages.push({ from: match[1]!, name: match[2], instructions: [] });
    } else {
      assert.ok(stages.length > 0, `${op} before FROM`);
      stages.at(-1)!.instructions.push({ op: op.toUpperCase(), args });
    }
  }
  return stages;
}

const compilerPackages = /\b(gcc|g\+\+|clang|make|build-essential|python3|node-gyp|cmake)\b/;

describe('Dockerfile', () => {
  const stages = parseDockerfile(readFileSync(repoPath('Dockerfile'), 'utf8'));
  const final = stages.at(-1)!;
  const ops = (stage: Stage, op: string) =>
    stage.instructions.filter((i) => i.op === op).map((i) => i.args);

  it('builds in one stage and runs from another on a slim Node 20 base', () => {
    assert.ok(stages.length >= 2);
    for (const stage of stages)
      assert.match(stage.from, /^node:20-bookworm-slim(@sha256:[0-9a-f]{64})?$/);
    assert.ok(ops(stages[0]!, 'RUN').some((r) => /npm ci\b/.test(r) && !/--omit=dev/.test(r)));
    assert.ok(ops(stages[0]!, 'RUN').includes('npm run build'));
  });

  it('installs production dependencies only, with no compiler in the final stage', () => {
    const runs = ops(final, 'RUN');
    assert.ok(
      runs.some((r) => /npm ci --omit=dev/.test(r)),
      runs.join('\n'),
    );
    for (const run of runs) {
      assert.doesNotMatch(run, /apt-get|apk add/, 'no system packages in the final stage');
      assert.doesNotMatch(run, compilerPackages);
    }
    const copies = ops(final, 'COPY');
    assert.ok(copies.some((c) => c.includes('--from=build') && c.includes('dist/src')));
    assert.ok(!copies.some((c) => /\bsrc\b/.test(c) && !c.includes('dist/src')), 'no sources');
  });

  it('runs as the non-root node user with the CLI as entrypoint', () => {
    assert.deepEqual(ops(final, 'USER'), ['node']);
    const user = final.instructions.findIndex((i) => i.op === 'USER');
    const lastRun = final.instructions.findLastIndex((i) => i.op === 'RUN');
    assert.ok(user > lastRun, 'USER comes after the last RUN');
    assert.deepEqual(ops(final, 'EXPOSE'), ['9001 9002 9090']);
    assert.deepEqual(ops(final, 'ENTRYPOINT'), ['["node", "dist/src/cli.js"]']);
    assert.deepEqual(ops(final, 'CMD'), [
      '["serve", "--config", "/etc/envoy-oidc-authz/config.yaml"]',
    ]);
  });

  it('copies only what .dockerignore lets into the context, and the context stays small', () => {
    const rules = parseDockerignore(readFileSync(repoPath('.dockerignore'), 'utf8'));
    for (const stage of stages) {
      for (const copy of ops(stage, 'COPY').filter((c) => !c.startsWith('--from'))) {
        const sources = copy.split(/\s+/).slice(0, -1);
        for (const source of sources) {
          assert.equal(isIgnored(rules, source.replace(/\/$/, '')), false, `${source} is ignored`);
        }
      }
    }
    for (const path of [
      'node_modules/jose/package.json',
      'dist/src/cli.js',
      'test/deploy',
      '.git',
    ]) {
      assert.equal(isIgnored(rules, path), true, path);
    }
    const files = contextFiles(repoRoot, rules);
    const bytes = [...files.values()].reduce((sum, size) => sum + size, 0);
    assert.ok(
      files.has('src/cli.ts') && files.has('proto/envoy/service/auth/v3/external_auth.proto'),
    );
    assert.ok(![...files.keys()].some((f) => f.startsWith('test/') || f.startsWith('dist')));
    assert.ok(bytes < 2 * 1024 * 1024, `context is ${bytes} bytes`);
    process.stdout.write(`# docker build context: ${files.size} files, ${bytes} bytes\n`);
  });
});
