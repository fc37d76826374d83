/** Refuses session secrets that are not secret: known placeholders and keys too predictable to guess-proof a session. */

/** The command every refusal recommends: 48 random bytes, base64 (64 characters). */
export const GENERATE_SECRET_COMMAND = 'openssl rand -base64 48';

/**
 * Words that mark a value someone was meant to replace, or that an attacker tries first.
 * Matched case-insensitively anywhere in the secret. Each is six characters or more, so a
 * random base64 key contains one by chance less than once in ten million keys (and is then
 * simply generated again).
 */
const PLACEHOLDER_WORDS: readonly string[] = [
  'replace',
  'changeme',
  'change-me',
  'change_me',
  'example',
  'secret',
  'password',
  'passwd',
  'placeholder',
  'insecure',
  'default',
];

/**
 * Below this estimate (bits) a secret is refused. A random hex string of 16 bytes — the
 * weakest honest key the 32-byte minimum lets through — never scored under 72 in a million
 * draws; the weak shapes this guards against (`aaaa…`, `changeme-changeme-…`,
 * `0123456789abcdef0123…`, `abcdef…xyz`) score under 40.
 */
export const MIN_ESTIMATED_BITS = 64;

/** Fewer distinct bytes than this is reported as the reason a secret is predictable. */
const FEW_DISTINCT_BYTES = 8;

/** A back-reference shorter than this is not counted as a repetition. */
const MIN_REPEAT = 3;

/** Only this many leading bytes are examined (the search is quadratic); far more than any key. */
const MAX_EXAMINED_BYTES = 1024;

/** Why a secret is predictable, and how much so. */
export interface EntropyEstimate {
  /** Estimated bits an attacker who knows these shapes must guess. */
  readonly bits: number;
  readonly distinctBytes: number;
  /** Bytes that repeat an earlier stretch of the secret. */
  readonly repeatedBytes: number;
  /** Bytes that continue a run: the same byte again, or the same step as before (`abc`, `aceg`). */
  readonly runBytes: number;
}

/**
 * Estimates how many bits of a secret an attacker must guess, byte by byte, in the manner of a
 * compressor that knows three shapes: a stretch seen before costs its position and length; a
 * byte that repeats the previous one, or keeps the previous step, costs nothing; any other byte
 * costs log2 of the number of distinct bytes in the secret. It is an upper bound for the
 * shapes it knows and proves nothing about the rest (a sentence still scores high): it refuses
 * what is obviously not random, and the message says how to generate a key that is.
 */
export function estimateEntropy(secret: string): EntropyEstimate {
  const bytes = Buffer.from(secret, 'utf8').subarray(0, MAX_EXAMINED_BYTES);
  const n = bytes.length;
  const distinctBytes = new Set(bytes).size;
  const symbolBits = Math.log2(Math.max(distinctBytes, 2));
  let bits = 0;
  let repeatedBytes = 0;
  let runBytes = 0;
  for (let i = 0; i < n;) {
    const repeat = longestEarlierMatch(bytes, i);
    if (repeat >= MIN_REPEAT) {
      bits += Math.log2(i) + Math.log2(repeat);
      repeatedBytes += repeat;
      i += repeat;
      continue;
    }
    const step = i >= 1 ? bytes[i]! - bytes[i - 1]! : undefined;
    const previousStep = i >= 2 ? bytes[i - 1]! - bytes[i - 2]! : undefined;
    if (step === 0 || (step !== undefined && step === previousStep)) runBytes += 1;
    else bits += symbolBits;
    i += 1;
  }
  return { bits, distinctBytes, repeatedBytes, runBytes };
}

/** Length of the longest stretch starting at `at` that also starts earlier (may overlap). */
function longestEarlierMatch(bytes: Buffer, at: number): number {
  let best = 0;
  for (let from = 0; from < at; from++) {
    let length = 0;
    while (at + length < bytes.length && bytes[from + length] === bytes[at + length]) length++;
    if (length > best) best = length;
  }
  return best;
}

/** The placeholder word a secret contains, as written in the list, or `undefined`. */
export function placeholderIn(secret: string): string | undefined {
  const lower = secret.toLowerCase();
  return PLACEHOLDER_WORDS.find((word) => lower.includes(word));
}

function describeShape(estimate: EntropyEstimate): string {
  if (estimate.distinctBytes < FEW_DISTINCT_BYTES) {
    return `only ${estimate.distinctBytes} distinct ${estimate.distinctBytes === 1 ? 'character' : 'characters'}`;
  }
  return estimate.repeatedBytes >= estimate.runBytes
    ? 'a repeated pattern'
    : 'runs of repeated or consecutive characters';
}

/**
 * Why `secret` must not be used as a session key, or `undefined` when nothing is wrong with it
 * that can be seen. Anyone who knows a session key can seal a session for any user with any
 * groups, so a placeholder from a shipped manifest or a guessable key is refused at
 * `check-config`, at start and on reload. Length is checked elsewhere; the message never
 * quotes the secret.
 */
export function sessionSecretProblem(secret: string): string | undefined {
  const fix = `generate one with \`${GENERATE_SECRET_COMMAND}\``;
  const word = placeholderIn(secret);
  if (word !== undefined) {
    return `is a placeholder, not a secret (it contains "${word}"): ${fix}`;
  }
  const estimate = estimateEntropy(secret);
  if (estimate.bits < MIN_ESTIMATED_BITS) {
    return `is too predictable to be a key (${describeShape(estimate)}, about ${Math.floor(estimate.bits)} bits of entropy): ${fix}`;
  }
  return undefined;
}
