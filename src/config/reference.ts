/** Renders the configuration reference (docs/configuration.md) from the config schema itself. */

import { z } from 'zod';

import { configSchema } from './schema.ts';

/** The part of JSON Schema that `z.toJSONSchema` emits for this schema. */
interface JsonSchema {
  readonly type?: string | readonly string[];
  readonly description?: string;
  readonly default?: unknown;
  readonly enum?: readonly unknown[];
  readonly const?: unknown;
  readonly properties?: Readonly<Record<string, JsonSchema>>;
  readonly required?: readonly string[];
  readonly items?: JsonSchema;
  readonly additionalProperties?: boolean | JsonSchema;
  readonly anyOf?: readonly JsonSchema[];
  readonly minimum?: number;
  readonly exclusiveMinimum?: number;
  readonly maximum?: number;
}

interface Row {
  readonly path: string;
  readonly type: string;
  readonly defaultText: string;
  readonly description: string;
}

/** The command that regenerates the file, named in its header and in the staleness test. */
export const regenerateCommand =
  'npm run build && node dist/src/cli.js config-reference > docs/configuration.md && npx prettier --write docs/configuration.md';

const header = `# Configuration reference

<!-- Generated from src/config/schema.ts; do not edit. Regenerate with:
     ${regenerateCommand.replace(' && npx', '\n     && npx')} -->

One YAML (or JSON) file, passed with \`--config FILE\` or \`EOA_CONFIG\`. It is validated once at
start (and on \`SIGHUP\`); every problem is reported with its path, and nothing starts until the
file is valid. Check a file without starting: \`envoy-oidc-authz check-config --config FILE\`.

- \`\${VAR}\` is replaced by the environment variable \`VAR\` (\`\${VAR:-fallback}\` gives a fallback).
- Every secret has a \`…File\` twin (\`clientSecretFile\`, \`secretsFile\`, \`passwordFile\`,
  \`caFile\`, \`certFile\`, \`keyFile\`, \`privateKeyFile\`, \`signingKeyFile\`) naming a file that holds it, relative
  to the config file's directory — the way Kubernetes Secrets are mounted.
- Durations are strings: \`500ms\`, \`90s\`, \`15m\`, \`24h\`, \`1h30m\`.
- \`defaults\` takes any app key and is merged under every app; the app's own value wins and lists
  replace, they are not merged.
- Unknown keys are errors.
- A **claim address** names a claim the same way in authorization rules (\`claims[].claim\`,
  \`groupsClaim\`, \`rolesClaims\`), in \`bearer.identifierClaim\` and after \`claims.\` in a
  \`headers\` template: a name
  (\`email\`, \`https://example.com/roles\`), a dot path into nested claims
  (\`realm_access.roles\`), or a name in brackets taken exactly (\`["my claim"]\`,
  \`resource_access["my.app"].roles\`); the forms chain. A dotted name is looked up whole first
  and split at its dots only when no claim has the whole name, the longest whole name first at
  each level (\`https://example.com/app.tier\` reads the \`tier\` of the claim
  \`https://example.com/app\` unless a claim is named \`https://example.com/app.tier\`). Names
  with spaces, brackets or empty parts go in brackets. Only a claim's own JSON members are read
  (\`constructor\` or \`__proto__\` of an object is not a claim), arrays are not walked into
  (\`groups.length\` is missing), and a missing claim is absent: only \`exists: false\` holds on
  it, and a header renders it empty.

In the tables, \`apps[].oidc.issuer\` is the key \`issuer\` in the \`oidc\` section of each entry
of the \`apps\` list.
`;

// Integers in zod carry the JS safe-integer bounds; they say nothing to an operator.
const safeIntegerBound = Number.MAX_SAFE_INTEGER;

function code(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text === '' ? '`""`' : `\`${text}\``;
}

