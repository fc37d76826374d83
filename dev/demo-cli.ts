#!/usr/bin/env node
/**
 * `npm run demo`: a local OpenID Provider, the server and an Envoy-like gateway on 127.0.0.1:8080.
 * Repository-only: the provider and the gateway's protos are development dependencies, so the
 * published package has no demo.
 */
import { parseArgs } from 'node:util';
import { startDemo } from './demo.ts';

const usage = `usage: npm run demo -- [--port N] [--provider-port N] [--host ADDR] [--log-level LEVEL] [--quiet]

  --port N           the gateway's port (default 8080; 0 picks a free one)
  --provider-port N  the OpenID Provider's port (default 8081; 0 picks a free one)
  --host ADDR        loopback address to listen on (default 127.0.0.1)
  --log-level LEVEL  the server's log level (default warn)
  --quiet            no line per sign-in and per request let through or turned away
`;

function portOption(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) {
    process.stderr.write(`--${name} must be a port number (0-65535)\n\n${usage}`);
    process.exit(2);
  }
  return port;
}

/** Runs the demo until SIGINT or SIGTERM. */
async function demo(values: {
  port?: string;
  'provider-port'?: string;
  host?: string;
  'log-level'?: string;
  quiet?: boolean;
}): Promise<void> {
  const running = await startDemo({
    port: portOption('port', values.port, 8080),
    providerPort: portOption('provider-port', values['provider-port'], 8081),
    ...(values.host === undefined ? {} : { host: values.host }),
    ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] }),
    ...(values.quiet === true ? {} : { onActivity: (line) => process.stdout.write(`${line}\n`) }),
  });
  // Listening before the banner says Ctrl-C works: a signal sent on reading it must not find
  // the default action (death without closing anything) still in place.
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('stopping the demo\n');
    running.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(
          `demo shutdown failed: ${error instanceof Error ? error.message : String(error)}\n`,
        );
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.stdout.write(
    [
      '',
      'envoy-oidc-authz demo is running.',
      '',
      `  Open      ${running.url}`,
      `  Log in as ${running.login} (any password), or as any other name: a new user in group "users"`,
      '',
      `  OpenID Provider  ${running.issuer}  (refresh-token rotation on)`,
      `  Server admin     ${running.adminUrl}/metrics  ${running.adminUrl}/readyz`,
      '',
      'Ctrl-C stops everything. Each sign-in and each request let through (allow) or turned',
      'away (deny) is shown below; --quiet hides them.',
      '',
    ].join('\n'),
  );
}

function main(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      help: { type: 'boolean', short: 'h' },
      port: { type: 'string' },
      'provider-port': { type: 'string' },
      host: { type: 'string' },
      'log-level': { type: 'string' },
      quiet: { type: 'boolean' },
    },
    allowPositionals: false,
  });
  if (values.help === true) {
    process.stdout.write(usage);
    return Promise.resolve();
  }
  return demo(values);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`demo: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
