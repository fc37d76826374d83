/** The Docker build context a `.dockerignore` leaves: which files `docker build .` would send. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface Rule {
  readonly exclude: boolean;
  readonly pattern: RegExp;
  /** The pattern text without `!` and trailing `/`, for pruning directories. */
  readonly text: string;
}

function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      source += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** Parses `.dockerignore` text: one pattern a line, `#` comments, `!` re-includes. */
export function parseDockerignore(text: string): Rule[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const exclude = !line.startsWith('!');
      const text = (exclude ? line : line.slice(1)).replace(/^\/+|\/+$/g, '');
      return { exclude, pattern: globToRegExp(text), text };
    });
}

/**
 * Whether `path` (slash-separated, relative) is left out. As in Docker, a pattern matches a
 * path or any of its parent directories, and the last matching pattern wins.
 */
export function isIgnored(rules: readonly Rule[], path: string): boolean {
  const parts = path.split('/');
  let ignored = false;
  for (const rule of rules) {
    for (let n = 1; n <= parts.length; n++) {
      if (rule.pattern.test(parts.slice(0, n).join('/'))) {
        ignored = rule.exclude;
        break;
      }
    }
  }
  return ignored;
}

/** Every file under `root` the context would hold, with its size in bytes. */
export function contextFiles(root: string, rules: readonly Rule[]): Map<string, number> {
  const files = new Map<string, number>();
  const reincluded = rules.filter((r) => !r.exclude).map((r) => r.text);
  const walk = (relative: string): void => {
    for (const entry of readdirSync(join(root, relative), { withFileTypes: true })) {
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) {
        // An ignored directory is skipped unless a `!` pattern reaches inside it.
        const reachable = reincluded.some((text) => text.startsWith(`${path}/`) || text === path);
        if (isIgnored(rules, path) && !reachable) continue;
        walk(path);
      } else if (entry.isFile() && !isIgnored(rules, path)) {
        files.set(path, statSync(join(root, path)).size);
      }
    }
  };
  walk('');
  return files;
}
