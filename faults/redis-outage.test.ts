import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertDoneWhen, runRow } from './support/row.ts';

// A standalone redis-server shared by two replicas goes away (SIGKILL, back empty as a
// crashed server without persistence is) or hangs (SIGSTOP: connections open, no replies) while
// 20 users browse. With 4 s access tokens refreshed in their last 2 s, every session falls due
// during the outage.

describe('Redis outages', () => {
  it('Redis SIGKILLed for 8 s while access tokens fall due', async () => {
    const report = await runRow({
      row: 'Redis SIGKILLed 8 s, tokens fall due',
      scenario:
        'redis-server SIGKILLed, restarted empty 8 s later; 4 s access tokens, refresh.skew 2s',
      rig: { store: 'redis', accessTokenTtlSeconds: 4 },
      async fault({ rig }) {
        await rig.redis!.kill('SIGKILL');
        await sleep(8_000);
        await rig.redis!.restart();
      },
    });
    assertDoneWhen(report);
  });

  it('Redis hung (SIGSTOP 6 s), cookie sessions with fresh tokens', async () => {
    const report = await runRow({
      row: 'Redis hung 6 s, cookie sessions',
      scenario: 'redis-server SIGSTOPped for 6 s then SIGCONTed; access tokens valid throughout',
      rig: { store: 'redis' },
      async fault({ rig }) {
        await rig.redis!.kill('SIGSTOP');
        await sleep(6_000);
        await rig.redis!.kill('SIGCONT');
      },
    });
    assertDoneWhen(report);
  });

  it('Redis hung (SIGSTOP 6 s) while access tokens fall due', async () => {
    const report = await runRow({
      row: 'Redis hung 6 s, refresh due',
      scenario:
        'redis-server SIGSTOPped for 6 s then SIGCONTed; 4 s access tokens, refresh.skew 2s',
      rig: { store: 'redis', accessTokenTtlSeconds: 4 },
      async fault({ rig }) {
        await rig.redis!.kill('SIGSTOP');
        await sleep(6_000);
        await rig.redis!.kill('SIGCONT');
      },
    });
    assertDoneWhen(report);
  });
});
