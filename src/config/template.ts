/** Identity-header templates: `{{ claims.email }}`-style expressions compiled once, rendered per request. */
import { isSafeHeaderValue } from '../header-value.ts';
import {
  addressNames,
  claimAddressProblem,
  compileClaimPath,
  type ClaimPath,
} from './claim-address.ts';

/** What a template can read when it is rendered. */
export interface TemplateContext {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly tokens: { readonly access_token?: string; readonly id_token?: string };
  readonly app: { readonly name: string };
  /**
   * How the request was authenticated: `method` (`session` or `bearer`) and `client_id` (for a
   * session the app's own client; for a bearer token its `azp`, else its `client_id` claim).
   * Absent, both render empty.
   */
  readonly auth?: { readonly method: string; readonly clientId: string };
}

/** A compiled template. */
export interface CompiledTemplate {
  readonly ok: true;
  /** The tokens the template reads (`tokens.access_token`, `tokens.id_token`). */
  readonly tokens: readonly TokenName[];
  /**
   * Renders the template. Arrays render comma-joined, objects as JSON, numbers and booleans as
   * text, missing claims and `null` as the empty string.
   *
   * Returns `undefined` when the result is not a safe header value (see
   * {@link isSafeHeaderValue}: a control character, CR, LF, NUL, U+2028/U+2029, a lone
   * surrogate), starts or ends with a space, or joins an array item that holds a `,` or starts
   * or ends with a space: such a value must never reach a header, so the caller drops the
   * header instead of sending one an upstream reads as another value.
   */
  render(ctx: TemplateContext): string | undefined;
}

/** A template that did not compile; `message` names what is wrong, never a value. */
export interface TemplateError {
  readonly ok: false;
  readonly message: string;
}

/** A token a template can read. */
export type TokenName = 'access_token' | 'id_token';

type Part =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'claim'; readonly path: ClaimPath }
  | { readonly kind: 'token'; readonly name: TokenName }
  | { readonly kind: 'app-name' }
  | { readonly kind: 'auth'; readonly name: 'method' | 'clientId' };

const TOKEN_NAMES = new Set(['access_token', 'id_token']);
const ROOT = /^([A-Za-z_$][\w$]*)/;

/**
 * Compiles an identity-header template.
 *
 * Syntax: literal text with `{{ expr }}` placeholders, where `expr` is one of
 * `claims.<claim address>` or `claims[…]<…>` (the claim address syntax and reading of the
 * authorization rules, see {@link compileClaimPath}: `claims.realm_access.roles`,
 * `claims.https://example.com/roles`, `claims["my claim"]`), `tokens.access_token`,
 * `tokens.id_token`, `app.name`, `auth.method` (`session` or `bearer`) or `auth.client_id`
 * (see {@link TemplateContext.auth}). Anything else — an unknown root, an unknown token, an
 * unclosed `{{`, a malformed address — is a compile error, so a typo is caught at config load
 * rather than rendering an empty header forever.
 */
export function compileTemplate(source: string): CompiledTemplate | TemplateError {
  if (!isSafeHeaderValue(source)) {
    return fail('must not contain control characters, U+2028/U+2029 or lone surrogates');
  }
  const parts: Part[] = [];
  let rest = source;
  while (rest.length > 0) {
    const open = rest.indexOf('{{');
    if (open === -1) {
      parts.push({ kind: 'text', text: rest });
      break;
    }
    if (open > 0) parts.push({ kind: 'text', text: rest.slice(0, open) });
    const close = rest.indexOf('}}', open + 2);
    if (close === -1) return fail('has an unclosed "{{"');
    const parsed = parseExpression(rest.slice(open + 2, close).trim());
    if (typeof parsed === 'string') return fail(parsed);
    parts.push(parsed);
    rest = rest.slice(close + 2);
  }
  const tokens = new Set(parts.flatMap((part) => (part.kind === 'token' ? [part.name] : [])));
  return { ok: true, tokens: [...tokens], render: (ctx) => renderParts(parts, ctx) };
}

