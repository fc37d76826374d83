/** The replica gate alone: when it asks, what it refuses, and what it logs. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReplicaGate, ShortOfReplicasError } from '../../src/store/replica-gate.ts';
import { captureLog } from '../resilience/log-capture.ts';

function gateWith(replies: number[]) {
  const log = captureLog();
  let probes = 0;
  const gate = createReplicaGate({
    required: 1,
    timeoutMs: 500,
    acknowledged: () => {
      probes++;
      return Promise.resolve(replies.shift() ?? 0);
    },
    log: log.logger,
  });
  return { gate, log, probes: () => probes };
}

describe('replica gate', () => {
  it('lets writes through without asking while the last one was confirmed', async () => {
    const { gate, probes } = gateWith([]);
    await gate.admit('set');
    gate.settled(1);
    await gate.admit('set');
    assert.equal(probes(), 0);
  });

  it('after a short write, refuses while short and lets writes through once replicas hold them', async () => {
    const { gate, log, probes } = gateWith([0, 0, 1]);
    gate.settled(0);
    for (let i = 0; i < 2; i++) {
      await assert.rejects(gate.admit('set'), (error) => {
        assert.ok(error instanceof ShortOfReplicasError);
        assert.match(error.message, /^redis set: 0 of 1 required replicas hold the writes/);
        return true;
      });
    }
    await gate.admit('set');
    assert.equal(probes(), 3);
    await gate.admit('set');
    assert.equal(probes(), 3, 'no probe once enough again');
    const refused = log.matching(/^writes refused/);
    assert.equal(refused.length, 1, 'one warning per episode');
    assert.deepEqual(
      [refused[0]?.['acknowledged'], refused[0]?.['required'], refused[0]?.['level']],
      [0, 1, 'warn'],
    );
    assert.equal(log.matching(/^replicas acknowledge writes again/).length, 1);
  });

  it('concurrent writes share one probe', async () => {
    const { gate, probes } = gateWith([0]);
    gate.settled(0);
    const results = await Promise.allSettled([gate.admit('set'), gate.admit('del')]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
    assert.equal(probes(), 1);
  });

  it('while short, an active check started by a refusal reopens the gate for the next write', async () => {
    const log = captureLog();
    const confirmations: ((n: number) => void)[] = [];
    const gate = createReplicaGate({
      required: 1,
      timeoutMs: 500,
      // The replicas' own reports lag: the passive probe keeps saying 0.
      acknowledged: () => Promise.resolve(0),
      confirm: () => new Promise<number>((resolve) => confirmations.push(resolve)),
      confirmEveryMs: 60_000,
      log: log.logger,
    });
    gate.settled(0);
    assert.equal(confirmations.length, 1, 'a short write starts one check');
    await assert.rejects(gate.admit('set'), ShortOfReplicasError);
    await assert.rejects(gate.admit('set'), ShortOfReplicasError);
    assert.equal(confirmations.length, 1, 'one at a time, and not again within confirmEveryMs');
    confirmations[0]!(1);
    await new Promise((resolve) => setImmediate(resolve));
    await gate.admit('set');
    assert.equal(log.matching(/^replicas acknowledge writes again/).length, 1);
  });

  it('an active check that finds too few replicas, or fails, keeps the gate shut', async () => {
    const log = captureLog();
    const answers: (() => Promise<number>)[] = [
      () => Promise.resolve(0),
      () => Promise.reject(new Error('connection lost')),
      () => Promise.resolve(1),
    ];
    let checks = 0;
    const gate = createReplicaGate({
      required: 2,
      timeoutMs: 500,
      acknowledged: () => Promise.resolve(1),
      confirm: () => answers[checks++]?.() ?? Promise.resolve(0),
      confirmEveryMs: 0,
      log: log.logger,
    });
    gate.settled(1);
    await new Promise((resolve) => setImmediate(resolve));
    await assert.rejects(gate.admit('set'), ShortOfReplicasError);
    await new Promise((resolve) => setImmediate(resolve));
    await assert.rejects(gate.admit('set'), ShortOfReplicasError);
    // One check per refusal here (confirmEveryMs 0): 0, then a failure, then 1 of 2 required.
    assert.equal(checks, 3);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(log.matching(/^replicas acknowledge writes again/).length, 0);
    await assert.rejects(gate.admit('set'), ShortOfReplicasError);
  });
});
