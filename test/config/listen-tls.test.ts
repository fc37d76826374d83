/** `listen.tls` at load: files read, unusable material reported with no key text, pairs enforced. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig, type LoadResult } from '../../src/config/load.ts';
import { makeCa, makeLeaf, type CertFiles } from '../support/test-certs.ts';
import { testApp } from '../support/test-server.ts';

function load(tls: Record<string, string>): LoadResult {
  return loadConfig({ document: { listen: { tls }, apps: [testApp('web')] } }, {});
}

function problemsOf(result: LoadResult): string[] {
  return result.ok ? [] : result.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('listen.tls', () => {
  let dir: string;
  let server: CertFiles;
  let ca: CertFiles;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'eoa-tls-config-'));
    ca = makeCa(dir, 'ca');
    server = makeLeaf(dir, 'server', ca, 'server');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads certFile, keyFile and clientCaFile, and lists them to watch', () => {
    const result = load({ certFile: server.cert, keyFile: server.key, clientCaFile: ca.cert });
    assert.ok(result.ok, problemsOf(result).join('\n'));
    assert.match(result.config.listen.tls?.cert ?? '', /BEGIN CERTIFICATE/);
    assert.deepEqual([...(result.files ?? [])].sort(), [ca.cert, server.cert, server.key].sort());
  });

  it('refuses a certificate and key that do not go together, without quoting either', () => {
    const other = makeLeaf(dir, 'other', ca, 'server');
    const result = load({ certFile: server.cert, keyFile: other.key });
    const problems = problemsOf(result);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /^listen\.tls: cert, key and clientCa do not make a TLS context/);
    assert.doesNotMatch(problems[0]!, /BEGIN|PRIVATE/);
  });

  it('refuses text that is not PEM, a missing key, and an unreadable file by its path', () => {
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate\n');
    assert.match(
      problemsOf(load({ certFile: garbage, keyFile: server.key })).join('\n'),
      /listen\.tls: cert, key and clientCa do not make a TLS context/,
    );
    assert.match(problemsOf(load({ certFile: server.cert })).join('\n'), /listen\.tls\.key/);
    const missing = join(dir, 'missing.pem');
    assert.match(
      problemsOf(load({ certFile: missing, keyFile: server.key })).join('\n'),
      new RegExp(`listen\\.tls\\.certFile: cannot read ${missing}: ENOENT`),
    );
  });
});
