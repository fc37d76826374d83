/** The error catalogue: one class per code, raised only through its class, pinned to docs/errors.md. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import * as catalogue from '../src/errors.ts';
import {
  AuthzError,
  BudgetExceededError,
  ConfigError,
  IdpError,
  IdpUnavailableError,
  InternalError,
  SessionTooLargeError,
  StateMismatchError,
  StoreUnavailableError,
  TokenInvalidError,
  clientErrorCode,
  clientErrorCodes,
  errorCatalogue,
  type ErrorCode,
} from '../src/errors.ts';

/** The repository root: two levels above this compiled file (`dist/test/`). */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((item) => {
    const path = join(dir, item.name);
    if (item.isDirectory()) return sourceFiles(path);
    return item.name.endsWith('.ts') ? [path] : [];
  });
}

const codes = Object.keys(errorCatalogue) as ErrorCode[];

/** The rows of the table in docs/errors.md: `error` → status column. */
function documented(): Map<string, string> {
  const text = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');
  const rows = new Map<string, string>();
  let inTable = false;
  for (const line of text.split('\n')) {
    // The rows follow the header's `| --- |` line and end at the first line that is not a row.
    if (/^\|\s*-+\s*\|/.test(line)) {
      inTable = true;
      continue;
    }
    if (!line.startsWith('|')) inTable = false;
    if (!inTable) continue;
    const cells = line.split('|').map((cell) => cell.trim());
    const code = /^`([a-z_]+)`$/.exec(cells[1] ?? '')?.[1];
    if (code === undefined) continue;
    assert.ok(!rows.has(code), `${code} documented twice`);
    rows.set(code, cells[2] ?? '');
  }
  return rows;
}

describe('error catalogue', () => {
  it('has exactly one class per code, each with a static code, all in src/errors.ts', () => {
    const classes = Object.values(catalogue).filter(
      (value): value is typeof AuthzError & { code: ErrorCode } =>
        typeof value === 'function' && value.prototype instanceof AuthzError,
    );
    assert.deepEqual(classes.map((c) => c.code).sort(), [...codes].sort());
  });

  it('gives each error the status and public message of its code, whatever the class is told', () => {
    const samples: readonly AuthzError[] = [
      new ConfigError([{ path: 'apps', message: 'x' }]),
      new IdpUnavailableError('token', 'network', { detail: 'ECONNREFUSED' }),
      new IdpError('token', 'invalid_grant', { description: 'expired' }),
      new TokenInvalidError('id_token', 'aud'),
      new StateMismatchError(),
      new StoreUnavailableError('failure', { retryAfterMs: 2_500 }),
      new SessionTooLargeError(9_000, 8_000),
      new InternalError('a library rejected its arguments'),
      new BudgetExceededError(100),
    ];
    assert.deepEqual(samples.map((error) => error.code).sort(), [...codes].sort());
    for (const error of samples) {
      assert.equal(error.status, errorCatalogue[error.code].status, error.code);
      assert.equal(error.publicMessage, errorCatalogue[error.code].message, error.code);
      assert.ok(error.retryAfterSeconds >= 1);
    }
  });

  it('names each error after its class and gives it its class code, as logs read them', () => {
    const samples = [
      [ConfigError, new ConfigError([])],
      [IdpUnavailableError, new IdpUnavailableError('jwks', 'timeout')],
      [StateMismatchError, new StateMismatchError()],
      [InternalError, new InternalError('x')],
    ] as const;
    for (const [errorClass, error] of samples) {
      assert.equal(error.name, errorClass.name);
      assert.equal(error.code, errorClass.code);
      assert.ok(error instanceof errorClass && error instanceof AuthzError);
    }
  });

  it('is raised only through its classes: no hand-built AuthzError, no subclass elsewhere', () => {
    const found: string[] = [];
    for (const folder of ['src', 'dev', 'bench', 'test', 'faults']) {
      for (const file of sourceFiles(join(root, folder))) {
        const at = relative(root, file).split(sep).join('/');
        if (at === 'test/errors.test.ts') continue;
        const text = readFileSync(file, 'utf8');
        if (/new AuthzError\s*\(/.test(text)) {
          found.push(`${at}: new AuthzError`);
        }
        if (/extends AuthzError\b/.test(text) && at !== 'src/errors.ts') {
          found.push(`${at}: extends AuthzError`);
        }
      }
    }
    assert.deepEqual(found, []);
  });

  it('documents every code a client can read, and only those, in docs/errors.md', () => {
    const rows = documented();
    assert.deepEqual([...rows.keys()].sort(), [...clientErrorCodes].sort());
    for (const code of codes) {
      assert.equal(rows.get(clientErrorCode(code)), String(errorCatalogue[code].status), code);
    }
  });
});
