/** The request policy's reading of a path, for tests that hand one to a consumer directly. */
import { readRequestPath, type RequestPath } from '../../src/policy/request-path.ts';

/** Reads `raw` as the policy does; throws when the policy would refuse it with 400. */
export function pathOf(raw: string): RequestPath {
  const path = readRequestPath(raw);
  if ('kind' in path) throw new Error(`the policy refuses ${raw}: ${path.reason}`);
  return path;
}
