/** The upstream `cookie` header without our cookies. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cookieHeaderWithout } from '../../src/authz/session-step.ts';

/** The definition: pairs trimmed, empty ones and named ones dropped, the rest joined. */
function reference(header: string, names: ReadonlySet<string>): string | undefined {
  const kept = header
    .split(';')
    .map((pair) => pair.trim())
    .filter(
      (pair) => pair !== '' && !names.has(pair.slice(0, Math.max(0, pair.indexOf('='))).trim()),
    );
  return kept.length === 0 ? undefined : kept.join('; ');
}

const ours = new Set(['__Host-_eoa', '__Host-_eoa.0', '_eoa_login_x']);

describe('cookieHeaderWithout', () => {
  it('keeps the other cookies in order and drops ours', () => {
    assert.equal(cookieHeaderWithout('a=1; __Host-_eoa=v; b=2', ours), 'a=1; b=2');
    assert.equal(cookieHeaderWithout('__Host-_eoa=v;__Host-_eoa.0=w', ours), undefined);
    assert.equal(cookieHeaderWithout(' ;a = 1 ;; _eoa_login_x =y; flag;', ours), 'a = 1; flag');
    assert.equal(cookieHeaderWithout('', ours), undefined);
    assert.equal(cookieHeaderWithout('=x; =; ;', ours), '=x; =');
  });

  it('agrees with the definition on arbitrary headers', () => {
    const pieces = [
      'a=1',
      ' b=2 ',
      '__Host-_eoa=v',
      ' _eoa_login_x = y ',
      '',
      ' ',
      'flag',
      '=',
      'c=d=e',
    ];
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 2_000; i++) {
      const count = next() % 6;
      const header = Array.from({ length: count }, () => pieces[next() % pieces.length]).join(
        next() % 2 === 0 ? ';' : '; ',
      );
      assert.equal(
        cookieHeaderWithout(header, ours),
        reference(header, ours),
        JSON.stringify(header),
      );
    }
  });
});
