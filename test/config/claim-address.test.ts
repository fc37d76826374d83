/** Claim addresses: one syntax and one reading for authorization rules and header templates. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileRules } from '../../src/authz/rules.ts';
import {
  addressNames,
  claimAddressProblem,
  compileClaimKeys,
  compileClaimPath,
} from '../../src/config/claim-address.ts';
import { appSchema } from '../../src/config/schema.ts';
import { compileTemplate } from '../../src/config/template.ts';
import { pathOf } from '../support/request-paths.ts';

type Claims = Readonly<Record<string, unknown>>;

/** What a header template renders for `{{ claims.<address> }}`, or for `{{ claims<address> }}` when it opens with a bracket. */
function viaTemplate(address: string, claims: Claims): string | undefined {
  const compiled = compileTemplate(`{{ claims${address.startsWith('[') ? '' : '.'}${address} }}`);
  assert.ok(compiled.ok, address);
  return compiled.render({ claims, tokens: {}, app: { name: 'a' } });
}

/** Whether an `exists: true` rule on the address holds. */
function viaRule(address: string, claims: Claims): boolean {
  const rules = compileRules(
    appSchema.shape.authorization.parse({ claims: [{ claim: address, exists: true }] }),
    '',
  );
  return rules.check(claims, 'GET', pathOf('/')) === undefined;
}

describe('claim addresses', () => {
  it('read the same claim in a rule and in a header template, whatever the shape', () => {
    const claims: Claims = JSON.parse(
      JSON.stringify({
        email: 'ann@example.com',
        'https://example.com/roles': ['r1', 'r2'],
        'https://example.com/app': { tier: 'gold' },
        'a.b': 'whole',
        a: { b: 'nested', 'c.d': 'inner whole' },
        realm_access: { roles: ['editor'] },
        'my claim': 'spaced',
        'Ünïcødé.名前': 'non-ascii whole',
        Ünïcødé: { 名前: 'non-ascii nested' },
        resource_access: { 'my.app': { roles: ['deploy'] } },
        nothing: null,
        groups: ['x', 'y'],
      }),
    ) as Claims;
    const table: readonly [address: string, rendered: string][] = [
      ['email', 'ann@example.com'],
      ['https://example.com/roles', 'r1,r2'],
      ['["https://example.com/roles"]', 'r1,r2'],
      ["['https://example.com/roles']", 'r1,r2'],
      ['https://example.com/app.tier', 'gold'],
      ['["https://example.com/app"].tier', 'gold'],
      ['a.b', 'whole'],
      ['["a"].b', 'nested'],
      ['a["b"]', 'nested'],
      ['a.c.d', 'inner whole'],
      ['realm_access.roles', 'editor'],
      ['["realm_access"]["roles"]', 'editor'],
      ['["my claim"]', 'spaced'],
      ['Ünïcødé.名前', 'non-ascii whole'],
      ['["Ünïcødé"].名前', 'non-ascii nested'],
      ['resource_access["my.app"].roles', 'deploy'],
      ['resource_access.my.app.roles', 'deploy'],
      // Missing: absent everywhere, never an error.
      ['missing', ''],
      ['email.length', ''],
      ['groups.length', ''],
      ['groups.0', ''],
      ['nothing', ''],
      ['nothing.deeper', ''],
      // Prototype names are not claims of an object that does not own them.
      ['constructor', ''],
      ['toString', ''],
      ['__proto__', ''],
      ['a.__proto__', ''],
      ['a.constructor.name', ''],
      ['["__proto__"]', ''],
    ];
    for (const [address, rendered] of table) {
      assert.equal(claimAddressProblem(address), undefined, address);
      assert.equal(viaTemplate(address, claims), rendered, `template: ${address}`);
      assert.equal(viaRule(address, claims), rendered !== '', `rule: ${address}`);
    }
  });

  it('a JSON __proto__ member is an own claim like any other, in both', () => {
    const claims = JSON.parse('{"__proto__": {"groups": ["admins"]}, "x": 1}') as Claims;
    assert.equal(viaTemplate('__proto__.groups', claims), 'admins');
    assert.equal(viaRule('__proto__.groups', claims), true);
    assert.equal(viaTemplate('x.__proto__', claims), '');
    assert.equal(Object.getPrototypeOf(claims), Object.prototype);
  });

  it('refuses what is not an address, in the schema and in templates alike', () => {
    for (const address of [
      '',
      '.',
      'a.',
      '.a',
      'a..b',
      'my claim',
      'a b.c',
      'groups[0]',
      'a]',
      '["x"',
      '["x"]y',
      '[x]',
      'a\tb',
      'a\nb',
      'a\r\nb',
      'a.b\r',
      'a\u0085b',
      'a\u0000b',
      'a\u2028b',
    ]) {
      assert.ok(claimAddressProblem(address) !== undefined, JSON.stringify(address));
      assert.throws(() => compileClaimPath(address), TypeError, JSON.stringify(address));
      const rule = appSchema.shape.authorization.safeParse({
        claims: [{ claim: address, exists: true }],
      });
      assert.equal(rule.success, false, JSON.stringify(address));
      assert.equal(
        compileTemplate(`{{ claims.${address} }}`).ok,
        false,
        `template: ${JSON.stringify(address)}`,
      );
    }
  });

  it('the bearer identifier cannot be email, however it is written', () => {
    for (const claim of ['email', '["email"]', "['email']"]) {
      const parsed = appSchema.shape.bearer.safeParse({
        enabled: true,
        audiences: ['a'],
        identifierClaim: claim,
      });
      assert.equal(parsed.success, false, claim);
    }
    assert.deepEqual(addressNames('a.b["c.d"]'), ['a', 'b', 'c.d']);
  });
});

describe('compileClaimPath', () => {
  it('prefers the longest own key at each level', () => {
    const path = compileClaimPath('a.b.c');
    assert.equal(path.read({ 'a.b.c': 1, a: { b: { c: 2 } } }), 1);
    assert.equal(path.read({ 'a.b': { c: 3 }, a: { b: { c: 2 } } }), 3);
    assert.equal(path.read({ a: { 'b.c': 4, b: { c: 2 } } }), 4);
    assert.equal(path.read({ a: { b: { c: 2 } } }), 2);
    assert.equal(path.read({ a: 'text' }), undefined);
    assert.equal(path.read({ a: null }), undefined);
  });

  it('reads only own properties', () => {
    assert.equal(compileClaimPath('toString').read({}), undefined);
    assert.equal(compileClaimPath('hasOwnProperty').read({}), undefined);
    assert.equal(compileClaimPath('a.constructor').read({ a: {} }), undefined);
    assert.equal(compileClaimPath('a.__proto__').read({ a: {} }), undefined);
    assert.equal(compileClaimPath('x').read(Object.create({ x: 1 }) as Claims), undefined);
  });

  it('follows exact keys without splitting them', () => {
    const path = compileClaimKeys(['resource_access', 'a.b', 'roles']);
    assert.deepEqual(path.read({ resource_access: { 'a.b': { roles: ['r'] } } }), ['r']);
    assert.equal(path.read({ resource_access: { a: { b: { roles: ['r'] } } } }), undefined);
    assert.equal(path.name, 'resource_access.a.b.roles');
  });
});
