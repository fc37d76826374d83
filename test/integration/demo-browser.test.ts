/**
 * A real headless Chromium logs in and out of the demo: provider login page, identity page,
 * logout; then, in the same browser with every cookie kept, as a name nobody configured, after a
 * refused name, and back from a stale provider page.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startDemo, type Demo } from '../../dev/demo.ts';
import { silentLogger } from '../../src/observability/logger.ts';

const chromiumPath = '/usr/bin/chromium';
/** `artifacts/screenshots/` at the repository root (this file runs from `dist*\/test/integration/`). */
const screenshotDir = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'artifacts',
  'screenshots',
);

describe('the demo in a real browser', () => {
  let demo: Demo;
  let browser: Browser | undefined;
  let page: Page;
  const saved: string[] = [];
  const activity: string[] = [];

  async function screenshot(name: string): Promise<void> {
    const path = join(screenshotDir, `demo-${name}.png`);
    await page.screenshot({ path, fullPage: true });
    saved.push(path);
  }

  before(async () => {
    mkdirSync(screenshotDir, { recursive: true });
    demo = await startDemo({
      port: 0,
      providerPort: 0,
      logger: silentLogger(),
      onActivity: (line) => activity.push(line),
    });
  });

  after(async () => {
    await browser?.close();
    await demo?.close();
    if (saved.length > 0) process.stdout.write(`screenshots:\n  ${saved.join('\n  ')}\n`);
  });

  it('is sent to the provider, logs in as alice, sees her identity, logs out and is asked to log in again', async () => {
    // Never skipped: a machine without Chromium fails here, saying how to get it.
    assert.ok(
      existsSync(chromiumPath),
      `${chromiumPath} is missing: install it with: apt-get install -y chromium`,
    );
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
    const gateway = new URL(demo.url);

    // 1. A first visit has no session: the gateway's check redirects to the provider.
    await page.goto(demo.url);
    await page.waitForURL((url) => url.origin === demo.issuer);
    const login = page.locator('input[name="login"]');
    await login.waitFor();
    await screenshot('1-provider-login');

    // 2. The provider's own sign-in form; any password is accepted for the demo user.
    await login.fill(demo.login);
    await page.locator('input[name="password"]').fill('any password');
    await screenshot('2-login-filled');
    await page.locator('button[type="submit"]').click();

    // The demo provider grants consent by itself; confirm it anyway if a page asks.
    await page.waitForURL(
      (url) => url.origin === gateway.origin || url.pathname.includes('/interaction/'),
    );
    if (new URL(page.url()).origin === demo.issuer) {
      await page.locator('button[type="submit"]').click();
    }

    // 3. Back at the page the browser asked for, behind the gateway, with alice's identity.
    await page.waitForURL(demo.url);
    const identity = page.locator('#identity');
    await identity.waitFor();
    assert.equal(await page.locator('h1').textContent(), 'You are signed in');
    const shown = await identity.textContent();
    assert.match(shown ?? '', /x-auth-request-user\s*alice\b/);
    assert.match(shown ?? '', /x-auth-request-email\s*alice@example\.com/);
    const cookies = await page.context().cookies(demo.url);
    assert.ok(
      cookies.some((c) => c.name === '_eoa_demo' && c.httpOnly && !c.secure),
      'a session cookie, HttpOnly, not Secure on plain http loopback',
    );
    await screenshot('3-signed-in');

    // 4. Logout: the server ends the session and sends the browser to the provider's end-session
    //    endpoint, which asks for confirmation, then back to the gateway's public page.
    await page.locator('#logout').click();
    await page.waitForURL((url) => url.origin === demo.issuer || url.pathname === '/signed-out');
    if (new URL(page.url()).origin === demo.issuer) {
      await screenshot('4-provider-logout');
      await page.locator('button[name="logout"]').click();
    }
    await page.waitForURL(`${gateway.origin}/signed-out`);
    assert.equal(await page.locator('h1').textContent(), 'You are not signed in');
    assert.equal(await page.locator('#identity').count(), 0, 'no identity headers reach it');
    assert.doesNotMatch(await page.content(), /alice@example\.com/);
    const remaining = await page.context().cookies(demo.url);
    assert.ok(!remaining.some((c) => c.name === '_eoa_demo'), 'the session cookie is gone');
    await screenshot('5-signed-out');

    // 5. The identity is really gone: the next visit is sent to log in again.
    await page.locator('#sign-in').click();
    await page.waitForURL((url) => url.origin === demo.issuer);
    await page.locator('input[name="login"]').waitFor();
    await screenshot('6-login-again');

    assert.equal(demo.provider.counters().endSession > 0, true, 'the provider ended its session');
  });
  /** Fills the provider's sign-in form with `name` and submits it. */
  async function signInAtProvider(name: string): Promise<void> {
    await page.waitForURL((url) => url.origin === demo.issuer);
    await page.locator('input[name="login"]').fill(name);
    await page.locator('input[name="password"]').fill('any password');
    await page.locator('button[type="submit"]').click();
  }

  async function identityShown(): Promise<string> {
    await page.waitForURL(demo.url);
    await page.locator('#identity').waitFor();
    return (await page.locator('#identity').textContent()) ?? '';
  }

  it('then, keeping every cookie, signs in as José, as nobody after a blank name, then as alice, and starts again from a stale provider page', async () => {
    assert.ok(browser !== undefined, 'the first test launched the browser');
    const gateway = new URL(demo.url);

    // 1. A name nobody configured is a new demo user, not the provider's 500 page.
    await page.goto(demo.url);
    await signInAtProvider('José');
    const jose = await identityShown();
    assert.match(jose, /x-auth-request-user\s*josé/);
    assert.match(jose, /x-auth-request-email\s*josé@example\.com/);
    assert.match(jose, /x-auth-request-groups\s*users/);
    await screenshot('7-signed-in-as-jose');
    await page.locator('#logout').click();
    await page.waitForURL((url) => url.origin === demo.issuer || url.pathname === '/signed-out');
    if (new URL(page.url()).origin === demo.issuer) {
      await page.locator('button[name="logout"]').click();
    }
    await page.waitForURL(`${gateway.origin}/signed-out`);

    // 2. A failed attempt: a blank name is refused; the server's page offers to start again.
    await page.locator('#sign-in').click();
    await signInAtProvider('   ');
    await page.waitForURL(
      (url) => url.origin === gateway.origin && url.pathname === '/oauth2/callback',
    );
    assert.equal(await page.locator('h1').textContent(), 'Sign-in was not completed');
    await screenshot('8-refused-name');
    await page.locator('a', { hasText: 'Start again' }).click();

    // 3. alice, after the failed attempt and with its cookies still in the browser.
    await page.waitForURL((url) => url.origin === demo.issuer);
    const staleForm = page.url();
    await signInAtProvider('alice');
    assert.match(await identityShown(), /x-auth-request-user\s*alice\b/);

    // 4. The provider page of a finished sign-in, opened again (the back button, a bookmark):
    //    the provider's error page links back to the app, where alice is still signed in.
    await page.goto(staleForm);
    const startAgain = page.locator('#start-again');
    await startAgain.waitFor();
    assert.equal(await page.locator('h1').textContent(), 'Sign-in could not continue');
    await screenshot('9-stale-provider-page');
    await startAgain.click();
    assert.match(await identityShown(), /x-auth-request-user\s*alice\b/);

    // What the demo printed meanwhile: each sign-in at the provider, each allow and deny.
    const printed = activity.join('\n');
    assert.match(printed, /login {2}"José" signed in at the provider as josé \(a new demo user/);
    assert.match(printed, /login {2}" {3}" refused by the provider/);
    assert.match(printed, /login {2}"alice" signed in at the provider as alice\n/);
    assert.match(printed, /allow {2}GET \/ as josé/);
    assert.match(printed, /deny {3}GET \/oauth2\/callback 401 \(Sign-in was not completed\)/);
    assert.match(printed, /deny {3}GET \/ 302 to the provider to sign in/);
    assert.doesNotMatch(printed, /code=|state=/, 'no query string, so no code or state');
  });
});
