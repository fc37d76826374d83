import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as prettier from 'prettier';
import { z } from 'zod';

import { regenerateCommand, renderConfigReference } from '../../src/config/reference.ts';
import { configSchema } from '../../src/config/schema.ts';
import { cliPath } from '../support/server-process.ts';

// docs/ stays in the source tree; from dist/test/config that is three levels up.
const referencePath = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'docs',
  'configuration.md',
);

interface Node {
  properties?: Record<string, Node>;
  items?: Node;
  type?: unknown;
}

function schemaPaths(node: Node, path: string, into: string[]): string[] {
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const childPath = path === '' ? key : `${path}.${key}`;
    into.push(childPath);
    schemaPaths(child, childPath, into);
    if (child.items?.properties) schemaPaths(child.items, `${childPath}[]`, into);
  }
  return into;
}

describe('docs/configuration.md', () => {
  it('is exactly what the schema renders (regenerate it when this fails)', async () => {
    const committed = readFileSync(referencePath, 'utf8');
    // Formatted as the committed file is, with the repository's own Prettier settings.
    const options = (await prettier.resolveConfig(referencePath)) ?? {};
    const rendered = await prettier.format(renderConfigReference(), {
      ...options,
      filepath: referencePath,
    });
    if (committed !== rendered) {
      assert.fail(
        `docs/configuration.md is stale: the config schema changed. Regenerate it with\n  ${regenerateCommand}`,
      );
    }
  });

  it('has a row for every key of the schema, with its path', () => {
    const rendered = renderConfigReference();
    const json = z.toJSONSchema(configSchema, { io: 'input' }) as Node;
    const paths = schemaPaths(json, '', []);
    assert.ok(paths.length > 100, `only ${paths.length} keys`);
    const missing = paths.filter(
      (path) => !path.includes('.') || !rendered.includes(`| \`${path}\` |`),
    );
    // Top-level keys are section headings, not rows.
    assert.deepEqual(
      missing.filter((path) => path.includes('.')),
      [],
    );
    for (const key of Object.keys(json.properties ?? {})) {
      assert.ok(rendered.includes(`## \`${key}\``), key);
    }
  });

  it('shows input defaults, types and required keys', () => {
    const rendered = renderConfigReference();
    assert.ok(rendered.includes('| `apps[].session.maxAge` | string | `24h` |'));
    assert.ok(rendered.includes('| `apps[].oidc.issuer` | string | required |'));
    assert.ok(
      rendered.includes('| `store.type` | `memory` \\| `redis` | `memory` |'),
      'enums as alternatives, escaped for the table',
    );
  });

  it('is what `envoy-oidc-authz config-reference` prints', () => {
    const result = spawnSync(process.execPath, [cliPath, 'config-reference'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, renderConfigReference());
  });
});
