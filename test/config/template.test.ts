import assert from 'node:assert/strict';
import { test } from 'node:test';

import { compileTemplate, type TemplateContext } from '../../src/config/template.ts';

const ctx: TemplateContext = {
  claims: {
    sub: 'user-1',
    email: 'ann@example.com',
    groups: ['admins', 'dev'],
    realm_access: { roles: ['a', 'b'] },
    'https://example.com/roles': ['r1', 2, true],
    address: { country: 'NL' },
    age: 42,
    verified: false,
    nothing: null,
    bad: 'evil\r\nset-cookie: x',
    nul: 'a\u0000b',
  },
  tokens: { access_token: 'at-value', id_token: 'idt-value' },
  app: { name: 'grafana' },
};

function render(source: string): string | undefined {
  const compiled = compileTemplate(source);
  assert.ok(compiled.ok, `${source} should compile`);
  return compiled.render(ctx);
}

test('renders claims, tokens and the app name with literal text around them', () => {
  assert.equal(render('{{ claims.email }}'), 'ann@example.com');
  assert.equal(render('{{claims.sub}}'), 'user-1');
  assert.equal(render('user={{ claims.sub }};app={{ app.name }}'), 'user=user-1;app=grafana');
  assert.equal(render('Bearer {{ tokens.access_token }}'), 'Bearer at-value');
  assert.equal(render('{{ tokens.id_token }}'), 'idt-value');
  assert.equal(render('plain text'), 'plain text');
  assert.equal(render(''), '');
});

test('namespaced claims by full name, nested claims by dot path', () => {
  assert.equal(render('{{ claims["https://example.com/roles"] }}'), 'r1,2,true');
  assert.equal(render("{{ claims['https://example.com/roles'] }}"), 'r1,2,true');
  assert.equal(render('{{ claims.realm_access.roles }}'), 'a,b');
  assert.equal(render('{{ claims["realm_access"].roles }}'), 'a,b');
});

test('arrays comma-joined, objects as JSON, scalars as text, missing as empty', () => {
  assert.equal(render('{{ claims.groups }}'), 'admins,dev');
  assert.equal(render('{{ claims.address }}'), '{"country":"NL"}');
  assert.equal(render('{{ claims.age }}/{{ claims.verified }}'), '42/false');
  assert.equal(
    render('[{{ claims.nothing }}][{{ claims.missing }}][{{ claims.sub.deeper }}]'),
    '[][][]',
  );
});

test('lists the tokens a template reads, each once', () => {
  const tokensOf = (source: string) => {
    const compiled = compileTemplate(source);
    assert.ok(compiled.ok, source);
    return compiled.tokens;
  };
  assert.deepEqual(tokensOf('{{ claims.email }} on {{ app.name }}'), []);
  assert.deepEqual(tokensOf('{{ tokens.id_token }}|{{tokens.id_token}}'), ['id_token']);
  assert.deepEqual(tokensOf('{{ tokens.access_token }} {{ tokens.id_token }}'), [
    'access_token',
    'id_token',
  ]);
});

test('missing tokens render empty', () => {
  const compiled = compileTemplate('{{ tokens.id_token }}');
  assert.ok(compiled.ok);
  assert.equal(compiled.render({ claims: {}, tokens: {}, app: { name: 'a' } }), '');
});

test('never reaches the prototype through a claim path', () => {
  assert.equal(
    render('{{ claims.constructor }}{{ claims.__proto__ }}{{ claims.email.length }}'),
    '',
  );
});

test('a value with CR, LF or NUL renders undefined so the header is dropped', () => {
  assert.equal(render('{{ claims.bad }}'), undefined);
  assert.equal(render('x {{ claims.nul }}'), undefined);
});

test('unknown roots, unknown tokens and malformed expressions do not compile', () => {
  const cases: [string, RegExp][] = [
    ['{{ claim.email }}', /unknown variable "claim"/],
    ['{{ env.HOME }}', /unknown variable "env"/],
    ['{{ tokens.refresh_token }}', /tokens.access_token or tokens.id_token/],
    ['{{ app.id }}', /app.name/],
    ['{{ claims }}', /must name a claim/],
    ['{{ }}', /invalid expression/],
    ['{{ claims..x }}', /invalid expression/],
    ['{{ claims["x" }}', /invalid expression/],
    ['{{ claims.email', /unclosed/],
    ['line\nbreak', /control characters/],
  ];
  for (const [source, message] of cases) {
    const compiled = compileTemplate(source);
    assert.equal(compiled.ok, false, source);
    if (!compiled.ok) assert.match(compiled.message, message, source);
  }
});

test('renders how the request was authenticated, empty when the caller says nothing', () => {
  const compiled = compileTemplate('{{ auth.method }}:{{ auth.client_id }}');
  assert.ok(compiled.ok);
  assert.equal(
    compiled.render({ ...ctx, auth: { method: 'bearer', clientId: 'ci' } }),
    'bearer:ci',
  );
  assert.equal(compiled.render(ctx), ':');
  for (const source of ['{{ auth }}', '{{ auth.clientId }}', '{{ auth.method.x }}']) {
    const refused = compileTemplate(source);
    assert.equal(refused.ok, false, source);
  }
});
