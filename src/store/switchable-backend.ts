/** The Redis backend behind a handle a config reload can point at a new connection. */
import type { RedisBackend } from './redis-backend.ts';

/** A {@link RedisBackend} whose connection can be replaced while calls keep flowing. */
export interface SwitchableBackend extends RedisBackend {
  /**
   * Sends every later call to `next` and closes the previous backend once the calls it already
   * took have answered (`QUIT` waits for their replies), so no call is cut off by the switch.
   */
  switchTo(next: RedisBackend): Promise<void>;
}

/** Wraps `initial`; see {@link SwitchableBackend}. */
export function switchableBackend(initial: RedisBackend): SwitchableBackend {
  let current = initial;
  return {
    get: (key) => current.get(key),
    set: (key, value, ttlMs) => current.set(key, value, ttlMs),
    setIfAbsent: (key, value, ttlMs) => current.setIfAbsent(key, value, ttlMs),
    delete: (key) => current.delete(key),
    deleteIfEquals: (key, value) => current.deleteIfEquals(key, value),
    take: (key) => current.take(key),
    expireIfEquals: (key, value, ttlMs) => current.expireIfEquals(key, value, ttlMs),
    addMember: (key, member, ttlMs) => current.addMember(key, member, ttlMs),
    members: (key) => current.members(key),
    removeMember: (key, member) => current.removeMember(key, member),
    ping: () => current.ping(),
    status: () => current.status(),
    ready: (timeoutMs) => current.ready(timeoutMs),
    credentialsRefused: () => current.credentialsRefused(),
    async switchTo(next) {
      const previous = current;
      current = next;
      if (previous !== next) await previous.close();
    },
    close: () => current.close(),
  };
}
