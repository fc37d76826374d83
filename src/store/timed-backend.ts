/** A store backend whose every operation is timed, for `eoa_store_command_duration_seconds`. */
import { performance } from 'node:perf_hooks';
import type { StoreBackend } from './store-backend.ts';

/** The operations of the store port (all but `close`). */
export type StoreOperation = Exclude<keyof StoreBackend, 'close'>;

/**
 * `backend` with each operation timed: `observe` gets the operation's name, the seconds, and the
 * error when it failed (`undefined` when it answered). One closure per operation, built once.
 */
export function timeStoreCalls(
  backend: StoreBackend,
  observe: (operation: StoreOperation, seconds: number, error: unknown) => void,
): StoreBackend {
  const timed =
    <A extends unknown[], R>(operation: StoreOperation, run: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const started = performance.now();
      try {
        const result = await run(...args);
        observe(operation, (performance.now() - started) / 1000, undefined);
        return result;
      } catch (error) {
        observe(operation, (performance.now() - started) / 1000, error ?? 'failed');
        throw error;
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
