import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BufferBudget } from '../../src/server/buffer-budget.ts';
import { RequestMessage, type MessageProblem } from '../../src/server/request-message.ts';

function frameOf(message: Buffer, declared = message.length): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(declared, 1);
  return Buffer.concat([head, message]);
}

const noEviction = (): void => assert.fail('not evicted');

describe('RequestMessage', () => {
  it('keeps a frame that arrives whole as that very chunk, and releases it when finished', () => {
    const budget = new BufferBudget(1024);
    const reader = new RequestMessage(budget, 100, noEviction);
    const frame = frameOf(Buffer.from('hello'));
    assert.equal(reader.add(frame), undefined);
    assert.equal(budget.used, 10);
    assert.equal(reader.finish(), frame);
    assert.equal(budget.used, 0);
  });

  it('joins a frame split anywhere, even inside the prefix', () => {
    const budget = new BufferBudget(1024);
    const reader = new RequestMessage(budget, 100, noEviction);
    const frame = frameOf(Buffer.from('a message in pieces'));
    for (const [start, end] of [
      [0, 2],
      [2, 7],
      [7, 8],
      [8, frame.length],
    ] as const)
      assert.equal(reader.add(frame.subarray(start, end)), undefined);
    assert.deepEqual(reader.finish(), frame);
  });

  it('refuses a declared length over the cap from the prefix alone, holding nothing', () => {
    const budget = new BufferBudget(1024);
    const reader = new RequestMessage(budget, 100, noEviction);
    const problem = reader.add(frameOf(Buffer.alloc(0), 101));
    assert.equal(problem?.code, 8);
    assert.equal(budget.used, 0);
  });

  it('refuses bytes past the declared message', () => {
    const reader = new RequestMessage(new BufferBudget(1024), 100, noEviction);
    assert.equal(reader.add(frameOf(Buffer.from('ab'), 3)), undefined);
    assert.equal(reader.add(Buffer.from('cd'))?.code, 12);
  });

  it('refuses a second message in the first chunk, or after a frame that came whole', () => {
    const budget = new BufferBudget(1024);
    const two = new RequestMessage(budget, 100, noEviction);
    const twoFrames = Buffer.concat([frameOf(Buffer.from('ab')), frameOf(Buffer.from('c'))]);
    assert.equal(two.add(twoFrames)?.code, 12);
    assert.equal(budget.used, 0, 'nothing reserved for it');
    const whole = new RequestMessage(budget, 100, noEviction);
    assert.equal(whole.add(frameOf(Buffer.from('ab'))), undefined);
    assert.equal(whole.add(Buffer.from([0]))?.code, 12);
    assert.equal(budget.used, 0, 'the reservation is released');
  });

  it('reports a truncated message and a body too short for a prefix', () => {
    const truncated = new RequestMessage(new BufferBudget(1024), 100, noEviction);
    truncated.add(frameOf(Buffer.from('ab'), 10));
    assert.equal((truncated.finish() as MessageProblem).details, 'request message truncated');
    const empty = new RequestMessage(new BufferBudget(1024), 100, noEviction);
    empty.add(Buffer.from([0, 0]));
    assert.equal((empty.finish() as MessageProblem).details, 'request body is not a gRPC message');
  });

  it('reserves the declared length up front and, when evicted, ends its call', () => {
    const budget = new BufferBudget(150);
    const ended: MessageProblem[] = [];
    const large = new RequestMessage(budget, 200, (problem) => ended.push(problem));
    assert.equal(large.add(frameOf(Buffer.alloc(10), 120)), undefined);
    assert.equal(budget.used, 125);
    const small = new RequestMessage(budget, 200, noEviction);
    assert.equal(small.add(frameOf(Buffer.alloc(40))), undefined);
    assert.equal(ended[0]?.code, 8, 'the large one was ended with RESOURCE_EXHAUSTED');
    assert.equal(budget.used, 45);
    assert.equal(large.add(Buffer.alloc(10)), undefined, 'bytes after eviction are dropped');
    assert.equal(budget.used, 45);
  });
});
