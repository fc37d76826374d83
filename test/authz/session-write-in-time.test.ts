/** A refreshed session's write within what is left of the Check's budget. */
import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { writtenInTime } from '../../src/authz/session-step.ts';

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('writtenInTime', () => {
  it('passes a write that settles in time through, and its failure too, without the late line', async () => {
    let late = 0;
    assert.equal(await writtenInTime(Promise.resolve('written'), 50, () => late++), 'written');
    await assert.rejects(
      writtenInTime(Promise.reject(new Error('refused')), 50, () => late++),
      /refused/,
    );
    assert.equal(late, 0);
  });

  it('answers undefined once the wait is over; a write failing after that leaves the late line once', async (t) => {
    t.after(() => mock.timers.reset());
    mock.timers.enable({ apis: ['setTimeout'] });
    let fail: (error: Error) => void = () => undefined;
    const write = new Promise<string>((_resolve, reject) => (fail = reject));
    let late = 0;
    let answer: string | undefined = 'pending';
    const answered = writtenInTime(write, 40, () => late++).then((a) => (answer = a));
    await turn();
    mock.timers.tick(39);
    await turn();
    assert.equal(answer, 'pending', 'still waiting within its bound');
    mock.timers.tick(1);
    await answered;
    assert.equal(answer, undefined, 'served without the write');
    fail(new Error('not replicated'));
    await turn();
    assert.equal(late, 1);
  });

  it('a write that succeeds after the wait leaves no line', async (t) => {
    t.after(() => mock.timers.reset());
    mock.timers.enable({ apis: ['setTimeout'] });
    let succeed: (value: string) => void = () => undefined;
    const write = new Promise<string>((resolve) => (succeed = resolve));
    let late = 0;
    const answered = writtenInTime(write, 10, () => late++);
    mock.timers.tick(10);
    assert.equal(await answered, undefined);
    succeed('written');
    await turn();
    assert.equal(late, 0);
  });
});
