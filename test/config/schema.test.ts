import assert from 'node:assert/strict';
import { test } from 'node:test';

import { z } from 'zod';

import { configSchema } from '../../src/config/schema.ts';

interface JsonSchemaNode {
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
  additionalProperties?: boolean | JsonSchemaNode;
}

function walkProperties(
  node: JsonSchemaNode,
  path: string,
  visit: (path: string, node: JsonSchemaNode) => void,
): void {
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    visit(`${path}.${key}`, child);
    walkProperties(child, `${path}.${key}`, visit);
    if (child.items) walkProperties(child.items, `${path}.${key}[]`, visit);
  }
}

test('the schema renders to JSON Schema with a description on every option', () => {
  const json = z.toJSONSchema(configSchema, { io: 'input' }) as JsonSchemaNode;
  const undocumented: string[] = [];
  let count = 0;
  walkProperties(json, '', (path, node) => {
    count++;
    if (node.description === undefined || node.description.length < 5) undocumented.push(path);
  });
  assert.ok(count > 100, `only ${count} options rendered`);
  assert.deepEqual(undocumented, []);
});

test('documented defaults are the input form (durations as strings), objects are closed', () => {
  const json = z.toJSONSchema(configSchema, { io: 'input' }) as JsonSchemaNode;
  const app = json.properties?.['apps']?.items;
  assert.equal(app?.properties?.['session']?.properties?.['maxAge']?.default, '24h');
  assert.equal(app?.properties?.['refresh']?.properties?.['skew']?.default, '60s');
  assert.equal(json.properties?.['listen']?.properties?.['grpc']?.default, '0.0.0.0:9001');
  assert.equal(json.additionalProperties, false);
  assert.equal(app?.additionalProperties, false);
});
