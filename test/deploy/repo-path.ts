/** Paths in the source tree, from a test compiled to `dist/test/deploy/` (or a private dist folder). */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: three levels above this compiled file. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** `relative` (slash-separated) resolved against the repository root. */
export function repoPath(relative: string): string {
  return join(repoRoot, ...relative.split('/'));
}
