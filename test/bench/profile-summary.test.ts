/**
 * The split of a server's CPU profile into the decision and what every Check server pays
 * (HTTP/2, protobuf, the collector): what places each function, and the shares of busy time.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  formatSummary,
  partOf,
  summariesOf,
  summarize,
  type CpuProfile,
} from '../../bench/profile-summary.ts';

const at = (url: string, functionName = 'f') => ({ functionName, url });

describe('profile summary', () => {
  it('places each function by its file, built-ins by name', () => {
    const dist = 'file:///srv/app/dist/src';
    assert.equal(
      partOf(at(`${dist}/authz/parse-request.js`)),
      'decision: request parsing and policy',
    );
    assert.equal(partOf(at(`${dist}/policy/host-name.js`)), 'decision: request parsing and policy');
    assert.equal(
      partOf(at(`${dist}/session/cookie-sessions.js`)),
      'decision: sessions, caches and digests',
    );
    assert.equal(partOf(at(`${dist}/expiring-lru.js`)), 'decision: sessions, caches and digests');
    assert.equal(
      partOf(at(`${dist}/authz/session-step.js`)),
      'decision: steps and identity headers',
    );
    assert.equal(partOf(at(`${dist}/server/check-response.js`)), 'transport and response encoding');
    assert.equal(partOf(at(`${dist}/observability/metrics.js`)), 'decision: metrics and logs');
    assert.equal(
      partOf(at('node:internal/crypto/hash', 'hash')),
      'decision: crypto (digests, ciphers, signatures)',
    );
    assert.equal(partOf(at('', 'CheckRequest$decode')), 'protobuf decoding of the request');
    assert.equal(
      partOf(at('file:///x/node_modules/protobufjs/src/reader.js')),
      'protobuf decoding of the request',
    );
    assert.equal(
      partOf(at('node:internal/http2/core', 'respond')),
      'HTTP/2, streams and events (Node)',
    );
    assert.equal(partOf(at('node:events', 'emit')), 'HTTP/2, streams and events (Node)');
    assert.equal(partOf(at('', 'RegExp: ^[a-z]+$')), 'decision: request parsing and policy');
    assert.equal(partOf(at('', '(garbage collector)')), 'garbage collector');
    assert.equal(partOf(at('', '(idle)')), 'idle');
    assert.equal(partOf(at('', '(program)')), 'other (V8, module loading, timers)');
  });

  it('shares busy time only, a built-in counting with its caller', async () => {
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: at('', '(root)'), children: [2, 3, 5] },
        { id: 2, callFrame: at('', '(idle)') },
        { id: 3, callFrame: at('node:internal/http2/core', 'respond'), children: [4] },
        { id: 4, callFrame: at('', 'writeBuffer') },
        { id: 5, callFrame: at('file:///a/dist/src/authz/pipeline.js', 'decide') },
      ],
      // 1 s idle, 300 ms in respond, 100 ms in writeBuffer under it, 600 ms deciding.
      samples: [2, 3, 4, 5, 5],
      timeDeltas: [1_000_000, 300_000, 100_000, 300_000, 300_000],
    };
    const summary = summarize(profile);
    assert.equal(summary.busyMs, 1_000);
    assert.equal(summary.shares['HTTP/2, streams and events (Node)'], 0.4);
    assert.equal(summary.shares['decision: steps and identity headers'], 0.6);
    const table = formatSummary('server', summary);
    assert.match(table, /^server: 1000 ms busy$/m);
    assert.match(table, /^ +60\.0% +the decision in all$/m);

    const dir = await mkdtemp(join(tmpdir(), 'eoa-profiles-'));
    try {
      await writeFile(join(dir, 'a.cpuprofile'), JSON.stringify(profile));
      await writeFile(join(dir, 'notes.txt'), 'not a profile');
      const summaries = summariesOf([dir]);
      assert.equal(summaries.length, 1);
      assert.match(summaries[0]!, /a\.cpuprofile: 1000 ms busy/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
