#!/usr/bin/env node
/** Command line: `serve` (default), `check-config`, `config-reference`. */
import { parseArgs } from 'node:util';
import { checkConfigFile } from './config/check.ts';
import { loadConfig } from './config/load.ts';
import { watchFiles } from './config/watch-files.ts';

/** How often `…File` secrets are checked for a change, ms. */
const SECRET_FILE_POLL_MS = 2_000;
import { startServer } from './main.ts';

const usage = `usage: envoy-oidc-authz [serve|check-config|config-reference] [--config FILE] [--online]

  serve          run the authorization server (default)
  check-config   validate the config, print every problem, exit non-zero if any
                 --online: also read each provider's discovery document and check the app
                 against it (issuer, ID-token algorithms), as start-up would
  config-reference  print the Markdown reference of every config key (docs/configuration.md)

  --config FILE  the configuration file (or EOA_CONFIG)
`;

function configPath(explicit: string | undefined): string {
  const path = explicit ?? process.env['EOA_CONFIG'];
  if (path === undefined || path === '') {
    process.stderr.write('no configuration: pass --config FILE or set EOA_CONFIG\n\n' + usage);
    process.exit(2);
  }
  return path;
}

async function serve(path: string): Promise<void> {
  const loaded = loadConfig({ path }, process.env);
  if (!loaded.ok) {
    for (const p of loaded.problems) process.stderr.write(`${p.path}: ${p.message}\n`);
    process.exit(1);
  }
  const server = await startServer(loaded.config);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      // A second signal (Ctrl-C twice) ends the drain delay; the drain itself still runs.
      void server.close();
      return;
    }
    stopping = true;
    server.logger.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        server.logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const reload = (): void => {
    const next = loadConfig({ path }, process.env);
    if (next.ok) {
      server.reload(next.config);
      files.update(next.files ?? []);
    } else {
      server.metrics.configReloaded(false);
      server.logger.error(
        { problems: next.problems.map((p) => `${p.path}: ${p.message}`) },
        'new configuration rejected; the old one keeps serving',
      );
    }
  };
  // A rotated certificate or secret file is picked up as SIGHUP would pick it up.
  const files = watchFiles(loaded.files ?? [], SECRET_FILE_POLL_MS, () => {
    server.logger.info({}, 'a secret file changed: reloading the configuration');
    reload();
  });
  process.on('SIGHUP', reload);
}

async function main(argv: readonly string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      online: { type: 'boolean' },
    },
    allowPositionals: true,
  });
  if (values.help === true) {
    process.stdout.write(usage);
    return;
  }
  const command = positionals[0] ?? 'serve';
  switch (command) {
    case 'serve':
      return serve(configPath(values.config));
    case 'check-config': {
      const path = configPath(values.config);
      const result = checkConfigFile(path, process.env);
      (result.ok ? process.stdout : process.stderr).write(result.output + '\n');
      process.exitCode = result.ok ? 0 : 1;
      if (!result.ok || values.online !== true) return;
      const loaded = loadConfig({ path }, process.env);
      if (!loaded.ok) return;
      // Loaded here only: the offline check never talks to a provider.
      const { checkProvidersOnline } = await import('./oidc/online-check.ts');
      const online = await checkProvidersOnline(loaded.config);
      (online.ok ? process.stdout : process.stderr).write(online.output + '\n');
      process.exitCode = online.ok ? 0 : 1;
      return;
    }
    case 'config-reference': {
      // Loaded here only: serve never needs the renderer.
      const { renderConfigReference } = await import('./config/reference.ts');
      process.stdout.write(renderConfigReference());
      return;
    }
    default:
      process.stderr.write(`unknown command: ${command}\n\n${usage}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(
    `envoy-oidc-authz: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
