/** `npm run demo` as a person runs it: printed URL and login, a login through the gateway, Ctrl-C. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { get } from 'node:http';
import type { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { demoCliPath, freePort } from '../support/server-process.ts';
import { CookieJar, scriptedLogin } from '../support/scripted-login.ts';

interface DemoProcess {
  readonly child: ChildProcessByStdio<null, Readable, Readable>;
  readonly exited: Promise<number | null>;
  output(): string;
}

function spawnDemo(args: readonly string[]): DemoProcess {
  const child = spawn(process.execPath, [demoCliPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, exited, output: () => output };
}

async function waitForOutput(demo: DemoProcess, text: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!demo.output().includes(text)) {
    if (demo.child.exitCode !== null) throw new Error(`demo exited early:\n${demo.output()}`);
    if (Date.now() > deadline) throw new Error(`demo did not print ${text}:\n${demo.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A browser navigation: HTML accepted, `sec-fetch-mode: navigate`, cookies from the jar,
 * redirects not followed. Over node:http, because fetch sends its own `sec-fetch-mode: cors`.
 */
function navigate(jar: CookieJar, url: URL): Promise<Response> {
  const headers: Record<string, string> = {
    accept: 'text/html,application/xhtml+xml',
    'sec-fetch-mode': 'navigate',
  };
  const cookie = jar.headerFor(url);
  if (cookie !== undefined) headers['cookie'] = cookie;
  return new Promise((resolve, reject) => {
    get(url, { headers }, (incoming) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('error', reject);
      incoming.on('end', () => {
        const lines = new Headers();
        const raw = incoming.rawHeaders;
        for (let i = 0; i + 1 < raw.length; i += 2) lines.append(raw[i]!, raw[i + 1]!);
        const response = new Response(Buffer.concat(chunks), {
          status: incoming.statusCode ?? 0,
          headers: lines,
        });
        jar.store(url, response);
        resolve(response);
      });
    }).on('error', reject);
  });
}

describe('npm run demo', () => {
  it('prints the URL and the demo login, lets alice log in through the gateway, and stops on Ctrl-C with exit 0', async () => {
    const port = await freePort();
    const providerPort = await freePort();
    const demo = spawnDemo(['--port', String(port), '--provider-port', String(providerPort)]);
    try {
      await waitForOutput(demo, 'Ctrl-C stops everything');
      const printed = demo.output();
      assert.match(printed, new RegExp(`Open +http://127\\.0\\.0\\.1:${port}/`));
      assert.match(printed, /Log in as alice \(any password\)/);
      assert.match(printed, new RegExp(`OpenID Provider +http://127\\.0\\.0\\.1:${providerPort}`));
      const admin = /Server admin +(http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(printed)?.[1];
      assert.ok(admin !== undefined, 'the admin URL is printed');
      assert.equal((await fetch(`${admin}/readyz`)).status, 200);

      const home = new URL(`http://127.0.0.1:${port}/`);
      const jar = new CookieJar();
      const start = await navigate(jar, home);
      assert.equal(start.status, 302);
      const authorization = new URL(start.headers.get('location') ?? '');
      assert.equal(authorization.origin, `http://127.0.0.1:${providerPort}`);
      assert.equal(
        authorization.searchParams.get('redirect_uri'),
        `${home.origin}/oauth2/callback`,
      );

      const { callbackUrl } = await scriptedLogin(authorization, { login: 'alice' });
      const callback = await navigate(jar, callbackUrl);
      assert.equal(callback.status, 302);
      assert.equal(callback.headers.get('location'), home.href);
      // The login-state cookie expires and the session cookie is set: separate lines.
      assert.ok(callback.headers.getSetCookie().length >= 2, 'each set-cookie its own line');

      const page = await navigate(jar, home);
      assert.equal(page.status, 200);
      const html = await page.text();
      assert.match(html, /<td>alice<\/td>/);
      assert.match(html, /<td>alice@example\.com<\/td>/);
      assert.match(html, /href="\/oauth2\/logout"/);
      // Each sign-in and each allow or deny, one line each, the callback without its query.
      await waitForOutput(demo, 'allow  GET / as alice');
      assert.match(demo.output(), /login {2}"alice" signed in at the provider as alice/);
      assert.match(demo.output(), /deny {3}GET \/ 302 to the provider to sign in/);
      assert.match(demo.output(), /deny {3}GET \/oauth2\/callback 302 to \//);
      assert.doesNotMatch(demo.output(), /code=/);

      demo.child.kill('SIGINT');
      assert.equal(await demo.exited, 0, demo.output());
      await assert.rejects(fetch(home), 'the gateway no longer listens');
      await assert.rejects(fetch(authorization.origin), 'the provider no longer listens');
      await assert.rejects(fetch(`${admin}/readyz`), 'the server no longer listens');
    } finally {
      if (demo.child.exitCode === null) demo.child.kill('SIGKILL');
    }
  });

  it('stops on SIGTERM with exit 0', async () => {
    const demo = spawnDemo(['--port', '0', '--provider-port', '0']);
    try {
      await waitForOutput(demo, 'Ctrl-C stops everything');
      demo.child.kill('SIGTERM');
      assert.equal(await demo.exited, 0, demo.output());
    } finally {
      if (demo.child.exitCode === null) demo.child.kill('SIGKILL');
    }
  });

  it('refuses a host that is not loopback and a port that is not a number', async () => {
    const remote = spawnDemo(['--host', '192.0.2.10', '--port', '0', '--provider-port', '0']);
    assert.equal(await remote.exited, 1);
    assert.match(remote.output(), /--host must be a loopback address/);

    const badPort = spawnDemo(['--port', 'eighty']);
    assert.equal(await badPort.exited, 2);
    assert.match(badPort.output(), /--port must be a port number/);
  });

  it('says which port is taken instead of starting half a demo', async () => {
    const taken = spawnDemo(['--port', '0', '--provider-port', '0']);
    try {
      await waitForOutput(taken, 'Ctrl-C stops everything');
      const port = /Open +http:\/\/127\.0\.0\.1:(\d+)\//.exec(taken.output())?.[1];
      const second = spawnDemo(['--port', port ?? '', '--provider-port', '0']);
      assert.equal(await second.exited, 1);
      assert.match(second.output(), /EADDRINUSE/);
    } finally {
      taken.child.kill('SIGINT');
      await taken.exited;
    }
  });
});
