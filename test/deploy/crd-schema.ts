/** Validates custom resources against their CRD's OpenAPI schema, with every declared object closed. */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

import { Ajv, type ValidateFunction } from 'ajv';

import { repoPath } from './repo-path.ts';

type Schema = Record<string, unknown>;

/**
 * Kubernetes prunes unknown fields silently unless the client asks for strict validation;
 * closing every object that lists its `properties` makes a misspelt field an error here.
 * Objects that keep unknown fields on purpose (`x-kubernetes-preserve-unknown-fields`, maps
 * with `additionalProperties`) stay open.
 */
function closeObjects(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(closeObjects);
  if (typeof node !== 'object' || node === null) return node;
  const copy: Schema = {};
  for (const [key, value] of Object.entries(node)) {
    // `properties` maps names to schemas: recurse into each schema, never treat names as keywords.
    copy[key] =
      key === 'properties' && typeof value === 'object' && value !== null
        ? Object.fromEntries(
            Object.entries(value).map(([name, child]) => [name, closeObjects(child)]),
          )
        : closeObjects(value);
  }
  // OpenAPI 3.0 writes exclusive bounds as booleans beside the bound; JSON Schema as the bound.
  for (const [flag, bound] of [
    ['exclusiveMaximum', 'maximum'],
    ['exclusiveMinimum', 'minimum'],
  ] as const) {
    if (typeof copy[flag] === 'boolean') {
      if (copy[flag] === true) copy[flag] = copy[bound];
      else delete copy[flag];
      if (copy[flag] !== undefined) delete copy[bound];
    }
  }
  if (
    copy['properties'] !== undefined &&
    copy['additionalProperties'] === undefined &&
    copy['x-kubernetes-preserve-unknown-fields'] !== true
  ) {
    copy['additionalProperties'] = false;
  }
  return copy;
}

/** Loads `test/deploy/schemas/<name>.schema.json.gz` and compiles it closed. */
export function loadCrdValidator(name: string): ValidateFunction {
  const schema = JSON.parse(
    gunzipSync(readFileSync(repoPath(`test/deploy/schemas/${name}.schema.json.gz`))).toString(
      'utf8',
    ),
  ) as Schema;
  // The x-kubernetes-* keywords are Kubernetes' own; formats such as int-or-string are too.
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
  // Every object has the API server's own fields, whether or not the CRD lists them.
  const root = {
    ...schema,
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      ...(schema['properties'] as Schema | undefined),
    },
  };
  return ajv.compile(closeObjects(root) as Schema);
}

/** The errors of the last validation as `path: message` lines (empty when valid). */
export function crdProblems(validate: ValidateFunction, document: unknown): string[] {
  if (validate(document)) return [];
  return (validate.errors ?? []).map((error) => {
    const extra =
      error.keyword === 'additionalProperties'
        ? ` (${String((error.params as { additionalProperty?: unknown }).additionalProperty)})`
        : '';
    return `${error.instancePath || '/'}: ${error.message ?? error.keyword}${extra}`;
  });
}
