/** Refusal pages: a page for a person in a browser, JSON for an API client, every value escaped. */
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { AppRuntime } from '../../src/authz/app-runtime.ts';
import { Authorizer, type Outcome } from '../../src/authz/authorizer.ts';
import { htmlPage, PageTemplates } from '../../src/authz/pages.ts';
import type { RawRequest } from '../../src/authz/parse-request.ts';
import { Pipeline, type Step } from '../../src/authz/pipeline.ts';
import { refusalReply, type LocalReply } from '../../src/authz/verdict.ts';
import { resolvePageTemplates } from '../../src/config/page-templates.ts';
import { readTextFile } from '../../src/config/secret-files.ts';
import { loadConfig } from '../../src/config/load.ts';
import { IdpUnavailableError } from '../../src/errors.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';

const app = {
  name: 'web',
  match: { hosts: ['web.example.com'], pathPrefix: '/' },
  config: { oidc: { logoutPath: '/oauth2/logout' } },
} as unknown as AppRuntime;

const navigation: [string, string][] = [
  ['accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
  ['sec-fetch-mode', 'navigate'],
];

/** What API clients send: none of them may get a page. */
const apiClients: Record<string, [string, string][]> = {
  'fetch (cors)': [
    ['accept', '*/*'],
    ['sec-fetch-mode', 'cors'],
  ],
  'XHR asking for HTML': [
    ['accept', 'text/html'],
    ['x-requested-with', 'XMLHttpRequest'],
  ],
  gRPC: [['content-type', 'application/grpc']],
  'JSON client': [['accept', 'application/json']],
  'no Accept': [],
};

function raw(headers: [string, string][], overrides: Partial<RawRequest> = {}): RawRequest {
  return {
    id: 'req-1',
    method: 'GET',
    path: '/x',
    authority: 'web.example.com',
    scheme: 'https',
    headers,
    peerAddress: '127.0.0.1',
    contextExtensions: [],
    body: '',
    ...overrides,
  };
}

function authorizer(steps: readonly Step[], pages?: PageTemplates) {
  const pipeline = new Pipeline({
    apps: [app],
    allowUnmatched: false,
    steps,
    budgetMs: 100,
    ...(pages === undefined ? {} : { pages }),
  });
  return new Authorizer(
    { pipeline, parseOptions: { trustedHops: 0, maxHeaderBytes: 65_536 } },
    new Metrics({ defaultMetrics: false }),
    silentLogger(),
  );
}

async function replyOf(outcome: Outcome | Promise<Outcome>): Promise<LocalReply> {
  const { verdict } = await outcome;
  assert.equal(verdict.kind, 'local_reply');
  return verdict;
}

function header(reply: LocalReply, name: string): string | undefined {
  return reply.headers.find(([n]) => n === name)?.[1];
}

function assertPage(reply: LocalReply, status: number, title: string, requestId = 'req-1'): void {
  assert.equal(reply.status, status);
  assert.equal(header(reply, 'content-type'), 'text/html; charset=utf-8');
  assert.match(reply.body, /^<!doctype html>\n<html lang="en">/);
  assert.ok(reply.body.includes(`<title>${title}</title>`), reply.body);
  assert.equal(reply.body.match(/<h1>/g)?.length, 1, 'one heading');
  assert.ok(reply.body.includes(`<h1>${title}</h1>`));
  assert.ok(reply.body.includes(`Reference: <code>${requestId}</code>`), 'the request id');
  assert.doesNotMatch(reply.body, /<script|<link|src=|@import|url\(/i, 'loads nothing');
  const csp = header(reply, 'content-security-policy') ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /style-src 'sha256-[A-Za-z0-9+/=]+'/);
  assert.doesNotMatch(csp, /unsafe-inline|script-src/);
  assert.equal(header(reply, 'x-frame-options'), 'DENY');
  assert.equal(header(reply, 'cache-control'), 'no-store');
}

function assertJson(reply: LocalReply, status: number, error: string): void {
  assert.equal(reply.status, status);
  assert.equal(header(reply, 'content-type'), 'application/json');
  assert.equal((JSON.parse(reply.body) as { error: string }).error, error);
}

const forbidden: Step = () => refusalReply('forbidden', 403, 'forbidden', 'missing required role');
const outage: Step = () => {
  throw new IdpUnavailableError('token', 'network', { retryAfterSeconds: 7 });
};

describe('refusal pages', () => {
  it('403 by a rule: a page with the reason, a sign-out link and the reference', async () => {
    const reply = await replyOf(authorizer([forbidden]).decide(raw(navigation)));
    assertPage(reply, 403, 'Access denied');
    assert.ok(reply.body.includes('<p>missing required role</p>'));
    assert.ok(reply.body.includes('<a href="/oauth2/logout">sign out and switch account</a>'));
    assert.equal(reply.code, 7, 'gRPC PERMISSION_DENIED kept');
  });

  it('503 (provider outage): a page with the retry hint and Retry-After, that reloads itself', async () => {
    const reply = await replyOf(authorizer([outage]).decide(raw(navigation)));
    assertPage(reply, 503, 'Service temporarily unavailable');
    assert.equal(header(reply, 'retry-after'), '7');
    assert.ok(reply.body.includes('try again in 7 seconds'));
    assert.ok(reply.body.includes('<meta http-equiv="refresh" content="7">'));
    assert.doesNotMatch(reply.body, /oauth2\/logout/, 'no sign-out offered for an outage');
  });

  it('503 when the budget runs out: the same page, 1 second', async () => {
    const slow: Step = () => new Promise(() => undefined);
    const pipeline = new Pipeline({
      apps: [app],
      allowUnmatched: false,
      steps: [slow],
      budgetMs: 10,
    });
    const authz = new Authorizer(
      { pipeline, parseOptions: { trustedHops: 0, maxHeaderBytes: 65_536 } },
      new Metrics({ defaultMetrics: false }),
      silentLogger(),
    );
    const reply = await replyOf(authz.decide(raw(navigation)));
    assertPage(reply, 503, 'Service temporarily unavailable');
    assert.equal(header(reply, 'retry-after'), '1');
    assert.ok(reply.body.includes('try again in 1 second;'));
    const api = await replyOf(authz.decide(raw(apiClients['fetch (cors)']!)));
    assertJson(api, 503, 'budget_exceeded');
  });

  it('400 (a path the policy refuses) and 403 (no app for the host) are pages too', async () => {
    const authz = authorizer([forbidden]);
    const bad = await replyOf(authz.decide(raw(navigation, { path: '/a/%zz' })));
    assertPage(bad, 400, 'Bad request');
    const noApp = await replyOf(authz.decide(raw(navigation, { authority: 'other.example' })));
    assertPage(noApp, 403, 'Access denied');
    assert.doesNotMatch(noApp.body, /switch account/, 'no app: no logout path to offer');
  });

  for (const [client, headers] of Object.entries(apiClients)) {
    it(`JSON stays for an API client (${client}) at 400, 403 and 503`, async () => {
      const authz = authorizer([forbidden]);
      assertJson(await replyOf(authz.decide(raw(headers, { path: '/a/%zz' }))), 400, 'bad_request');
      assertJson(await replyOf(authz.decide(raw(headers))), 403, 'forbidden');
      const down = await replyOf(authorizer([outage]).decide(raw(headers)));
      assertJson(down, 503, 'idp_unavailable');
      assert.equal(header(down, 'retry-after'), '7');
    });
  }

  it('escapes every value: <script>, quotes, non-ASCII, CR/LF in the request id and the message', async () => {
    const hostile = `"><script>alert(1)</script>'\r\nÅsa 名前 \u202e`;
    const step: Step = () => refusalReply('forbidden', 403, 'forbidden', hostile);
    const reply = await replyOf(authorizer([step]).decide(raw(navigation, { id: hostile })));
    assert.doesNotMatch(reply.body, /<script>/);
    assert.ok(!reply.body.includes(hostile), 'never as it came');
    const escaped = '&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#39;\r\nÅsa 名前 \u202e';
    assert.ok(reply.body.includes(`<p>${escaped}</p>`), 'message escaped, text kept');
    assert.ok(reply.body.includes(`<code>${escaped}</code>`), 'request id escaped, text kept');
    assert.ok(
      reply.headers.every(([, v]) => !/[\r\n]/.test(v)),
      'no CR/LF in a header',
    );
  });

  it('caps a huge message and request id', async () => {
    const huge = 'x'.repeat(100_000);
    const step: Step = () => refusalReply('forbidden', 403, 'forbidden', huge);
    const reply = await replyOf(authorizer([step]).decide(raw(navigation, { id: huge })));
    assert.ok(reply.body.length < 3_000, `${reply.body.length} bytes`);
  });

  it('a callback error starts again at the page the user wanted, and shows the reference', async () => {
    const step: Step = () =>
      htmlPage(
        'callback',
        401,
        'Sign-in could not be completed',
        'Not accepted.',
        [['set-cookie', 'x=; Max-Age=0']],
        'https://web.example.com/report?a=1&b="2"',
      );
    for (const headers of [navigation, apiClients['no Accept']!]) {
      const reply = await replyOf(authorizer([step]).decide(raw(headers)));
      assertPage(reply, 401, 'Sign-in could not be completed');
      assert.ok(
        reply.body.includes(
          '<a href="https://web.example.com/report?a=1&amp;b=&quot;2&quot;">Start again</a>',
        ),
      );
      assert.equal(header(reply, 'set-cookie'), 'x=; Max-Age=0', 'its cookies kept');
    }
    const unknown: Step = () =>
      htmlPage('callback', 400, 'Sign-in could not be completed', 'Expired.', []);
    const reply = await replyOf(authorizer([unknown]).decide(raw(navigation)));
    assert.ok(reply.body.includes('<a href="/">Start again</a>'), 'no login state: the site root');
  });
});

describe('operator templates', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'eoa-pages-'));
    dirs.push(dir);
    return dir;
  };

  it('fills each placeholder with its escaped value, by status, else error.html', async () => {
    const pages = new PageTemplates({
      '403.html':
        '<h1>{{title}}</h1><p>{{ message }}</p><a href="{{logoutUrl}}">out</a> {{requestId}}',
      'error.html': 'E {{title}} {{retryAfter}} [{{retryUrl}}]',
    });
    const hostile = '<b>"x"</b>';
    const step: Step = () => refusalReply('forbidden', 403, 'forbidden', hostile);
    const forbiddenPage = await replyOf(
      authorizer([step], pages).decide(raw(navigation, { id: hostile })),
    );
    assert.equal(
      forbiddenPage.body,
      '<h1>Access denied</h1><p>&lt;b&gt;&quot;x&quot;&lt;/b&gt;</p><a href="/oauth2/logout">out</a> &lt;b&gt;&quot;x&quot;&lt;/b&gt;',
    );
    const down = await replyOf(authorizer([outage], pages).decide(raw(navigation)));
    assert.equal(down.body, 'E Service temporarily unavailable 7 []');
    assert.equal(header(down, 'content-type'), 'text/html; charset=utf-8');
    assert.match(header(down, 'content-security-policy') ?? '', /default-src 'none'/);
    assertJson(await replyOf(authorizer([outage], pages).decide(raw([]))), 503, 'idp_unavailable');
  });

  it('loads pages.templatesDir at load; an unknown placeholder or unreadable file is a config error naming it', () => {
    const good = tempDir();
    writeFileSync(join(good, '403.html'), '<p>{{message}} {{requestId}}</p>');
    writeFileSync(join(good, 'notes.txt'), '{{ignored}}');
    const doc: Record<string, unknown> = { pages: { templatesDir: good } };
    const read = resolvePageTemplates(doc, '/', readTextFile);
    assert.deepEqual(read.problems, []);
    assert.deepEqual(read.files, [join(good, '403.html')]);
    assert.deepEqual((doc['pages'] as { templates: unknown }).templates, {
      '403.html': '<p>{{message}} {{requestId}}</p>',
    });

    const bad = tempDir();
    writeFileSync(join(bad, '503.html'), '<p>{{message}} {{cookie}}</p>');
    mkdirSync(join(bad, 'error.html'));
    const problems = resolvePageTemplates(
      { pages: { templatesDir: bad } },
      '/',
      readTextFile,
    ).problems;
    assert.equal(problems.length, 2, JSON.stringify(problems));
    assert.ok(problems.every((p) => p.path === 'pages.templatesDir'));
    assert.match(
      problems[1]!.message,
      new RegExp(`cannot read ${join(bad, 'error.html')}: EISDIR`),
    );
    assert.match(
      problems[0]!.message,
      new RegExp(`${join(bad, '503.html')}: unknown placeholder \\{\\{cookie\\}\\}`),
    );

    const missing = resolvePageTemplates(
      { pages: { templatesDir: join(bad, 'nope') } },
      '/',
      readTextFile,
    );
    assert.match(missing.problems[0]!.message, /cannot read .*nope: ENOENT/);
    const empty = resolvePageTemplates({ pages: { templatesDir: tempDir() } }, '/', readTextFile);
    assert.match(empty.problems[0]!.message, /holds no template/);
    const huge = tempDir();
    writeFileSync(join(huge, '400.html'), 'x'.repeat(70_000));
    assert.match(
      resolvePageTemplates({ pages: { templatesDir: huge } }, '/', readTextFile).problems[0]!
        .message,
      /400\.html: larger than 65536 bytes/,
    );
  });

  it('a config with a bad template directory does not load; the file is named', () => {
    const bad = tempDir();
    writeFileSync(join(bad, '403.html'), '{{title}} {{secret}}');
    const loaded = loadConfig(
      {
        document: {
          pages: { templatesDir: bad },
          apps: [
            {
              name: 'web',
              match: { hosts: ['web.example.com'] },
              oidc: {
                issuer: 'https://idp.example.com',
                clientId: 'c',
                clientSecret: 's'.repeat(32),
              },
              session: { secret: 'k'.repeat(44) },
            },
          ],
        },
      },
      {},
    );
    assert.equal(loaded.ok, false);
    const problems = loaded.ok ? [] : loaded.problems;
    assert.ok(
      problems.some(
        (p) => p.path === 'pages.templatesDir' && p.message.includes(join(bad, '403.html')),
      ),
      JSON.stringify(problems),
    );
  });
});
