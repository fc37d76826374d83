/** A scripted browser that signs in and out through the OpenID Provider's own HTML pages. */

interface StoredCookie {
  readonly name: string;
  readonly value: string;
  readonly host: string;
  readonly path: string;
  readonly expiresAt: number;
}

/** A tiny RFC 6265 cookie jar: host-only cookies, path matching, expiry. */
export class CookieJar {
  readonly #cookies = new Map<string, StoredCookie>();

  /** Stores every `set-cookie` of a response received from `url`. */
  store(url: URL, response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = url.pathname.slice(0, url.pathname.lastIndexOf('/') + 1) || '/';
      let expiresAt = Number.POSITIVE_INFINITY;
      for (const attribute of attributes) {
        const [rawKey = '', ...rest] = attribute.split('=');
        const key = rawKey.trim().toLowerCase();
        const attrValue = rest.join('=').trim();
        if (key === 'path' && attrValue.startsWith('/')) path = attrValue;
        else if (key === 'max-age') expiresAt = Date.now() + Number(attrValue) * 1000;
        else if (key === 'expires' && expiresAt === Number.POSITIVE_INFINITY) {
          expiresAt = Date.parse(attrValue);
        }
      }
      const key = `${url.host}|${path}|${name}`;
      if (expiresAt <= Date.now() || value === '') this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, host: url.host, path, expiresAt });
    }
  }

  /** The `cookie` header a browser would send to `url`, or undefined when there is none. */
  headerFor(url: URL): string | undefined {
    const now = Date.now();
    const matching = [...this.#cookies.values()]
      .filter(
        (c) =>
          c.host === url.host &&
          c.expiresAt > now &&
          (url.pathname === c.path ||
            url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)),
      )
      .sort((a, b) => b.path.length - a.path.length);
    return matching.length === 0
      ? undefined
      : matching.map((c) => `${c.name}=${c.value}`).join('; ');
  }
}

/** One HTML form as a browser would submit it. */
interface ParsedForm {
  readonly action: string;
  readonly method: string;
  readonly id: string | undefined;
  readonly fields: URLSearchParams;
}

const ENTITIES: Readonly<Record<string, string>> = {
  '&amp;': '&',
  '&lt;': '<',
  '&gt;': '>',
  '&quot;': '"',
  '&#39;': "'",
  '&#x27;': "'",
  '&#x2F;': '/',
};

