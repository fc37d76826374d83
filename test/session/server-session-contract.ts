/** The behaviour every backend must show for server sessions; run against each backend. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatTicket,
  parseTicket,
  ServerSessionStore,
} from '../../src/session/server-session-store.ts';
import type { Session } from '../../src/session/session.ts';
import { createAppKeyspaces, type AppKeyspaces } from '../../src/store/keyspaces.ts';
import type { StoreBackend } from '../../src/store/store-backend.ts';
import type { BackendUnderTest } from '../store/store-contract.ts';

const TTL = 60_000;

function sessionOf(sub: string, sid?: string): Session {
  return {
    v: 1,
    id: `id-${sub}-${sid ?? 'none'}`,
    sub,
    ...(sid === undefined ? {} : { sid }),
    claims: { sub, email: `${sub}@example.com`, groups: ['g'] },
    tokens: {
      accessToken: `access-token-of-${sub}`,
      refreshToken: `refresh-token-of-${sub}`,
      idToken: `id-token-of-${sub}`,
      expiresAt: 1_700_000_000_000,
    },
    createdAt: 1_700_000_000_000,
    lastSeenAt: 1_700_000_000_000,
  };
}

/** Registers the server-session contract for one backend; `makeBackend` as for the store contract. */
export function runServerSessionContract(
  name: string,
  makeBackend: () => Promise<BackendUnderTest>,
): void {
  async function withStore(
    body: (
      store: ServerSessionStore,
      backend: StoreBackend,
      keyspaces: AppKeyspaces,
    ) => Promise<void>,
  ): Promise<void> {
    const subject = await makeBackend();
    try {
      const keyspaces = createAppKeyspaces(subject.backend, {
        app: 'contract',
        sessionMaxAge: 86_400_000,
        loginTimeout: 600_000,
        refreshLockTtl: 10_000,
        refreshResultTtl: 60_000,
      });
      await body(new ServerSessionStore(keyspaces, 'test-binding'), subject.backend, keyspaces);
    } finally {
      await subject.close();
    }
  }

  describe(`server session contract: ${name}`, () => {
    it('create then load returns the same session; the ticket is <id 128 bit>.<key 256 bit>', () =>
      withStore(async (store) => {
        const session = sessionOf('alice', 'sid-1');
        const { ticket, handle } = await store.create(session, TTL);
        assert.match(ticket, /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
        assert.equal(formatTicket(handle), ticket);
        const loaded = await store.load(ticket);
        assert.deepEqual(loaded?.session, session);
        assert.equal(loaded?.handle.id, handle.id);
      }));

    it('the stored record holds no token or claim in clear', () =>
      withStore(async (store, backend, keyspaces) => {
        const session = sessionOf('alice', 'sid-1');
        const { handle } = await store.create(session, TTL);
        const raw = await backend.get(keyspaces.serverSessions.keyFor(handle.id));
        assert.ok(raw !== undefined && raw.length > 0);
        for (const secret of [
          'access-token-of',
          'refresh-token-of',
          'id-token-of',
          'example.com',
        ]) {
          assert.ok(!raw.includes(secret), `${secret} leaked`);
        }
      }));

    it('a wrong key, a tampered record or a malformed ticket loads nothing', () =>
      withStore(async (store, backend, keyspaces) => {
        const { ticket, handle } = await store.create(sessionOf('alice'), TTL);
        const [id] = ticket.split('.');
        const otherKey = Buffer.alloc(32, 7).toString('base64url');
        assert.equal(await store.load(`${id}.${otherKey}`), undefined);
        for (const bad of [
          '',
          'x',
          `${id}`,
          `${id}.`,
          `${ticket}x`,
          `${ticket}.x`,
          ticket.toUpperCase(),
        ]) {
          assert.equal(await store.load(bad), undefined, bad);
        }
        const key = keyspaces.serverSessions.keyFor(handle.id);
        const raw = (await backend.get(key))!;
        const flipped = raw.slice(0, -5) + (raw.at(-5) === 'A' ? 'B' : 'A') + raw.slice(-4);
        await backend.set(key, flipped, TTL);
        assert.equal(await store.load(ticket), undefined);
      }));

    it('a record moved under another id does not open', () =>
      withStore(async (store, backend, keyspaces) => {
        const a = await store.create(sessionOf('alice'), TTL);
        const b = await store.create(sessionOf('bob'), TTL);
        const rawA = (await backend.get(keyspaces.serverSessions.keyFor(a.handle.id)))!;
        await backend.set(keyspaces.serverSessions.keyFor(b.handle.id), rawA, TTL);
        const [, keyA] = a.ticket.split('.');
        assert.equal(await store.load(`${b.handle.id}.${keyA}`), undefined);
      }));

    it('update replaces the session under the same ticket', () =>
      withStore(async (store) => {
        const session = sessionOf('alice');
        const { ticket, handle } = await store.create(session, TTL);
        const refreshed: Session = {
          ...session,
          tokens: { ...session.tokens, accessToken: 'new-access', expiresAt: 1_800_000_000_000 },
        };
        await store.update(handle, refreshed, TTL);
        assert.deepEqual((await store.load(ticket))?.session, refreshed);
        assert.ok(parseTicket(ticket) !== undefined);
      }));

    it('delete removes the session and its index entries', () =>
      withStore(async (store, _backend, keyspaces) => {
        const session = sessionOf('alice', 'sid-1');
        const { ticket, handle } = await store.create(session, TTL);
        await store.delete(handle, session);
        assert.equal(await store.load(ticket), undefined);
        assert.deepEqual(await keyspaces.sessionsBySub.members('alice'), []);
        assert.deepEqual(await keyspaces.sessionsBySid.members('sid-1'), []);
      }));

    it('endBySid ends every session of that IdP session and no other', () =>
      withStore(async (store) => {
        const one = await store.create(sessionOf('alice', 'sid-1'), TTL);
        const two = await store.create(sessionOf('alice', 'sid-1'), TTL);
        const other = await store.create(sessionOf('alice', 'sid-2'), TTL);
        const bob = await store.create(sessionOf('bob', 'sid-3'), TTL);
        assert.equal(await store.endBySid('sid-1'), 2);
        assert.equal(await store.load(one.ticket), undefined);
        assert.equal(await store.load(two.ticket), undefined);
        assert.ok((await store.load(other.ticket)) !== undefined);
        assert.ok((await store.load(bob.ticket)) !== undefined);
        assert.equal(await store.endBySid('sid-1'), 0);
      }));

    it('endBySub ends every session of that subject and no other', () =>
      withStore(async (store) => {
        const a1 = await store.create(sessionOf('alice', 'sid-1'), TTL);
        const a2 = await store.create(sessionOf('alice'), TTL);
        const bob = await store.create(sessionOf('bob', 'sid-1'), TTL);
        assert.equal(await store.endBySub('alice'), 2);
        assert.equal(await store.load(a1.ticket), undefined);
        assert.equal(await store.load(a2.ticket), undefined);
        assert.ok((await store.load(bob.ticket)) !== undefined);
      }));

    it('a session disappears after its TTL', () =>
      withStore(async (store) => {
        const { ticket } = await store.create(sessionOf('alice'), 150);
        assert.ok((await store.load(ticket)) !== undefined);
        await new Promise((resolve) => setTimeout(resolve, 400));
        assert.equal(await store.load(ticket), undefined);
      }));

    it('concurrent sessions of one subject are all indexed', () =>
      withStore(async (store) => {
        const created = await Promise.all(
          Array.from({ length: 50 }, () => store.create(sessionOf('carol', 'sid-c'), TTL)),
        );
        assert.equal(new Set(created.map((c) => c.handle.id)).size, 50);
        assert.equal(await store.endBySub('carol'), 50);
      }));
  });
}
