/** The one test for "a JSON object": what parsed claims, config documents and stored records are checked with. */

/** True for an object that is neither `null` nor an array: a JSON object, safe to index by name. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
