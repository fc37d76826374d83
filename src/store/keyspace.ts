/** Typed keyspaces: one adapter per kind of record, each with its own key builder, codec and TTL. */
import type { CallBound, StoreBackend } from './store-backend.ts';

/**
 * Turns records into stored strings and back. The encoding carries `version`, so a record
 * written by another release is read as absent instead of being misread.
 */
export interface Codec<T> {
  readonly version: number;
  encode(value: T): string;
  /** The record, or `undefined` when the text is of another version or malformed. */
  decode(text: string): T | undefined;
}

/**
 * A codec storing `<version>:<JSON>`; `parse` validates the decoded JSON and returns
 * `undefined` for anything that is not a well-formed record.
 */
export function jsonCodec<T>(version: number, parse: (data: unknown) => T | undefined): Codec<T> {
  const prefix = `${version}:`;
  return {
    version,
    encode: (value) => prefix + JSON.stringify(value),
    decode(text) {
      if (!text.startsWith(prefix)) return undefined;
      try {
        return parse(JSON.parse(text.slice(prefix.length)) as unknown);
      } catch {
        return undefined;
      }
    },
  };
}

/** A codec storing an opaque string as `<version>:<text>` (tokens, sealed blobs). */
export function stringCodec(version: number): Codec<string> {
  const prefix = `${version}:`;
  return {
    version,
    encode: (value) => prefix + value,
    decode: (text) => (text.startsWith(prefix) ? text.slice(prefix.length) : undefined),
  };
}

/** What a keyspace is built from; fixed at construction, never inferred from a key. */
export interface KeyspaceDefinition<K, T> {
  /** Names the record kind; the first segment of every key (`<name>:<key(id)>`). */
  readonly name: string;
  /** Builds the rest of the key from the record's identity; must escape what it embeds. */
  readonly key: (id: K) => string;
  readonly codec: Codec<T>;
  /** Default lifetime in ms, or a function of the record (e.g. until a token's `exp`). */
  readonly ttl: number | ((value: T) => number);
}

/** Typed access to one kind of value record. */
export class Keyspace<K, T> {
  readonly name: string;
  readonly #backend: StoreBackend;
  readonly #definition: KeyspaceDefinition<K, T>;

  constructor(backend: StoreBackend, definition: KeyspaceDefinition<K, T>) {
    this.name = definition.name;
    this.#backend = backend;
    this.#definition = definition;
  }

  /** The full backend key for `id`. */
  keyFor(id: K): string {
    return `${this.name}:${this.#definition.key(id)}`;
  }

  #ttl(value: T, ttlMs: number | undefined): number {
    if (ttlMs !== undefined) return ttlMs;
    const { ttl } = this.#definition;
    return typeof ttl === 'number' ? ttl : ttl(value);
  }

  #decode(text: string | undefined): T | undefined {
    return text === undefined ? undefined : this.#definition.codec.decode(text);
  }

  /** The record; `bound`: the store calls of the request reading it (see {@link CallBound}). */
  async get(id: K, bound?: CallBound): Promise<T | undefined> {
    return this.#decode(await this.#backend.get(this.keyFor(id), bound));
  }

  /** Stores `value` for `ttlMs` (default: the keyspace's TTL). */
  set(id: K, value: T, ttlMs?: number): Promise<void> {
    return this.#backend.set(
      this.keyFor(id),
      this.#definition.codec.encode(value),
      this.#ttl(value, ttlMs),
    );
  }

  /** Stores `value` only when absent; `true` when this call stored it. */
  setIfAbsent(id: K, value: T, ttlMs?: number): Promise<boolean> {
    return this.#backend.setIfAbsent(
      this.keyFor(id),
      this.#definition.codec.encode(value),
      this.#ttl(value, ttlMs),
    );
  }

  delete(id: K): Promise<boolean> {
    return this.#backend.delete(this.keyFor(id));
  }

  /** Deletes only while the record still equals `value` (e.g. a lock's owner token). */
  deleteIfEquals(id: K, value: T): Promise<boolean> {
    return this.#backend.deleteIfEquals(this.keyFor(id), this.#definition.codec.encode(value));
  }

  /** Reads and removes the record in one step; only one caller ever gets it. */
  async take(id: K): Promise<T | undefined> {
    return this.#decode(await this.#backend.take(this.keyFor(id)));
  }

  /** Renews the lifetime only while the record still equals `value` (lease renewal). */
  expireIfEquals(id: K, value: T, ttlMs?: number): Promise<boolean> {
    return this.#backend.expireIfEquals(
      this.keyFor(id),
      this.#definition.codec.encode(value),
      this.#ttl(value, ttlMs),
    );
  }
}

/** What an index keyspace is built from. */
export interface SetKeyspaceDefinition<K> {
  readonly name: string;
  readonly key: (id: K) => string;
  /** Default lifetime in ms the set is kept alive for after each addition. */
  readonly ttl: number;
}

/** Typed access to one kind of index: a set of member ids per key. */
export class SetKeyspace<K> {
  readonly name: string;
  readonly #backend: StoreBackend;
  readonly #definition: SetKeyspaceDefinition<K>;

  constructor(backend: StoreBackend, definition: SetKeyspaceDefinition<K>) {
    this.name = definition.name;
    this.#backend = backend;
    this.#definition = definition;
  }

  keyFor(id: K): string {
    return `${this.name}:${this.#definition.key(id)}`;
  }

  /** Adds `member`; the set then lives at least `ttlMs` (default: the keyspace's TTL). */
  add(id: K, member: string, ttlMs?: number): Promise<void> {
    return this.#backend.addMember(this.keyFor(id), member, ttlMs ?? this.#definition.ttl);
  }

  members(id: K): Promise<readonly string[]> {
    return this.#backend.members(this.keyFor(id));
  }

  remove(id: K, member: string): Promise<boolean> {
    return this.#backend.removeMember(this.keyFor(id), member);
  }

  delete(id: K): Promise<boolean> {
    return this.#backend.delete(this.keyFor(id));
  }
}
