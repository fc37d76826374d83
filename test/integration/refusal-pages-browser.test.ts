/** A real headless Chromium opens a 403 and a 503 refusal page: title, heading, reference, style. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { AppRuntime } from '../../src/authz/app-runtime.ts';
import { Authorizer } from '../../src/authz/authorizer.ts';
import { Pipeline, type Step } from '../../src/authz/pipeline.ts';
import { refusalReply } from '../../src/authz/verdict.ts';
import { IdpUnavailableError } from '../../src/errors.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';

const chromiumPath = '/usr/bin/chromium';

const app = {
  name: 'web',
  match: { hosts: ['127.0.0.1'], pathPrefix: '/' },
  config: { oidc: { logoutPath: '/oauth2/logout' } },
} as unknown as AppRuntime;

/** `/admin` is refused by a rule; `/report` meets a provider outage (Retry-After 120s). */
const refuse: Step = ({ path }) => {
  if (path.raw.startsWith('/admin')) {
    return refusalReply('forbidden', 403, 'forbidden', 'missing required role');
  }
  throw new IdpUnavailableError('token', 'network', { retryAfterSeconds: 120 });
};

/** The authorizer's local reply served as Envoy would serve it to the browser. */
function gateway(authorizer: Authorizer): Server {
  let next = 0;
  return createServer((req, res) => {
    const headers = Object.entries(req.headers).flatMap(([name, value]) =>
      value === undefined
        ? []
        : [[name, Array.isArray(value) ? value.join(', ') : value] as [string, string]],
    );
    const decided = authorizer.decide({
      id: `ref-${++next}-<"é">`,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      authority: '127.0.0.1',
      scheme: 'http',
      headers,
      peerAddress: '127.0.0.1',
      contextExtensions: [],
      body: '',
    });
    void Promise.resolve(decided).then(({ verdict }) => {
      if (verdict.kind !== 'local_reply') {
        res.writeHead(200).end('allowed');
        return;
      }
      for (const [name, value] of verdict.headers) res.setHeader(name, value);
      res.writeHead(verdict.status).end(verdict.body);
    });
  });
}

describe('refusal pages in a real browser', () => {
  let server: Server;
  let origin: string;
  let browser: Browser | undefined;
  let page: Page;
  const dir = mkdtempSync(join(tmpdir(), 'eoa-refusal-pages-'));
  const saved: string[] = [];
  const cspViolations: string[] = [];

  before(async () => {
    const pipeline = new Pipeline({
      apps: [app],
      allowUnmatched: false,
      steps: [refuse],
      budgetMs: 100,
    });
    const authorizer = new Authorizer(
      { pipeline, parseOptions: { trustedHops: 0, maxHeaderBytes: 65_536 } },
      new Metrics({ defaultMetrics: false }),
      silentLogger(),
    );
    server = gateway(authorizer);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // Never skipped: a machine without Chromium fails here, saying how to get it.
    assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: apt-get install -y chromium`);
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
      ],
    });
    page = await browser.newPage({ viewport: { width: 800, height: 500 } });
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
    });
  });

  after(async () => {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
    process.stdout.write(`screenshots:\n  ${saved.join('\n  ')}\n`);
  });

  async function open(path: string, status: number, name: string): Promise<void> {
    const response = await page.goto(`${origin}${path}`);
    assert.equal(response?.status(), status);
    const file = join(dir, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    saved.push(file);
  }

  it('403 by a rule: says access was denied, why, offers to switch account and shows the reference', async () => {
    await open('/admin/users', 403, '403-access-denied');
    assert.equal(await page.title(), 'Access denied');
    assert.deepEqual(await page.locator('h1').allTextContents(), ['Access denied']);
    assert.equal(await page.locator('html').getAttribute('lang'), 'en');
    assert.match(await page.locator('main').innerText(), /missing required role/);
    const link = page.getByRole('link', { name: 'sign out and switch account' });
    assert.equal(await link.getAttribute('href'), '/oauth2/logout');
    assert.match(await page.locator('.ref code').innerText(), /^ref-\d+-<"é">$/);
    // The inline style is allowed by its hash: the page is laid out as written.
    const width = await page
      .locator('body')
      .evaluate(
        (body) =>
          (
            globalThis as unknown as { getComputedStyle(e: unknown): { maxWidth: string } }
          ).getComputedStyle(body).maxWidth,
      );
    assert.equal(width, '576px');
    assert.deepEqual(cspViolations, []);
  });

  it('503 outage: says the service is unavailable, when to retry, and shows the reference', async () => {
    await open('/report', 503, '503-unavailable');
    assert.equal(await page.title(), 'Service temporarily unavailable');
    assert.deepEqual(await page.locator('h1').allTextContents(), [
      'Service temporarily unavailable',
    ]);
    assert.match(await page.locator('main').innerText(), /try again in 120 seconds/);
    assert.match(await page.locator('.ref code').innerText(), /^ref-\d+-<"é">$/);
    assert.equal(await page.getByRole('link', { name: /switch account/ }).count(), 0);
    assert.deepEqual(cspViolations, []);
  });
});
