/** A minimal browser cookie jar for tests: applies `set-cookie` lines as a browser would. */

/** Applies lines to `jar` (name → value): `Max-Age=0` deletes, anything else sets. */
export function applySetCookie(
  jar: Map<string, string>,
  lines: readonly string[],
): Map<string, string> {
  for (const line of lines) {
    const [pair = ''] = line.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (/;\s*Max-Age=0(;|$)/i.test(line)) jar.delete(name);
    else jar.set(name, value);
  }
  return jar;
}

/** The attributes of a `set-cookie` line, lower-cased names. */
export function attributesOf(line: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const part of line.split(';').slice(1)) {
    const [name = '', value = ''] = part.trim().split('=');
    attributes.set(name.toLowerCase(), value);
  }
  return attributes;
}

/** The cookie name a `set-cookie` line sets. */
export function nameOf(line: string): string {
  return line.slice(0, line.indexOf('='));
}