function fail(message: string): TemplateError {
  return { ok: false, message };
}

function parseExpression(expr: string): Part | string {
  const root = ROOT.exec(expr);
  if (root === null) return `has an empty or invalid expression "{{ ${expr} }}"`;
  const rootName = root[1] ?? '';
  const rest = expr.slice(rootName.length);
  // What follows the root: `.name…` or `[…]…`, a claim address either way.
  const address = rest.startsWith('.') ? rest.slice(1) : rest.startsWith('[') ? rest : undefined;
  if (address === undefined && rest !== '') return `has an invalid expression "{{ ${expr} }}"`;
  const names = address === undefined ? [] : (addressNames(address) ?? []);
  const only = names.length === 1 ? names[0] : undefined;
  switch (rootName) {
    case 'claims': {
      if (address === undefined) return 'must name a claim: claims.<name>';
      const problem = claimAddressProblem(address);
      if (problem !== undefined) return `has an invalid expression "{{ ${expr} }}": ${problem}`;
      return { kind: 'claim', path: compileClaimPath(address) };
    }
    case 'tokens':
      if (only === undefined || !TOKEN_NAMES.has(only)) {
        return 'can only use tokens.access_token or tokens.id_token';
      }
      return { kind: 'token', name: only as TokenName };
    case 'app':
      if (only !== 'name') return 'can only use app.name';
      return { kind: 'app-name' };
    case 'auth':
      if (only === 'method') return { kind: 'auth', name: 'method' };
      if (only === 'client_id') return { kind: 'auth', name: 'clientId' };
      return 'can only use auth.method or auth.client_id';
    default:
      return `uses unknown variable "${rootName}" (known: claims, tokens, app, auth)`;
  }
}

function renderParts(parts: readonly Part[], ctx: TemplateContext): string | undefined {
  let out = '';
  for (const part of parts) {
    const value = renderPart(part, ctx);
    if (value === undefined) return undefined;
    out += value;
  }
  return checked(out);
}

/**
 * The rendered value, or `undefined` when it must be left out: unsafe (see
 * {@link isSafeHeaderValue}), or starting or ending with a space. Parsers drop a field value's
 * leading and trailing whitespace (RFC 9110 §5.5; RFC 9113 §8.2.1 makes it malformed), so a
 * user's `admin ` would reach the upstream as `admin`, another user's identity.
 */
function checked(value: string): string | undefined {
  if (value.startsWith(' ') || value.endsWith(' ')) return undefined;
  return isSafeHeaderValue(value) ? value : undefined;
}

function renderPart(part: Part, ctx: TemplateContext): string | undefined {
  switch (part.kind) {
    case 'text':
      return part.text;
    case 'claim':
      return formatValue(part.path.read(ctx.claims));
    case 'token':
      return ctx.tokens[part.name] ?? '';
    case 'app-name':
      return ctx.app.name;
    case 'auth':
      return ctx.auth?.[part.name] ?? '';
  }
}

/**
 * `undefined` for an array with an element that holds a `,` or starts or ends with a space:
 * upstreams split a comma-joined list on `,` and trim each item (RFC 9110 §5.6.1), so a group
 * named `x,admins` or ` admins` would reach them as membership of `admins`.
 */
function formatValue(value: unknown): string | undefined {
  if (Array.isArray(value)) {
    let out = '';
    for (let i = 0; i < value.length; i++) {
      const item = formatScalar(value[i]);
      if (item.includes(',') || item.startsWith(' ') || item.endsWith(' ')) return undefined;
      if (i > 0) out += ',';
      out += item;
    }
    return out;
  }
  return formatScalar(value);
}

function formatScalar(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'object':
      return value === null ? '' : JSON.stringify(value);
    default:
      return '';
  }
}
