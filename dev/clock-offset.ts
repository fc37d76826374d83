/**
 * A preload for test processes whose clock must be off: `node --import dist/dev/clock-offset.js`
 * with `EOA_TEST_CLOCK_OFFSET_MS` shifts `Date.now()` and `new Date()` by that many milliseconds,
 * as a machine whose clock drifted would. Monotonic time (`performance.now`) is left alone.
 */
const offsetMs = Number(process.env['EOA_TEST_CLOCK_OFFSET_MS'] ?? '0');
if (!Number.isFinite(offsetMs)) throw new Error('EOA_TEST_CLOCK_OFFSET_MS must be a number');

const RealDate = Date;
const shiftedNow = (): number => RealDate.now() + offsetMs;

/** `Date` whose current time is shifted; dates built from a value are untouched. */
class ShiftedDate extends RealDate {
  constructor(...args: unknown[]) {
    if (args.length === 0) super(shiftedNow());
    else super(...(args as [string | number]));
  }

  static override now(): number {
    return shiftedNow();
  }
}

globalThis.Date = ShiftedDate as DateConstructor;
