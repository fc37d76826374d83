/** The cold start's phases are read from the server's own `started` log line, and reported. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startupPhasesOf } from '../../bench/cold-start.ts';
import { renderColdStartLoaded } from '../../bench/report.ts';

describe('bench cold start phases', () => {
  it('takes the phases from the started line among other output', () => {
    const stdout = [
      'oidc-provider WARNING: something',
      '{"level":30,"msg":"serving","ports":{"grpc":1}}',
      'not json but mentions "startupMs" anyway {',
      '{"level":30,"startupMs":{"modules":612,"config":655,"listening":790},"msg":"started"}',
      '',
    ].join('\n');
    assert.deepEqual(startupPhasesOf(stdout), { modules: 612, config: 655, listening: 790 });
  });

  it('gives none for a server that logged no phases, or logged them wrong', () => {
    assert.equal(startupPhasesOf(''), undefined);
    assert.equal(startupPhasesOf('{"msg":"serving"}\n'), undefined);
    assert.equal(
      startupPhasesOf('{"startupMs":{"modules":"612","config":655,"listening":790}}\n'),
      undefined,
    );
  });

  it('reports the median of each phase, and a run without phases by its total only', () => {
    const lines = renderColdStartLoaded([
      { modules: 600, config: 650, listening: 800, serving: 900 },
      { modules: 700, config: 750, listening: 850, serving: 1_100 },
      { modules: 500, config: 560, listening: 700, serving: 800 },
      { serving: 2_000 },
    ]).join('\n');
    // Phases over the three runs that logged them; SERVING over all four (the report's median).
    assert.match(lines, /\| 600 \| 650 \| 800 \| 1100 \|/);
    assert.match(lines, /–\/–\/–\/2000/);
    assert.deepEqual(renderColdStartLoaded([]), []);
  });
});
