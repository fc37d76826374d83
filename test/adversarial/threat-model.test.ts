/**
 * docs/security.md is the threat model: each attack class names the test that guards it. This
 * keeps the two together — every table in test/adversarial/ is in the document, and every test
 * file the document names exists.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { repoPath } from '../deploy/repo-path.ts';

const doc = readFileSync(repoPath('docs/security.md'), 'utf8');

describe('docs/security.md', () => {
  it('names every adversarial table', () => {
    const tables = readdirSync(repoPath('test/adversarial')).filter(
      (f) => f.endsWith('.test.ts') && f !== 'threat-model.test.ts',
    );
    assert.ok(tables.length >= 10, tables.join(', '));
    const missing = tables.filter((f) => !doc.includes(f));
    assert.deepEqual(missing, [], 'tables not in the threat model');
  });

  it('names only test files that exist', () => {
    const named = [...doc.matchAll(/`(test\/[\w/.-]+\.test\.ts)`/g)].map((m) => m[1] as string);
    assert.ok(named.length > 0);
    const gone = named.filter((path) => !existsSync(repoPath(path)));
    assert.deepEqual(gone, [], 'test files named but absent');
  });

  it('links each class in its table to a section that exists', () => {
    const headings = new Set(
      [...doc.matchAll(/^## (.+)$/gm)].map((m) =>
        (m[1] as string)
          .toLowerCase()
          .replace(/[^\w\s-]/g, '')
          .replace(/\s/g, '-'),
      ),
    );
    const links = [...doc.matchAll(/\]\(#([\w-]+)\)/g)].map((m) => m[1] as string);
    assert.ok(links.length >= 10);
    assert.deepEqual(
      links.filter((l) => !headings.has(l)),
      [],
      'links to no heading',
    );
  });
});
