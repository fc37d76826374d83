/** What forging an identity header takes, and the removal lists built once per app. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  foldHeaderName,
  IdentityRemovals,
  spellingsOf,
} from '../../src/authz/identity-removals.ts';

describe('identity removals', () => {
  it('folds names as CGI, WSGI, PHP, Rack and nginx read them', () => {
    assert.equal(foldHeaderName('X_Auth_Request_User'), 'x-auth-request-user');
    assert.equal(foldHeaderName('x-auth_request-user'), 'x-auth-request-user');
  });

  it('spells a name every way an upstream folds into it', () => {
    assert.deepEqual(spellingsOf('x-a_b').sort(), ['x-a-b', 'x-a_b', 'x_a-b', 'x_a_b']);
    assert.equal(spellingsOf('x-auth-request-preferred-username').length, 16);
    assert.throws(() => spellingsOf('a-b-c-d-e-f-g-h-i-j'), /more than 8/);
  });

  it('finds every request header that folds to an identity header, except those set', () => {
    const removals = new IdentityRemovals(['x-auth-request-user', 'x-auth-request-email']);
    const request = new Map([
      ['x-auth-request-user', 'root'],
      ['x_auth_request_user', 'root'],
      ['x-auth_request-email', 'root@example.com'],
      ['x-auth-request-role', 'Admin'],
      ['accept', '*/*'],
    ]);
    const underscored = ['x_auth_request_user', 'x-auth_request-email'];
    assert.deepEqual(removals.forgedIn(request, underscored, new Set(['x-auth-request-user'])), [
      'x_auth_request_user',
      'x-auth_request-email',
    ]);
    assert.deepEqual(removals.forgedIn(request, underscored), [
      'x-auth-request-user',
      'x_auth_request_user',
      'x-auth_request-email',
    ]);
  });

  it('lists every spelling not set, the same object for the same set', () => {
    const removals = new IdentityRemovals(['x-a-b', 'x-c']);
    assert.deepEqual([...removals.all.names].sort(), [
      'x-a-b',
      'x-a_b',
      'x-c',
      'x_a-b',
      'x_a_b',
      'x_c',
    ]);
    assert.equal(removals.all.joined, removals.all.names.join(', '));
    const setAb = removals.forSet(new Set(['x-a-b']));
    assert.deepEqual([...setAb.names].sort(), ['x-a_b', 'x-c', 'x_a-b', 'x_a_b', 'x_c']);
    assert.equal(removals.forSet(new Set(['x-a-b'])), setAb);
    assert.equal(removals.forSet(new Set()), removals.all);
  });

  it('gives allows that set the same identity headers the same names and removal list', () => {
    const removals = new IdentityRemovals(['x-a-b', 'x-c', 'authorization']);
    const one = removals.setBy([
      ['x-a-b', 'alice'],
      ['x-c', 'zoë'],
    ]);
    assert.deepEqual([...one.names].sort(), ['x-a-b', 'x-c']);
    assert.equal(one.removals, removals.forSet(new Set(['x-a-b', 'x-c'])));
    // Other values, another order: the same objects.
    assert.equal(
      removals.setBy([
        ['x-c', 'bob'],
        ['x-a-b', 'bob'],
      ]),
      one,
    );
    const fewer = removals.setBy([['x-a-b', 'carol']]);
    assert.notEqual(fewer, one);
    assert.deepEqual([...fewer.names], ['x-a-b']);
    assert.deepEqual([...fewer.removals.names].sort(), [
      'authorization',
      'x-a_b',
      'x-c',
      'x_a-b',
      'x_a_b',
      'x_c',
    ]);
    const none = removals.setBy([]);
    assert.equal(none.names.size, 0);
    assert.equal(none.removals, removals.all);
    // A name that is no identity header: its own set each time, the identity ones still not listed.
    const other = removals.setBy([
      ['x-a-b', 'dave'],
      ['x-other', 'v'],
    ]);
    assert.deepEqual([...other.names].sort(), ['x-a-b', 'x-other']);
    assert.equal(other.removals, fewer.removals);
    assert.notEqual(
      removals.setBy([
        ['x-a-b', 'dave'],
        ['x-other', 'v'],
      ]),
      other,
    );
  });

  it('never lists a configured identity header that is set, though it spells another', () => {
    const removals = new IdentityRemovals(['x-user', 'x_user']);
    assert.deepEqual([...removals.forSet(new Set(['x-user', 'x_user'])).names], []);
  });
});
