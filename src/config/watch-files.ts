/** Notices when files the configuration was read from change (a Kubernetes Secret rotated). */
import { unwatchFile, watchFile, type Stats } from 'node:fs';

/** Files watched for a change; {@link FileWatch.update} swaps the set after a reload. */
export interface FileWatch {
  update(paths: readonly string[]): void;
  close(): void;
}

/**
 * Polls `paths` every `intervalMs` (by `stat`, which follows the symlinks Kubernetes swaps on a
 * Secret update, where change events on the old inode would be missed) and calls `onChange` once
 * per round in which any of them changed. Keeps no process alive.
 */
export function watchFiles(
  paths: readonly string[],
  intervalMs: number,
  onChange: () => void,
): FileWatch {
  let watched = new Set<string>();
  let pending = false;
  const changed = (current: Stats, previous: Stats): void => {
    const same =
      current.mtimeMs === previous.mtimeMs &&
      current.ino === previous.ino &&
      current.size === previous.size;
    if (same) return;
    if (pending) return;
    // Several files of one Secret change together: one reload for all of them.
    pending = true;
    setImmediate(() => {
      pending = false;
      onChange();
    });
  };
  const update = (next: readonly string[]): void => {
    const wanted = new Set(next);
    for (const path of watched) if (!wanted.has(path)) unwatchFile(path, changed);
    for (const path of wanted) {
      if (!watched.has(path)) watchFile(path, { interval: intervalMs, persistent: false }, changed);
    }
    watched = wanted;
  };
  update(paths);
  return {
    update,
    close: () => update([]),
  };
}
