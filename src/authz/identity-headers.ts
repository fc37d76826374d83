/** Identity headers for the upstream (SPEC §7), compiled once per app and rendered per request. */
import type { AppConfig } from '../config/schema.ts';
import { compileTemplate, type TemplateContext } from '../config/template.ts';
import { isSafeHeaderValue } from '../header-value.ts';
import type { HeaderPair } from './verdict.ts';

/** Longest header value sent upstream; a longer one is dropped rather than cut mid-value. */
const maxHeaderValueBytes = 8 * 1024;

export interface RenderInput {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly accessToken: string;
  readonly idToken: string | undefined;
  /** How the request was authenticated (`{{ auth.method }}`, `{{ auth.client_id }}`). */
  readonly auth?: NonNullable<TemplateContext['auth']>;
}

export interface IdentityHeaders {
  /** Every header name this app may set upstream (for scrubbing and for the removals). */
  readonly names: readonly string[];
  /**
   * Whether `render` reads the ID token (`passIdToken`, or a template using `tokens.id_token`);
   * when false it ignores `idToken`, and a caller need not fetch one.
   */
  readonly readsIdToken: boolean;
  /**
   * The headers to set. One that renders empty, unsafe (see `isSafeHeaderValue`: a control
   * character, CR/LF, U+2028/U+2029) or too large is left out, never cleaned up; it is among
   * `names`, so the caller's scrubbing still removes a forged copy from the client. Values are
   * Unicode strings; every transport sends them as UTF-8 bytes.
   */
  render(input: RenderInput): HeaderPair[];
}

/** `upstreamHeaders` maps header → template, defaults already merged in. */
export function compileIdentityHeaders(
  options: Pick<AppConfig, 'name' | 'upstreamHeaders' | 'passAccessToken' | 'passIdToken'>,
): IdentityHeaders {
  const compiled = Object.entries(options.upstreamHeaders).map(([name, source]) => {
    const template = compileTemplate(source);
    // The config loader compiled these already; failing here means a loader bug.
    if (!template.ok) throw new Error(`template of header ${name}: ${template.message}`);
    return { name: name.toLowerCase(), template };
  });
  const app = { name: options.name };
  const names = compiled.map((c) => c.name);
  if (options.passAccessToken) names.push('authorization');
  if (options.passIdToken) names.push('x-id-token');
  const readsIdToken =
    options.passIdToken || compiled.some(({ template }) => template.tokens.includes('id_token'));

  return {
    names,
    readsIdToken,
    render(input: RenderInput) {
      const context: TemplateContext = {
        claims: input.claims,
        tokens:
          input.idToken === undefined
            ? { access_token: input.accessToken }
            : { access_token: input.accessToken, id_token: input.idToken },
        app,
        ...(input.auth === undefined ? {} : { auth: input.auth }),
      };
      const set: HeaderPair[] = [];
      for (const { name, template } of compiled) {
        // The template leaves out unsafe values itself (`undefined`).
        const value = template.render(context);
        if (value !== undefined && fits(value)) set.push([name, value]);
      }
      // Tokens are not capped (a token with many groups can pass 8 KiB), only checked.
      if (options.passAccessToken && isSafeHeaderValue(input.accessToken)) {
        set.push(['authorization', `Bearer ${input.accessToken}`]);
      }
      if (options.passIdToken && input.idToken !== undefined && isSafeHeaderValue(input.idToken)) {
        set.push(['x-id-token', input.idToken]);
      }
      return set;
    },
  };
}

/** Whether a rendered value may be sent: not empty, and at most 8 KiB as UTF-8. */
export function fits(value: string): boolean {
  // A UTF-16 unit is at most 3 UTF-8 bytes: only a long value needs counting.
  return (
    value !== '' &&
    (value.length <= maxHeaderValueBytes / 3 || Buffer.byteLength(value) <= maxHeaderValueBytes)
  );
}
