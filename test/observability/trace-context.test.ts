/** The W3C Trace Context and B3 parsers: what Envoy, Istio and other tracers send, and what an attacker might. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  parseB3Multi,
  parseB3Single,
  parseTraceparent,
  parseTracestate,
  traceParentOf,
} from '../../src/observability/trace-context.ts';

const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
const spanId = '00f067aa0ba902b7';

describe('parseTraceparent', () => {
  it('reads the W3C example, sampled and not', () => {
    assert.deepEqual(parseTraceparent(`00-${traceId}-${spanId}-01`), {
      traceId,
      spanId,
      sampled: true,
    });
    assert.deepEqual(parseTraceparent(`00-${traceId}-${spanId}-00`), {
      traceId,
      spanId,
      sampled: false,
    });
    // Other flag bits are not "sampled".
    assert.equal(parseTraceparent(`00-${traceId}-${spanId}-02`)?.sampled, false);
    assert.equal(parseTraceparent(`00-${traceId}-${spanId}-03`)?.sampled, true);
  });

  it('reads a later version, ignoring fields it appends after a dash', () => {
    assert.equal(parseTraceparent(`01-${traceId}-${spanId}-01`)?.traceId, traceId);
    assert.equal(
      parseTraceparent(`cc-${traceId}-${spanId}-01-what-the-future-holds`)?.spanId,
      spanId,
    );
    assert.equal(parseTraceparent(`cc-${traceId}-${spanId}-01x`), undefined);
  });

  const malformed: readonly [string, string][] = [
    ['empty', ''],
    ['version ff', `ff-${traceId}-${spanId}-01`],
    ['version 00 with a tail', `00-${traceId}-${spanId}-01-extra`],
    ['upper-case trace id', `00-${traceId.toUpperCase()}-${spanId}-01`],
    ['upper-case span id', `00-${traceId}-${spanId.toUpperCase()}-01`],
    ['upper-case flags', `00-${traceId}-${spanId}-0A`],
    ['upper-case version', `0A-${traceId}-${spanId}-01`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${spanId}-01`],
    ['all-zero span id', `00-${traceId}-${'0'.repeat(16)}-01`],
    ['short trace id', `00-${traceId.slice(1)}-${spanId}-01`],
    ['long span id', `00-${traceId}-${spanId}0-01`],
    ['non-hex', `00-${traceId.replace('4', 'g')}-${spanId}-01`],
    ['underscores for dashes', `00_${traceId}_${spanId}_01`],
    ['spaces', ` 00-${traceId}-${spanId}-01`],
    ['one flag digit', `00-${traceId}-${spanId}-1`],
    ['huge', `00-${traceId}-${spanId}-01-${'a'.repeat(100_000)}`],
    ['non-ASCII', `00-${traceId.slice(0, 31)}é-${spanId}-01`],
    ['two joined by a comma', `00-${traceId}-${spanId}-01,00-${traceId}-${spanId}-01`],
  ];
  for (const [what, header] of malformed) {
    it(`ignores a traceparent that is ${what}`, () => {
      assert.equal(parseTraceparent(header), undefined);
    });
  }
});

describe('parseTracestate', () => {
  it('keeps a well-formed list as it came', () => {
    assert.equal(
      parseTracestate('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'),
      'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
    );
    assert.equal(parseTracestate('tenant@vendor=a b'), 'tenant@vendor=a b');
  });

  it('drops a malformed or oversized one', () => {
    for (const header of [
      '',
      'Upper=1',
      'novalue',
      '=v',
      'k=v\u0000',
      'k=a=b',
      `k=${'v'.repeat(600)}`,
      Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(','),
    ]) {
      assert.equal(parseTracestate(header), undefined, JSON.stringify(header.slice(0, 40)));
    }
  });
});

describe('B3', () => {
  it('reads the single header with and without sampling and parent', () => {
    assert.deepEqual(parseB3Single(`${traceId}-${spanId}-1-05e3ac9a4f6e3b90`), {
      traceId,
      spanId,
      sampled: true,
    });
    assert.deepEqual(parseB3Single(`${traceId}-${spanId}`), {
      traceId,
      spanId,
      sampled: undefined,
    });
    assert.equal(parseB3Single(`${traceId}-${spanId}-0`)?.sampled, false);
    assert.equal(parseB3Single(`${traceId}-${spanId}-d`)?.sampled, true);
  });

  it('pads a 64-bit trace id to 128 bits', () => {
    assert.equal(
      parseB3Single(`a3ce929d0e0e4736-${spanId}-1`)?.traceId,
      `0000000000000000a3ce929d0e0e4736`,
    );
    assert.equal(
      parseB3Multi(
        new Map([
          ['x-b3-traceid', 'a3ce929d0e0e4736'],
          ['x-b3-spanid', spanId],
        ]),
      )?.traceId,
      '0000000000000000a3ce929d0e0e4736',
    );
  });

  it('reads a sampling decision without ids', () => {
    assert.deepEqual(parseB3Single('0'), { traceId: undefined, sampled: false });
    assert.deepEqual(parseB3Single('d'), { traceId: undefined, sampled: true });
    assert.deepEqual(parseB3Multi(new Map([['x-b3-sampled', '0']])), {
      traceId: undefined,
      sampled: false,
    });
  });

  it('reads the multi-header form; x-b3-flags 1 (debug) means sampled', () => {
    const headers = new Map([
      ['x-b3-traceid', traceId],
      ['x-b3-spanid', spanId],
      ['x-b3-sampled', '0'],
      ['x-b3-flags', '1'],
    ]);
    assert.deepEqual(parseB3Multi(headers), { traceId, spanId, sampled: true });
    headers.delete('x-b3-flags');
    assert.equal(parseB3Multi(headers)?.sampled, false);
    headers.set('x-b3-sampled', 'true');
    assert.equal(parseB3Multi(headers)?.sampled, true);
    headers.delete('x-b3-sampled');
    assert.equal(parseB3Multi(headers)?.sampled, undefined);
  });

  const malformedSingle = [
    '',
    'x',
    '2',
    `${traceId.toUpperCase()}-${spanId}-1`,
    `${traceId}-${spanId.toUpperCase()}-1`,
    `${'0'.repeat(32)}-${spanId}-1`,
    `${traceId}-${'0'.repeat(16)}-1`,
    `${traceId}-${spanId}-2`,
    `${traceId}-${spanId}-true`,
    `${traceId}-${spanId}-1-nothex`,
    `${traceId}-${spanId}-1-${spanId}-more`,
    `${traceId.slice(2)}-${spanId}-1`,
    `${traceId}-${spanId}-1-${'a'.repeat(10_000)}`,
    `${traceId}--1`,
  ];
  for (const header of malformedSingle) {
    it(`ignores b3: ${JSON.stringify(header.slice(0, 60))}`, () => {
      assert.equal(parseB3Single(header), undefined);
    });
  }

  it('ignores malformed multi headers', () => {
    for (const [id, span] of [
      [traceId.toUpperCase(), spanId],
      [traceId, 'xyz'],
      ['0'.repeat(32), spanId],
      [traceId, '0'.repeat(16)],
      [`${traceId}0`, spanId],
      ['a'.repeat(100_000), spanId],
    ] as const) {
      assert.equal(
        parseB3Multi(
          new Map([
            ['x-b3-traceid', id],
            ['x-b3-spanid', span],
          ]),
        ),
        undefined,
        `${id.slice(0, 40)} ${span}`,
      );
    }
  });
});

describe('traceParentOf', () => {
  it('prefers a valid traceparent, with its tracestate, over B3', () => {
    const other = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    const parent = traceParentOf(
      new Map([
        ['traceparent', `00-${traceId}-${spanId}-01`],
        ['tracestate', 'rojo=00f067aa0ba902b7'],
        ['b3', `${other}-${spanId}-1`],
      ]),
    );
    assert.deepEqual(parent, {
      traceId,
      spanId,
      sampled: true,
      traceState: 'rojo=00f067aa0ba902b7',
    });
  });

  it('falls back to B3 when the traceparent is malformed, and drops its tracestate', () => {
    const parent = traceParentOf(
      new Map([
        ['traceparent', `ff-${traceId}-${spanId}-01`],
        ['tracestate', 'rojo=1'],
        ['x-b3-traceid', traceId],
        ['x-b3-spanid', spanId],
        ['x-b3-sampled', '1'],
      ]),
    );
    assert.deepEqual(parent, { traceId, spanId, sampled: true });
  });

  it('keeps a valid traceparent when its tracestate is malformed', () => {
    assert.deepEqual(
      traceParentOf(
        new Map([
          ['traceparent', `00-${traceId}-${spanId}-00`],
          ['tracestate', 'BAD'],
        ]),
      ),
      { traceId, spanId, sampled: false },
    );
  });

  it('is undefined without trace headers', () => {
    assert.equal(traceParentOf(new Map([['accept', 'text/html']])), undefined);
  });
});
