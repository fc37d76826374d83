/** Server-side sessions: the cookie holds `<id>.<key>`, the store holds the session sealed with that key. */
import { createSecretKey, randomBytes } from 'node:crypto';
import type { SetKeyspace } from '../store/keyspace.ts';
import type { AppKeyspaces } from '../store/keyspaces.ts';
import type { CallBound } from '../store/store-backend.ts';
import {
  encodeProtectedHeader,
  openCompactJson,
  sealCompact,
  splitCompact,
} from './compact-jwe.ts';
import { SecretKey } from './session-keys.ts';
import { parseSession, type Session } from './session.ts';

/**
 * Where a server session lives: its id (128 bits, base64url) and the key (256 bits) that seals
 * its record. The key exists only in the browser's cookie and, briefly, in this process.
 */
export interface ServerSessionHandle {
  readonly id: string;
  readonly key: SecretKey;
}

const TICKET = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/;

/** Reads a cookie value as a ticket; `undefined` for anything not exactly `<id>.<key>`. */
export function parseTicket(ticket: string): ServerSessionHandle | undefined {
  const match = TICKET.exec(ticket);
  if (match === null) return undefined;
  const [, id, key] = match as unknown as [string, string, string];
  const bytes = Buffer.from(key, 'base64url');
  if (bytes.length !== 32 || bytes.toString('base64url') !== key) return undefined;
  return { id, key: new SecretKey(id, createSecretKey(bytes)) };
}

/** A ticket's session as read from the store; the handle is needed to write it back. */
export interface LoadedServerSession {
  readonly handle: ServerSessionHandle;
  readonly session: Session;
}

/** The cookie value for a handle. */
export function formatTicket(handle: ServerSessionHandle): string {
  return `${handle.id}.${handle.key.keyObject().export().toString('base64url')}`;
}

/** The keyspaces a server session store writes. */
export type ServerSessionKeyspaces = Pick<
  AppKeyspaces,
  'serverSessions' | 'sessionsBySid' | 'sessionsBySub'
>;

/**
 * Sessions kept in the store. A dump of the store shows ids, `sub`/`sid` index entries and
 * ciphertext; no token. Each record's protected header (the AES-GCM AAD) names its id and the
 * binding label of the app and deployment that wrote it (`kid: <id>.<label>`), so a record
 * moved to another id, or read by another app or deployment, no longer opens.
 */
export class ServerSessionStore {
  readonly #keyspaces: ServerSessionKeyspaces;
  readonly #label: string;

  /** @param bindingLabel - the app's `bindingLabel` (session-keys); records carrying another are refused. */
  constructor(keyspaces: ServerSessionKeyspaces, bindingLabel: string) {
    this.#keyspaces = keyspaces;
    this.#label = bindingLabel;
  }

  #header(handle: ServerSessionHandle): string {
    return encodeProtectedHeader(`${handle.id}.${this.#label}`);
  }

  #seal(handle: ServerSessionHandle, session: Session): string {
    return sealCompact(
      handle.key.keyObject(),
      this.#header(handle),
      Buffer.from(JSON.stringify(session), 'utf8'),
    );
  }

  async #write(handle: ServerSessionHandle, session: Session, ttlMs: number): Promise<void> {
    await this.#keyspaces.serverSessions.set(handle.id, this.#seal(handle, session), ttlMs);
    await Promise.all([
      this.#keyspaces.sessionsBySub.add(session.sub, handle.id, ttlMs),
      session.sid === undefined
        ? Promise.resolve()
        : this.#keyspaces.sessionsBySid.add(session.sid, handle.id, ttlMs),
    ]);
  }

  /**
   * Stores a new session for `ttlMs` under a fresh random id and key.
   * @returns the handle and the cookie value (ticket) naming it.
   */
  async create(
    session: Session,
    ttlMs: number,
  ): Promise<{ handle: ServerSessionHandle; ticket: string }> {
    const id = randomBytes(16).toString('base64url');
    const handle = { id, key: new SecretKey(id, createSecretKey(randomBytes(32))) };
    await this.#write(handle, session, ttlMs);
    return { handle, ticket: formatTicket(handle) };
  }

  /**
   * The session a ticket names; `undefined` when the ticket is malformed, the record is gone,
   * or it does not open with the ticket's key (wrong key, tampered record). `bound`: the store
   * calls of the request reading it.
   */
  async load(ticket: string, bound?: CallBound): Promise<LoadedServerSession | undefined> {
    const handle = parseTicket(ticket);
    if (handle === undefined) return undefined;
    const sealed = await this.#keyspaces.serverSessions.get(handle.id, bound);
    if (sealed === undefined) return undefined;
    const parts = splitCompact(sealed, 262_144); // longer records are never read back
    if (parts?.header !== this.#header(handle)) return undefined;
    const session = parseSession(openCompactJson(handle.key.keyObject(), parts));
    return session === undefined ? undefined : { handle, session };
  }

  /** Replaces the session's record (after a refresh, or to record use) and renews its TTL. */
  update(handle: ServerSessionHandle, session: Session, ttlMs: number): Promise<void> {
    return this.#write(handle, session, ttlMs);
  }

  /** Deletes one session and its index entries. */
  async delete(handle: ServerSessionHandle, session: Session): Promise<void> {
    await this.#keyspaces.serverSessions.delete(handle.id);
    await Promise.all([
      this.#keyspaces.sessionsBySub.remove(session.sub, handle.id),
      session.sid === undefined
        ? Promise.resolve()
        : this.#keyspaces.sessionsBySid.remove(session.sid, handle.id),
    ]);
  }

  async #endAll(index: SetKeyspace<string>, value: string): Promise<number> {
    const ids = await index.members(value);
    const deleted = await Promise.all(
      ids.map(async (id) => {
        const existed = await this.#keyspaces.serverSessions.delete(id);
        // Member by member, so a session indexed meanwhile keeps its entry.
        await index.remove(value, id);
        return existed;
      }),
    );
    return deleted.filter(Boolean).length;
  }

  /** Ends every session the IdP session `sid` opened (back-channel logout); returns how many. */
  endBySid(sid: string): Promise<number> {
    return this.#endAll(this.#keyspaces.sessionsBySid, sid);
  }

  /** Ends every session of `sub` (back-channel logout without `sid`); returns how many. */
  endBySub(sub: string): Promise<number> {
    return this.#endAll(this.#keyspaces.sessionsBySub, sub);
  }
}
