/** A store backend whose every operation is timed, for `eoa_store_command_duration_seconds`. */
import { performance } from 'node:perf_hooks';
import type { StoreBackend } from './store-backend.ts';

/** The operations of the store port (all but `close`). */
export type StoreOperation = Exclude<keyof StoreBackend, 'close'>;

/**
 * `backend` with each operation timed: `observe` gets the operation's name and the seconds,
 * whether it answered or failed. One closure per operation, built once.
 */
export function timeStoreCalls(
  backend: StoreBackend,
  observe: (operation: StoreOperation, seconds: number) => void,
): StoreBackend {
  const timed =
    <A extends unknown[], R>(operation: StoreOperation, run: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const started = performance.now();
      try {
        return await run(...args);
      } finally {
        observe(operation, (performance.now() - started) / 1000);
      }
    };
  return {
    get: timed('get', (key) => backend.get(key)),
    set: timed('set', (key, value, ttlMs) => backend.set(key, value, ttlMs)),
    setIfAbsent: timed('setIfAbsent', (key, value, ttlMs) =>
      backend.setIfAbsent(key, value, ttlMs),
    ),
    delete: timed('delete', (key) => backend.delete(key)),
    deleteIfEquals: timed('deleteIfEquals', (key, value) => backend.deleteIfEquals(key, value)),
    take: timed('take', (key) => backend.take(key)),
    expireIfEquals: timed('expireIfEquals', (key, value, ttlMs) =>
      backend.expireIfEquals(key, value, ttlMs),
    ),
    addMember: timed('addMember', (key, member, ttlMs) => backend.addMember(key, member, ttlMs)),
    members: timed('members', (key) => backend.members(key)),
    removeMember: timed('removeMember', (key, member) => backend.removeMember(key, member)),
    close: () => backend.close(),
  };
}