function unescapeHtml(value: string): string {
  return value.replace(/&(?:amp|lt|gt|quot|#39|#x27|#x2F);/g, (m) => ENTITIES[m] ?? m);
}

function attributeOf(tag: string, name: string): string | undefined {
  const match = new RegExp(`\\s${name}="([^"]*)"`, 'i').exec(tag);
  return match?.[1] === undefined ? undefined : unescapeHtml(match[1]);
}

/** Finds the first form, with its hidden inputs and any submit buttons bound to it by id. */
function parseForm(html: string): ParsedForm | undefined {
  const formMatch = /<form\b[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (formMatch === null) return undefined;
  const tag = /<form\b[^>]*>/i.exec(formMatch[0])?.[0] ?? '';
  const fields = new URLSearchParams();
  for (const input of formMatch[1]?.match(/<input\b[^>]*>/gi) ?? []) {
    const name = attributeOf(input, 'name');
    const type = attributeOf(input, 'type') ?? 'text';
    if (name !== undefined && type === 'hidden')
      fields.set(name, attributeOf(input, 'value') ?? '');
  }
  return {
    action: attributeOf(tag, 'action') ?? '',
    method: (attributeOf(tag, 'method') ?? 'get').toLowerCase(),
    id: attributeOf(tag, 'id'),
    fields,
  };
}

/** The first submit button outside or inside the form whose `name=value` a click would send. */
function autofocusButton(html: string, formId: string | undefined): [string, string] | undefined {
  for (const button of html.match(/<button\b[^>]*>/gi) ?? []) {
    if (!/\sautofocus\b/i.test(button)) continue;
    const form = attributeOf(button, 'form');
    if (formId !== undefined && form !== undefined && form !== formId) continue;
    const name = attributeOf(button, 'name');
    if (name !== undefined) return [name, attributeOf(button, 'value') ?? ''];
  }
  return undefined;
}

export interface BrowserStepTiming {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly ms: number;
}

export interface ScriptedLoginOptions {
  readonly login: string;
  readonly password?: string;
  /** Reuse a jar to keep the provider session between calls (SSO, logout). */
  readonly jar?: CookieJar;
  /** Stop after this many requests; default 20. */
  readonly maxSteps?: number;
}

export interface ScriptedLoginResult {
  /** Where the provider sent the browser: the client's redirect URI with `code` and `state`. */
  readonly callbackUrl: URL;
  readonly jar: CookieJar;
  readonly steps: readonly BrowserStepTiming[];
}

/** A response the script did not expect, with a short excerpt of the page for diagnosis. */
export class ScriptedBrowserError extends Error {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.name = 'ScriptedBrowserError';
    this.status = status;
  }
}

interface Step {
  readonly url: URL;
  readonly response: Response;
  readonly body: string;
}

async function request(
  jar: CookieJar,
  url: URL,
  steps: BrowserStepTiming[],
  init: { method: 'GET' | 'POST'; form?: URLSearchParams },
): Promise<Step> {
  const headers: Record<string, string> = { accept: 'text/html' };
  const cookie = jar.headerFor(url);
  if (cookie !== undefined) headers['cookie'] = cookie;
  if (init.form !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
  const started = performance.now();
  const response = await fetch(url, {
    method: init.method,
    headers,
    redirect: 'manual',
    ...(init.form === undefined ? {} : { body: init.form.toString() }),
  });
  const body = await response.text();
  steps.push({
    method: init.method,
    path: url.pathname,
    status: response.status,
    ms: Math.round((performance.now() - started) * 10) / 10,
  });
  jar.store(url, response);
  return { url, response, body };
}

function sameEndpoint(a: URL, b: URL): boolean {
  return a.origin === b.origin && a.pathname === b.pathname;
}

/**
 * Walks the provider's pages like a browser: GET the authorization URL, follow redirects, fill in
 * the sign-in form, confirm consent if asked. Returns the redirect to the client's redirect URI
 * without requesting it, so the test can hand it to the server under test.
 */
export async function scriptedLogin(
  authorizationUrl: string | URL,
  options: ScriptedLoginOptions,
): Promise<ScriptedLoginResult> {
  const jar = options.jar ?? new CookieJar();
  const steps: BrowserStepTiming[] = [];
  const start = new URL(authorizationUrl);
  const redirectParam = start.searchParams.get('redirect_uri');
  // A pushed request (RFC 9126) carries only `request_uri`: the client's redirect URI is then
  // the first place off the provider's origin it sends the browser to.
  const redirectUri = redirectParam === null ? undefined : new URL(redirectParam);
  const isCallback = (target: URL): boolean =>
    redirectUri === undefined ? target.origin !== start.origin : sameEndpoint(target, redirectUri);

  let next: { url: URL; method: 'GET' | 'POST'; form?: URLSearchParams } = {
    url: start,
    method: 'GET',
  };
  for (let i = 0; i < (options.maxSteps ?? 20); i += 1) {
    const step = await request(jar, next.url, steps, next);
    const { response, body } = step;
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location !== null) {
      const target = new URL(location, step.url);
      if (isCallback(target)) return { callbackUrl: target, jar, steps };
      next = { url: target, method: 'GET' };
      continue;
    }
    if (response.status !== 200) {
      throw new ScriptedBrowserError(
        `provider answered ${response.status} at ${step.url.pathname}: ${body.slice(0, 300)}`,
        response.status,
      );
    }
    const form = parseForm(body);
    if (form === undefined) {
      throw new ScriptedBrowserError(`no form on ${step.url.pathname}`, response.status);
    }
    const prompt = form.fields.get('prompt');
    if (prompt === 'login') {
      form.fields.set('login', options.login);
      form.fields.set('password', options.password ?? 'any-password');
    }
    const target = new URL(form.action, step.url);
    if (form.method === 'post') next = { url: target, method: 'POST', form: form.fields };
    else {
      target.search = form.fields.toString();
      next = { url: target, method: 'GET' };
    }
  }
  throw new Error('login did not reach the redirect URI');
}

export interface ScriptedLogoutResult {
  /** Where the provider sent the browser last (the post-logout redirect URI, or its own page). */
  readonly finalUrl: URL;
  /** True when the provider's logout confirmation page was shown and confirmed. */
  readonly confirmed: boolean;
  readonly steps: readonly BrowserStepTiming[];
}

/**
 * Opens the provider's end-session URL, confirms "sign me out" if asked (or lets the
 * auto-submitting form post), and returns the redirect that follows without requesting it when
 * it leaves the provider.
 */
export async function scriptedLogout(
  endSessionUrl: string | URL,
  options: { jar?: CookieJar; maxSteps?: number } = {},
): Promise<ScriptedLogoutResult> {
  const jar = options.jar ?? new CookieJar();
  const steps: BrowserStepTiming[] = [];
  const start = new URL(endSessionUrl);
  let confirmed = false;
  let next: { url: URL; method: 'GET' | 'POST'; form?: URLSearchParams } = {
    url: start,
    method: 'GET',
  };
  for (let i = 0; i < (options.maxSteps ?? 10); i += 1) {
    const step = await request(jar, next.url, steps, next);
    const { response, body } = step;
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location !== null) {
      const target = new URL(location, step.url);
      if (target.origin !== start.origin) return { finalUrl: target, confirmed, steps };
      next = { url: target, method: 'GET' };
      continue;
    }
    if (response.status !== 200) {
      throw new ScriptedBrowserError(
        `provider answered ${response.status} at ${step.url.pathname}: ${body.slice(0, 300)}`,
        response.status,
      );
    }
    const form = parseForm(body);
    if (form === undefined) return { finalUrl: step.url, confirmed, steps };
    const button = autofocusButton(body, form.id);
    if (button !== undefined) {
      form.fields.set(button[0], button[1]);
      confirmed = true;
    }
    next = { url: new URL(form.action, step.url), method: 'POST', form: form.fields };
  }
  throw new Error('logout did not finish');
}
