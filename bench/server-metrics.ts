/** Reads the server's Check counters from `/metrics`, to prove every measured Check got the expected verdict. */

/** `eoa_checks_total` by `app/verdict/reason`, plus `eoa_check_errors_total` as `errors`. */
export type CheckCounts = ReadonlyMap<string, number>;

/** Fetches and parses the counters from the admin listener at `adminBase`. */
export async function checkCounts(adminBase: string): Promise<CheckCounts> {
  const text = await (await fetch(`${adminBase}/metrics`)).text();
  const counts = new Map<string, number>();
  for (const match of text.matchAll(
    /^eoa_checks_total\{app="([^"]*)",verdict="([^"]*)",reason="([^"]*)"\} (\d+)$/gm,
  )) {
    counts.set(`${match[1]}/${match[2]}/${match[3]}`, Number(match[4]));
  }
  const errors = /^eoa_check_errors_total (\d+)$/m.exec(text)?.[1];
  counts.set('errors', Number(errors ?? 0));
  return counts;
}

/** What changed between two readings, zero entries left out. */
export function countsDelta(before: CheckCounts, after: CheckCounts): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [key, value] of after) {
    const d = value - (before.get(key) ?? 0);
    if (d !== 0) delta.set(key, d);
  }
  return delta;
}
