/** Bytes of heap per cached session stay within budget (codec timings live in `bench/`). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  cookieSessionOptions,
  jarFrom,
  jwtTokenSession,
  opaqueTokenSession,
} from '../../bench/session-profiles.ts';
import { SessionManager } from '../../src/session/session-manager.ts';

function heapUsedAfterGc(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('decoded-session cache memory', () => {
  it('holds a typical session in at most 2 KiB of heap', async (t) => {
    const n = 10_000;
    const expiresAt = Date.now() + 3_600_000;
    const manager = new SessionManager(cookieSessionOptions);
    const writer = new SessionManager(cookieSessionOptions);
    for (const [name, make] of [
      ['opaque', opaqueTokenSession],
      ['jwt', jwtTokenSession],
    ] as const) {
      const cookies: Map<string, string>[] = [];
      for (let i = 0; i < n; i++) {
        const data = make(expiresAt);
        const { setCookie } = await writer.create(
          { ...data, sub: `${data.sub}-${i}` },
          new Map(),
          true,
        );
        cookies.push(jarFrom(setCookie));
      }
      const before = heapUsedAfterGc();
      for (const jar of cookies) assert.equal((await manager.load(jar, true)).kind, 'valid');
      const perEntry = (heapUsedAfterGc() - before) / n;
      t.diagnostic(`${name}: ${Math.round(perEntry)} bytes of heap per cached session`);
      // Target 2 KiB for a typical session (SPEC §13); 10% slack absorbs heap-measurement noise.
      // JWT-heavy sessions are larger because the token strings alone exceed 2 KiB.
      if (name === 'opaque') assert.ok(perEntry <= 2_048 * 1.1, `${perEntry} > 2 KiB`);
    }
  });
});
