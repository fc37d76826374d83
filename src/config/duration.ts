/** Parses configuration durations (`90s`, `15m`, `1h30m`, `500ms`, `7d`) into milliseconds. */

const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;
type Unit = keyof typeof UNIT_MS;
/** Units in the only order they may appear, largest first (`1h30m`, never `30m1h`). */
const UNIT_ORDER: readonly Unit[] = ['d', 'h', 'm', 's', 'ms'];

/** What a valid duration looks like, for messages. */
export const DURATION_HINT = 'must be a duration like 500ms, 90s, 15m, 24h or 1h30m';

/**
 * Parses a duration string into whole milliseconds.
 *
 * Grammar: one or more `<integer><unit>` parts with units `d`, `h`, `m`, `s`, `ms`, each unit at
 * most once and largest first. No sign, no decimals, no spaces, no bare numbers (a bare number
 * would leave the unit to guesswork). Returns `undefined` for anything else, including a total
 * beyond `Number.MAX_SAFE_INTEGER`.
 */
export function parseDuration(text: string): number | undefined {
  if (text.length === 0 || text.length > 64) return undefined;
  // A fresh sticky regex per call: a shared one would carry lastIndex between calls.
  const part = /(\d+)(ms|d|h|m|s)/y;
  let total = 0;
  let lastUnit = -1;
  while (part.lastIndex < text.length) {
    const match = part.exec(text);
    if (match === null) return undefined;
    const unit = match[2] as Unit;
    const rank = UNIT_ORDER.indexOf(unit);
    if (rank <= lastUnit) return undefined;
    lastUnit = rank;
    total += Number(match[1]) * UNIT_MS[unit];
  }
  return Number.isSafeInteger(total) ? total : undefined;
}
