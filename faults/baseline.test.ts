import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertDoneWhen, runRow } from './support/row.ts';

// The same traffic with no fault: what the rig itself costs on this machine. A row's figures
// mean something only when this one passes.

describe('no fault', () => {
  it('20 users browsing two replicas while access tokens fall due', async () => {
    const report = await runRow({
      row: 'No fault (baseline)',
      scenario: '4 s access tokens, refresh.skew 2s; 8 s of browsing',
      rig: { store: 'redis', accessTokenTtlSeconds: 4 },
      async fault() {
        await sleep(3_500);
      },
    });
    assertDoneWhen(report);
  });
});
