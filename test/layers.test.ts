/** The import graph of `src/`: every arrow points down the layers, no folders in a cycle, no devDependency. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import ts from 'typescript';

/** The repository root: two levels above this compiled file (`dist/test/`). */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(root, 'src');

/** Where a file of `src/` sits: its top folder, or its own name for a file at the root. */
function entryOf(file: string): string {
  return relative(src, file).split(sep)[0]!;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((item) => {
    const path = join(dir, item.name);
    if (item.isDirectory()) return sourceFiles(path);
    return item.name.endsWith('.ts') ? [path] : [];
  });
}

interface Arrow {
  readonly from: string;
  readonly file: string;
  readonly specifier: string;
  /** The entry imported, for a relative specifier; else the package. */
  readonly to: string;
  readonly kind: 'entry' | 'package';
}

/** Every import, export-from and dynamic import of every file in `src/`. */
function arrows(): Arrow[] {
  return sourceFiles(src).flatMap((file) => {
    const text = readFileSync(file, 'utf8');
    const { importedFiles } = ts.preProcessFile(text, true, true);
    return importedFiles.map(({ fileName: specifier }): Arrow => {
      const from = entryOf(file);
      const at = relative(root, file).split(sep).join(posix.sep);
      if (specifier.startsWith('.')) {
        const to = entryOf(join(dirname(file), specifier));
        return { from, file: at, specifier, to, kind: 'entry' };
      }
      const parts = specifier.split('/');
      const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
      return { from, file: at, specifier, to: name, kind: 'package' };
    });
  });
}

/** The layer table, lowest first, as the lint rules use it. */
async function layers(): Promise<readonly (readonly string[])[]> {
  const config = (await import(pathToFileURL(join(root, 'eslint.config.js')).href)) as {
    layers: readonly (readonly string[])[];
  };
  return config.layers;
}

describe('layers of src/', () => {
  it('places every folder and root file of src/ in exactly one layer', async () => {
    const table = await layers();
    const placed = table.flat();
    assert.equal(new Set(placed).size, placed.length, 'an entry in two layers');
    const entries = [...new Set(sourceFiles(src).map(entryOf))].sort();
    assert.deepEqual(entries, [...placed].sort());
  });

  it('has every import point to its own layer or one below', async () => {
    const table = await layers();
    const layerOf = new Map(table.flatMap((layer, index) => layer.map((e) => [e, index] as const)));
    const upward = arrows()
      .filter((arrow) => arrow.kind === 'entry' && arrow.from !== arrow.to)
      .filter((arrow) => layerOf.get(arrow.from)! < layerOf.get(arrow.to)!)
      .map((arrow) => `${arrow.file} imports ${arrow.specifier}`);
    assert.deepEqual(upward, []);
  });

  it('has no cycle between folders or root files', () => {
    const edges = new Map<string, Set<string>>();
    for (const arrow of arrows()) {
      if (arrow.kind !== 'entry' || arrow.from === arrow.to) continue;
      const targets = edges.get(arrow.from) ?? new Set<string>();
      targets.add(arrow.to);
      edges.set(arrow.from, targets);
    }
    const cycles: string[] = [];
    const done = new Set<string>();
    const visit = (node: string, path: readonly string[]): void => {
      const at = path.indexOf(node);
      if (at >= 0) {
        cycles.push([...path.slice(at), node].join(' -> '));
        return;
      }
      if (done.has(node)) return;
      for (const next of edges.get(node) ?? []) visit(next, [...path, node]);
      done.add(node);
    };
    for (const node of edges.keys()) visit(node, []);
    assert.deepEqual(cycles, []);
  });

  it('imports only production dependencies and Node built-ins', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    const allowed = new Set([
      ...Object.keys(manifest.dependencies),
      ...builtinModules,
      ...builtinModules.map((name) => `node:${name}`),
    ]);
    const foreign = arrows()
      .filter((arrow) => arrow.kind === 'package' && !allowed.has(arrow.to))
      .map((arrow) => `${arrow.file} imports ${arrow.specifier}`);
    assert.deepEqual(foreign, []);
  });
});
