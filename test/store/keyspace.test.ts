/** Typed keyspaces: keys, versioned codecs and TTLs fixed at construction. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonCodec, Keyspace, SetKeyspace, stringCodec } from '../../src/store/keyspace.ts';
import { sha256Base64url } from '../../src/digest.ts';
import { createAppKeyspaces } from '../../src/store/keyspaces.ts';
import { createMemoryBackend } from '../../src/store/memory-backend.ts';

function manualClock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
  };
}

const countCodec = jsonCodec<{ n: number }>(2, (data) =>
  typeof data === 'object' && data !== null && typeof (data as { n?: unknown }).n === 'number'
    ? { n: (data as { n: number }).n }
    : undefined,
);

describe('keyspace', () => {
  it('builds keys as <name>:<key(id)> and round-trips typed records', async () => {
    const backend = createMemoryBackend({ sweepIntervalMs: 0 });
    const ks = new Keyspace(backend, {
      name: 'count',
      key: (id: { a: string; b: number }) => `${id.a}:${id.b}`,
      codec: countCodec,
      ttl: 60_000,
    });
    assert.equal(ks.keyFor({ a: 'x', b: 1 }), 'count:x:1');
    await ks.set({ a: 'x', b: 1 }, { n: 42 });
    assert.deepEqual(await ks.get({ a: 'x', b: 1 }), { n: 42 });
    assert.equal(await backend.get('count:x:1'), '2:{"n":42}');
    assert.deepEqual(await ks.take({ a: 'x', b: 1 }), { n: 42 });
    assert.equal(await ks.get({ a: 'x', b: 1 }), undefined);
    await backend.close();
  });

  it('reads a record of another codec version, or a malformed one, as absent', async () => {
    const backend = createMemoryBackend({ sweepIntervalMs: 0 });
    const ks = new Keyspace(backend, {
      name: 'count',
      key: (id: string) => id,
      codec: countCodec,
      ttl: 60_000,
    });
    await backend.set('count:old', '1:{"n":1}', 60_000);
    await backend.set('count:junk', '2:{not json', 60_000);
    await backend.set('count:shape', '2:{"n":"1"}', 60_000);
    assert.equal(await ks.get('old'), undefined);
    assert.equal(await ks.get('junk'), undefined);
    assert.equal(await ks.get('shape'), undefined);
    await backend.close();
  });

  it('applies the default TTL, a per-record TTL function, or a per-call override', async () => {
    const clock = manualClock();
    const backend = createMemoryBackend({ now: clock.now, sweepIntervalMs: 0 });
    const fixed = new Keyspace(backend, {
      name: 'fixed',
      key: (id: string) => id,
      codec: stringCodec(1),
      ttl: 1_000,
    });
    const byRecord = new Keyspace(backend, {
      name: 'byrecord',
      key: (id: string) => id,
      codec: countCodec,
      ttl: (record: { n: number }) => record.n,
    });
    await fixed.set('a', 'v');
    await fixed.set('b', 'v', 5_000);
    await byRecord.set('c', { n: 3_000 });
    clock.advance(1_000);
    assert.equal(await fixed.get('a'), undefined);
    assert.equal(await fixed.get('b'), 'v');
    assert.deepEqual(await byRecord.get('c'), { n: 3_000 });
    clock.advance(2_000);
    assert.equal(await byRecord.get('c'), undefined);
    assert.equal(await fixed.get('b'), 'v');
    await backend.close();
  });

  it('owner-token lock: acquire once, renew and release only as owner', async () => {
    const backend = createMemoryBackend({ sweepIntervalMs: 0 });
    const locks = new Keyspace(backend, {
      name: 'lock',
      key: (id: string) => id,
      codec: stringCodec(1),
      ttl: 10_000,
    });
    assert.equal(await locks.setIfAbsent('r', 'me'), true);
    assert.equal(await locks.setIfAbsent('r', 'you'), false);
    assert.equal(await locks.expireIfEquals('r', 'you'), false);
    assert.equal(await locks.expireIfEquals('r', 'me'), true);
    assert.equal(await locks.deleteIfEquals('r', 'you'), false);
    assert.equal(await locks.deleteIfEquals('r', 'me'), true);
    assert.equal(await locks.setIfAbsent('r', 'you'), true);
    await backend.close();
  });

  it('set keyspaces index members under their own keys', async () => {
    const backend = createMemoryBackend({ sweepIntervalMs: 0 });
    const idx = new SetKeyspace(backend, { name: 'idx', key: (id: string) => id, ttl: 60_000 });
    await idx.add('u1', 's1');
    await idx.add('u1', 's2');
    await idx.add('u2', 's3');
    assert.deepEqual([...(await idx.members('u1'))].sort(), ['s1', 's2']);
    assert.equal(await idx.remove('u1', 's1'), true);
    assert.deepEqual(await idx.members('u1'), ['s2']);
    assert.equal(await idx.delete('u2'), true);
    assert.deepEqual(await idx.members('u2'), []);
    assert.deepEqual(await backend.members('idx:u1'), ['s2']);
    await backend.close();
  });
});

describe('app keyspaces', () => {
  it('gives every record kind its own name, scoped by app, with parts escaped', () => {
    const backend = createMemoryBackend({ sweepIntervalMs: 0 });
    const ks = createAppKeyspaces(backend, {
      app: 'graf:ana',
      sessionMaxAge: 86_400_000,
      loginTimeout: 600_000,
      refreshLockTtl: 10_000,
      refreshResultTtl: 60_000,
    });
    assert.equal(ks.serverSessions.keyFor('abc'), 'session:graf%3Aana:abc');
    assert.equal(ks.logoutMarks.keyFor({ by: 'sub', value: 'a:b' }), 'logout:graf%3Aana:sub:a%3Ab');
    const names = new Set(Object.values(ks).map((k: { name: string }) => k.name));
    assert.equal(names.size, Object.keys(ks).length, 'keyspace names are distinct');
    void backend.close();
  });

  it('escapes every key part exactly as encodeURIComponent does', () => {
    const backend = createMemoryBackend({ sweepIntervalMs: 0 });
    const ks = createAppKeyspaces(backend, {
      app: 'web',
      sessionMaxAge: 86_400_000,
      loginTimeout: 600_000,
      refreshLockTtl: 10_000,
      refreshResultTtl: 60_000,
    });
    const parts = [
      '',
      "AZaz09-_.!~*'()",
      'a:b',
      'a b',
      'a%3Ab',
      'user@example.com',
      'zoë',
      '名前',
      'a\r\nb',
      'a/b?c#d&e=f+g',
      '😀',
      sha256Base64url('x'),
    ];
    for (const value of parts) {
      const expected = encodeURIComponent(value);
      assert.equal(ks.endedSessions.keyFor(value), `session-ended:web:${expected}`, value);
      assert.equal(ks.logoutMarks.keyFor({ by: 'sub', value }), `logout:web:sub:${expected}`);
    }
    // A lone surrogate cannot be escaped: refused as before, never used as it is.
    assert.throws(() => ks.endedSessions.keyFor('a\ud800'), URIError);
    void backend.close();
  });

  it('revoked token ids live until the token expiry', async () => {
    const clock = manualClock();
    const backend = createMemoryBackend({ now: clock.now, sweepIntervalMs: 0 });
    const ks = createAppKeyspaces(backend, {
      app: 'a',
      sessionMaxAge: 86_400_000,
      loginTimeout: 600_000,
      refreshLockTtl: 10_000,
      refreshResultTtl: 60_000,
      now: clock.now,
    });
    await ks.revokedTokens.set('jti-1', { exp: clock.now() + 5_000 });
    clock.advance(4_999);
    assert.deepEqual(await ks.revokedTokens.get('jti-1'), { exp: clock.now() + 1 });
    clock.advance(1);
    assert.equal(await ks.revokedTokens.get('jti-1'), undefined);
    await backend.close();
  });

  it('login replay marks: a state digest is claimed once', async () => {
    const backend = createMemoryBackend({ sweepIntervalMs: 0 });
    const ks = createAppKeyspaces(backend, {
      app: 'a',
      sessionMaxAge: 1e6,
      loginTimeout: 1e5,
      refreshLockTtl: 10_000,
      refreshResultTtl: 60_000,
    });
    const digest = sha256Base64url('state-value');
    assert.doesNotMatch(ks.loginReplayMarks.keyFor(digest), /state-value/);
    const claims = await Promise.all(
      Array.from({ length: 20 }, () => ks.loginReplayMarks.setIfAbsent(digest, { at: 1 })),
    );
    assert.equal(claims.filter(Boolean).length, 1);
    await backend.close();
  });
});