function scalarType(schema: JsonSchema): string {
  if (schema.enum !== undefined) return schema.enum.map(code).join(' | ');
  if (schema.const !== undefined) return code(schema.const);
  if (schema.anyOf !== undefined) return schema.anyOf.map(typeOf).join(' or ');
  const types = Array.isArray(schema.type) ? schema.type : [schema.type ?? 'any'];
  let text = types.join(' or ');
  const lower = schema.exclusiveMinimum ?? schema.minimum;
  if ((text === 'integer' || text === 'number') && lower !== undefined) {
    const op = schema.exclusiveMinimum !== undefined ? '>' : '≥';
    const upper =
      schema.maximum !== undefined && schema.maximum !== safeIntegerBound
        ? `, ≤ ${schema.maximum}`
        : '';
    text += ` (${op} ${lower}${upper})`;
  }
  return text;
}

function typeOf(schema: JsonSchema): string {
  if (schema.type === 'array') {
    const item = schema.items;
    const itemType = item === undefined ? 'any' : item.properties ? 'objects' : typeOf(item);
    return `list of ${itemType}`;
  }
  if (schema.type === 'object') {
    if (schema.properties !== undefined) return 'object';
    const values = schema.additionalProperties;
    const valueType =
      typeof values === 'object' && values.type !== undefined ? typeOf(values) : 'any';
    return `map of string → ${valueType}`;
  }
  return scalarType(schema);
}

function defaultOf(schema: JsonSchema, required: boolean): string {
  if (required) return 'required';
  if (schema.default === undefined) return '—';
  if (typeof schema.default === 'object' && schema.default !== null) {
    const json = JSON.stringify(schema.default);
    // An object default of {} only means "filled from its own keys' defaults".
    if (json === '{}') return '—';
    return code(json);
  }
  return code(schema.default);
}

function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
}

function collect(schema: JsonSchema, path: string, rows: Row[]): void {
  const required = new Set(schema.required ?? []);
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    const childPath = path === '' ? key : `${path}.${key}`;
    rows.push({
      path: childPath,
      type: typeOf(child),
      defaultText: defaultOf(child, required.has(key)),
      description: child.description ?? '',
    });
    if (child.properties !== undefined) collect(child, childPath, rows);
    if (child.type === 'array' && child.items?.properties !== undefined) {
      collect(child.items, `${childPath}[]`, rows);
    }
  }
}

function table(rows: readonly Row[]): string {
  const lines = ['| key | type | default | description |', '| --- | --- | --- | --- |'];
  for (const row of rows) {
    lines.push(
      `| \`${row.path}\` | ${cell(row.type)} | ${cell(row.defaultText)} | ${cell(row.description)} |`,
    );
  }
  return lines.join('\n');
}

/**
 * The Markdown reference of every configuration key: one section per top-level key, one table
 * row per key below it with its path, type, default and description, all read from
 * `configSchema` (the input side: durations as written, before conversion to milliseconds).
 * Deterministic, so a test can compare it, formatted by Prettier as the repository's files
 * are, byte for byte with `docs/configuration.md`.
 */
export function renderConfigReference(): string {
  const root = z.toJSONSchema(configSchema, { io: 'input' }) as JsonSchema;
  const required = new Set(root.required ?? []);
  const sections: string[] = [header.trimEnd()];
  for (const [key, schema] of Object.entries(root.properties ?? {})) {
    const rows: Row[] = [];
    const base = schema.type === 'array' && schema.items?.properties ? `${key}[]` : key;
    collect(schema.type === 'array' && schema.items ? schema.items : schema, base, rows);
    const defaultText = defaultOf(schema, required.has(key));
    const presence =
      defaultText === 'required'
        ? 'required'
        : defaultText === '—'
          ? 'optional'
          : `default ${defaultText}`;
    const lines = [
      `## \`${key}\``,
      '',
      `${schema.description ?? ''} Type: ${typeOf(schema)}; ${presence}.`,
    ];
    if (rows.length > 0) lines.push('', table(rows));
    sections.push(lines.join('\n'));
  }
  return sections.join('\n\n') + '\n';
}
