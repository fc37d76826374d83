/** Refuses session secrets that are not secret: known placeholders and keys too predictable to guess-proof a session. */

/** The command every refusal recommends: 48 random bytes, base64 (64 characters). */
export const GENERATE_SECRET_COMMAND = 'openssl rand -base64 48';

/**
 * Words that mark a value someone was meant to replace, or that an attacker tries first.
 * Matched case-insensitively anywhere in the secret. Each is six characters or more, so a
 * random base64 key contains one by chance less than once in ten million keys (and is then
 * simply generated again). `template` words mark a value copied from a template and never
 * replaced: they are refused in every secret, including those a provider issues. The others are
 * refused in session keys only, where we ask for a random key: a provider's client secret or a
 * dev Redis password may honestly contain `secret` or `password`.
 */
const PLACEHOLDER_WORDS: readonly { readonly word: string; readonly template: boolean }[] = [
  { word: 'replace', template: true },
  { word: 'changeme', template: true },
  { word: 'change-me', template: true },
  { word: 'change_me', template: true },
  { word: 'placeholder', template: true },
  { word: 'example', template: false },
  { word: 'secret', template: false },
  { word: 'password', template: false },
  { word: 'passwd', template: false },
  { word: 'insecure', template: false },
  { word: 'default', template: false },
];

/**
 * Shapes of a template value left as it was written, each with how the message describes it
 * (never quoting the value): `<client-secret>`, a `${VAR}` that no interpolation replaced (a
 * `…File` is read as it is, and `$${` stands for a literal `${`), and an ellipsis.
 */
const TEMPLATE_SHAPES: readonly { readonly shape: RegExp; readonly described: string }[] = [
  { shape: /^\s*<[^<>]*>\s*$/, described: 'it is wrapped in <…>' },
  { shape: /\$\{[^}]*\}/, described: 'it holds a literal ${…}' },
  { shape: /^\s*(?:\.{3,}|…)\s*$/, described: 'it is an ellipsis' },
];

/**
 * Below this estimate (bits) a secret is refused. A random hex string of 16 bytes — the
 * weakest honest key the 32-byte minimum lets through — never scored under 72 in a million
 * draws; the weak shapes this guards against (`aaaa…`, `changeme-changeme-…`,
 * `0123456789abcdef0123…`, `abcdef…xyz`) score under 40.
 */
const MIN_ESTIMATED_BITS = 64;

/** Fewer distinct bytes than this is reported as the reason a secret is predictable. */
const FEW_DISTINCT_BYTES = 8;

/** A back-reference shorter than this is not counted as a repetition. */
const MIN_REPEAT = 3;

/** Only this many leading bytes are examined (the search is quadratic); far more than any key. */
const MAX_EXAMINED_BYTES = 1024;

/** Why a secret is predictable, and how much so. */
interface EntropyEstimate {
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
function estimateEntropy(secret: string): EntropyEstimate {
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

/** `it contains "<word>"` for the first placeholder word in `value` (template words only, or any). */
function placeholderWordIn(value: string, templateOnly: boolean): string | undefined {
  const lower = value.toLowerCase();
  const found = PLACEHOLDER_WORDS.find(
    ({ word, template }) => (template || !templateOnly) && lower.includes(word),
  );
  return found === undefined ? undefined : `it contains "${found.word}"`;
}

/**
 * Why `value` is a template value nobody replaced — a template word or shape, described without
 * quoting the value — or `undefined`. Every secret is checked for these, whoever issued it.
 */
function templatePlaceholderIn(value: string): string | undefined {
  return (
    placeholderWordIn(value, true) ??
    TEMPLATE_SHAPES.find(({ shape }) => shape.test(value))?.described
  );
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
  const placeholder = templatePlaceholderIn(secret) ?? placeholderWordIn(secret, false);
  if (placeholder !== undefined) return `is a placeholder, not a secret (${placeholder}): ${fix}`;
  const estimate = estimateEntropy(secret);
  if (estimate.bits < MIN_ESTIMATED_BITS) {
    return `is too predictable to be a key (${describeShape(estimate)}, about ${Math.floor(estimate.bits)} bits of entropy): ${fix}`;
  }
  return undefined;
}

/** Whose value a secret issued elsewhere is: it decides what the refusal asks for. */
export type IssuedSecretKind = 'client secret' | 'Redis password';

const ISSUED_FIX: Readonly<Record<IssuedSecretKind, string>> = {
  'client secret': 'put the client secret the OpenID Provider issued for this client here',
  'Redis password':
    'put the password Redis is configured with here (`requirepass` or the ACL user’s)',
};

/**
 * Why `value` must not be used as a client secret or Redis password, or `undefined`. These are
 * issued elsewhere (the provider, the Redis configuration), so only a template value nobody
 * replaced is refused — as in a shipped Kubernetes Secret — never a short or wordy one: dev
 * setups honestly use `s3cr3t-dev`. The message never quotes the value.
 */
export function issuedSecretProblem(value: string, kind: IssuedSecretKind): string | undefined {
  const template = templatePlaceholderIn(value);
  if (template === undefined) return undefined;
  return `is a placeholder, not the ${kind} (${template}): ${ISSUED_FIX[kind]}`;
}
