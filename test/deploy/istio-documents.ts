/** The first (or only) document of a file in `istio/`, parsed. */
import { readFileSync } from 'node:fs';

import { parseAllDocuments } from 'yaml';

import { repoPath } from './repo-path.ts';

// Parsed YAML walked by known paths: a wrong path throws and fails the test.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

/** `istio/<file>`'s first document as plain data. */
export function istioDocument(file: string): Doc {
  const [document] = parseAllDocuments(readFileSync(repoPath(`istio/${file}`), 'utf8'));
  return document?.toJS();
}
