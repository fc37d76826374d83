/** A real headless Chromium logs in and out of the demo: provider login page, identity page, logout. */
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

  async function screenshot(name: string): Promise<void> {
    const path = join(screenshotDir, `demo-${name}.png`);
    await page.screenshot({ path, fullPage: true });
    saved.push(path);
  }

  before(async () => {
    mkdirSync(screenshotDir, { recursive: true });
    demo = await startDemo({ port: 0, providerPort: 0, logger: silentLogger() });
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
});
