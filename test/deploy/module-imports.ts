/** What a module loads: every import and export specifier in a file, and where loading is dynamic. */
import { builtinModules } from 'node:module';
import { posix } from 'node:path';

import ts from 'typescript';

export interface ImportSite {
  /** The specifier, or `undefined` when it is computed at run time (`import(name)`, `require(x)`). */
  readonly specifier: string | undefined;
  /** 1-based line, for messages. */
  readonly line: number;
}

function literalText(node: ts.Node | undefined): string | undefined {
  return node !== undefined &&
    (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node))
    ? node.text
    : undefined;
}

/**
 * Every module `text` loads: static imports and re-exports (type-only ones too: a TypeScript
 * source must not even name a package it may not depend on), `import()` types and calls,
 * `require()` and `createRequire()` calls. A call whose argument is not a literal is reported
 * with no specifier: it is how a module can load a package no compiler or bundler sees.
 */
export function importSites(fileName: string, text: string): ImportSite[] {
  const kind = fileName.endsWith('.ts') ? ts.ScriptKind.TS : ts.ScriptKind.JS;
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, kind);
  const sites: ImportSite[] = [];
  const add = (node: ts.Node, specifier: string | undefined): void => {
    sites.push({
      specifier,
      line: source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1,
    });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      if (node.moduleSpecifier !== undefined) add(node, literalText(node.moduleSpecifier));
    } else if (ts.isImportEqualsDeclaration(node)) {
      if (ts.isExternalModuleReference(node.moduleReference))
        add(node, literalText(node.moduleReference.expression));
    } else if (ts.isImportTypeNode(node)) {
      const argument = node.argument;
      add(node, ts.isLiteralTypeNode(argument) ? literalText(argument.literal) : undefined);
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const name = ts.isIdentifier(callee)
        ? callee.text
        : ts.isPropertyAccessExpression(callee)
          ? callee.name.text
          : undefined;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || name === 'require')
        add(node, literalText(node.arguments[0]));
      // A require function made at run time loads whatever it is later handed.
      else if (name === 'createRequire') add(node, undefined);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return sites;
}

/** `@scope/name/sub` → `@scope/name`, `name/sub` → `name`. */
export function packageNameOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

export function isRelative(specifier: string): boolean {
  return specifier.startsWith('./') || specifier.startsWith('../');
}

export function isBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || builtinModules.includes(packageNameOf(specifier));
}

export interface Manifest {
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly devDependencies?: Readonly<Record<string, string>>;
}

/**
 * What is wrong with the imports of the file at `path` (slash-separated), one message each:
 * a computed specifier, a package that is not a runtime dependency (naming devDependencies as
 * such), or a relative import that `isReachable` refuses.
 */
export function importProblems(
  path: string,
  text: string,
  manifest: Manifest,
  isReachable: (resolved: string) => boolean,
): string[] {
  const dependencies = new Set(Object.keys(manifest.dependencies ?? {}));
  const devDependencies = new Set(Object.keys(manifest.devDependencies ?? {}));
  const problems: string[] = [];
  for (const { specifier, line } of importSites(path, text)) {
    const at = `${path}:${line}`;
    if (specifier === undefined) {
      problems.push(`${at}: loads a module named at run time`);
    } else if (isRelative(specifier)) {
      const resolved = posix.normalize(posix.join(posix.dirname(path), specifier));
      if (!isReachable(resolved)) problems.push(`${at}: imports ${resolved}`);
    } else if (isBuiltin(specifier)) {
      continue;
    } else if (!dependencies.has(packageNameOf(specifier))) {
      const kind = devDependencies.has(packageNameOf(specifier))
        ? 'a devDependency'
        : 'a package not in dependencies';
      problems.push(`${at}: imports ${kind}: ${specifier}`);
    }
  }
  return problems;
}
