import assert from 'node:assert/strict';
import { test } from 'node:test';

import { interpolate } from '../../src/config/interpolate.ts';

test('replaces variables in every string, nested in objects and arrays, not in keys', () => {
  const result = interpolate(
    { a: 'x-${A}-y', list: ['${B}', 3, true, null], nested: { '${A}': '${A}${B}' } },
    { A: 'one', B: 'two' },
  );
  assert.deepEqual(result.problems, []);
  assert.deepEqual(result.value, {
    a: 'x-one-y',
    list: ['two', 3, true, null],
    nested: { '${A}': 'onetwo' },
  });
});

test('an unset variable is a problem at its path, not an empty string', () => {
  const result = interpolate({ apps: [{ oidc: { clientSecret: '${MISSING}' } }] }, {});
  assert.deepEqual(result.problems, [
    { path: 'apps[0].oidc.clientSecret', message: 'environment variable MISSING is not set' },
  ]);
});

test('${VAR:-fallback} uses the fallback when unset or empty, the value otherwise', () => {
  const doc = { a: '${U:-dflt}', b: '${E:-dflt}', c: '${S:-dflt}', d: '${U:-}' };
  const result = interpolate(doc, { E: '', S: 'set' });
  assert.deepEqual(result.problems, []);
  assert.deepEqual(result.value, { a: 'dflt', b: 'dflt', c: 'set', d: '' });
});

test('$${ escapes a literal ${, and an empty value is kept', () => {
  const result = interpolate({ a: 'cost $${HOME} and $5', b: '${EMPTY}' }, { EMPTY: '' });
  assert.deepEqual(result.problems, []);
  assert.deepEqual(result.value, { a: 'cost ${HOME} and $5', b: '' });
});

test('malformed references are problems that do not echo the text', () => {
  const result = interpolate({ a: 'pre${no-good}post', b: 'x${OPEN' }, {});
  assert.deepEqual(
    result.problems.map((p) => p.path),
    ['a', 'b'],
  );
  for (const problem of result.problems) assert.doesNotMatch(problem.message, /no-good|OPEN/);
});

test('does not modify the input document', () => {
  const doc = { a: '${A}' };
  interpolate(doc, { A: 'x' });
  assert.deepEqual(doc, { a: '${A}' });
});
