import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BufferBudget, type BudgetHolder } from '../../src/server/buffer-budget.ts';

function holder(budget: BufferBudget, name: string, evicted: string[]): BudgetHolder {
  const self: BudgetHolder = {
    reserved: 0,
    evict: () => {
      evicted.push(name);
      budget.release(self);
    },
  };
  return self;
}

describe('BufferBudget', () => {
  it('reserves while it fits and gives back on release', () => {
    const budget = new BufferBudget(100);
    const evicted: string[] = [];
    const a = holder(budget, 'a', evicted);
    assert.equal(budget.reserve(a, 60), true);
    assert.equal(budget.used, 60);
    budget.release(a);
    budget.release(a);
    assert.equal(budget.used, 0, 'a second release changes nothing');
    assert.equal(a.reserved, 0);
  });

  it('evicts the largest holders to make room for a smaller newcomer', () => {
    const budget = new BufferBudget(100);
    const evicted: string[] = [];
    const big = holder(budget, 'big', evicted);
    const mid = holder(budget, 'mid', evicted);
    const small = holder(budget, 'small', evicted);
    budget.reserve(big, 50);
    budget.reserve(mid, 40);
    assert.equal(budget.reserve(small, 20), true);
    assert.deepEqual(evicted, ['big']);
    assert.equal(budget.used, 60);
  });

  it('refuses a newcomer at least as large as every holder, evicting nobody', () => {
    const budget = new BufferBudget(100);
    const evicted: string[] = [];
    const a = holder(budget, 'a', evicted);
    const b = holder(budget, 'b', evicted);
    const c = holder(budget, 'c', evicted);
    budget.reserve(a, 50);
    budget.reserve(b, 50);
    assert.equal(budget.reserve(c, 50), false);
    assert.deepEqual(evicted, []);
    assert.equal(c.reserved, 0);
    assert.equal(budget.used, 100);
  });

  it('releases a holder whose evict forgot to', () => {
    const budget = new BufferBudget(10);
    const stubborn: BudgetHolder = { reserved: 0, evict: () => {} };
    const newcomer: BudgetHolder = { reserved: 0, evict: () => {} };
    budget.reserve(stubborn, 10);
    assert.equal(budget.reserve(newcomer, 5), true);
    assert.equal(budget.used, 5);
  });
});
