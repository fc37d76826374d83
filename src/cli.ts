#!/usr/bin/env node
/** Command line: `serve` (default), `check-config`, `config-reference`; exit codes in docs/cli.md. */
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { checkConfigFile } from './config/check.ts';
import { loadConfig } from './config/load.ts';
import { watchFiles } from './config/watch-files.ts';
import { startServer } from './main.ts';

/** Ms from the process start until every statically imported module was loaded. */
const modulesLoadedMs = performance.now();

/** How often `…File` secrets are checked for a change, ms. */
const SECRET_FILE_POLL_MS = 2_000;

const PROGRAM = 'envoy-oidc-authz';

/**
 * Exit codes, the same for every command (docs/cli.md): scripts and CI can tell a configuration
 * to fix from a usage mistake and from a failure at run time.
 */
const EXIT = {
  ok: 0,
  /** A failure while running: a listener could not bind, shutdown failed. */
  failure: 1,
  /** The command line itself: an unknown command or option, a missing config path. */
  usage: 2,
  /** The configuration was read and is invalid (every problem printed, one per line). */
  invalidConfig: 3,
} as const;

type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What a command gets: its parsed options and positionals. */
interface Invocation {
  readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
  readonly positionals: readonly string[];
}

/**
 * One command: its options (parsed strictly, so a typo is a usage error), how many positionals
 * it takes, and its usage text. A new option is one more entry in `options` and a line in
 * `usage`.
 */
interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly options: NonNullable<ParseArgsConfig['options']>;
  readonly maxPositionals: number;
  run(invocation: Invocation): Promise<ExitCode> | ExitCode;
}

const CONFIG_OPTION = { config: { type: 'string', short: 'c' } } as const;
const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

const CONFIG_HELP = `  CONFIG, --config CONFIG, -c CONFIG
                 the configuration file (default: the EOA_CONFIG environment variable)`;

const commands: Readonly<Record<string, Command>> = {
  serve: {
    summary: 'run the authorization server (the default command)',
    usage: `usage: ${PROGRAM} serve [CONFIG] [--config CONFIG]

Runs the server until SIGTERM or SIGINT; SIGHUP (or a changed secret file) reloads the
configuration.

${CONFIG_HELP}
  -h, --help     print this help
`,
    options: { ...CONFIG_OPTION, ...HELP_OPTION },
    maxPositionals: 1,
    async run(invocation) {
      const path = configPath(invocation);
      if (path === undefined) return EXIT.usage;
      return serve(path);
    },
  },
  'check-config': {
    summary: 'validate the configuration and print every problem',
    usage: `usage: ${PROGRAM} check-config [CONFIG] [--config CONFIG] [--online]

Validates the configuration (secret files included) and prints every problem as
"path: message", one per line, on stderr; or "config OK: N apps" on stdout.

${CONFIG_HELP}
  --online       also read each provider's discovery document and check every app against
                 it (issuer, ID-token algorithms, oidc.par), as start-up would, without starting
  -h, --help     print this help

exit: 0 valid, 3 invalid, 1 a provider check failed (--online), 2 usage error
`,
    options: { ...CONFIG_OPTION, ...HELP_OPTION, online: { type: 'boolean' } },
    maxPositionals: 1,
    async run(invocation) {
      const path = configPath(invocation);
      if (path === undefined) return EXIT.usage;
      const result = checkConfigFile(path, process.env);
      (result.ok ? process.stdout : process.stderr).write(result.output + '\n');
      if (!result.ok) return EXIT.invalidConfig;
      if (invocation.values['online'] !== true) return EXIT.ok;
      const loaded = loadConfig({ path }, process.env);
      if (!loaded.ok) return EXIT.invalidConfig;
      // Loaded here only: the offline check never talks to a provider.
      const { checkProvidersOnline } = await import('./oidc/online-check.ts');
      const online = await checkProvidersOnline(loaded.config);
      (online.ok ? process.stdout : process.stderr).write(online.output + '\n');
      return online.ok ? EXIT.ok : EXIT.failure;
    },
  },
  'config-reference': {
    summary: 'print the Markdown reference of every config key (docs/configuration.md)',
    usage: `usage: ${PROGRAM} config-reference

Prints the Markdown reference of every configuration key, generated from the schema.

  -h, --help     print this help
`,
    options: { ...HELP_OPTION },
    maxPositionals: 0,
    async run() {
      // Loaded here only: serve never needs the renderer.
      const { renderConfigReference } = await import('./config/reference.ts');
      process.stdout.write(renderConfigReference());
      return EXIT.ok;
    },
  },
};

const usage = `usage: ${PROGRAM} [${Object.keys(commands).join('|')}] [OPTIONS]

commands:
${Object.entries(commands)
  .map(([name, command]) => `  ${name.padEnd(18)}${command.summary}`)
  .join('\n')}

"${PROGRAM} COMMAND --help" prints the options of one command, "${PROGRAM} --version" the version.
Exit codes: 0 ok, 1 failure at run time, 2 usage error, 3 invalid configuration.
`;

function usageError(message: string, text = usage): ExitCode {
  process.stderr.write(`${PROGRAM}: ${message}\n\n${text}`);
  return EXIT.usage;
}

/** The config path: the positional, `--config`, or `EOA_CONFIG`; `undefined` after a usage error. */
function configPath({ values, positionals }: Invocation): string | undefined {
  const positional = positionals[0];
  const option = values['config'];
  const flag = typeof option === 'string' ? option : undefined;
  if (positional !== undefined && flag !== undefined && positional !== flag) {
    usageError(`two configuration files given (${positional} and --config ${flag}): give one`);
    return undefined;
  }
  const path = positional ?? flag ?? process.env['EOA_CONFIG'];
  if (path === undefined || path === '') {
    usageError('no configuration: give CONFIG, --config CONFIG, or set EOA_CONFIG');
    return undefined;
  }
  return path;
}

/** `version` of the package.json above this module (from `src/` and from `dist/src/` alike). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const { version } = JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown };
      return typeof version === 'string' ? version : 'unknown';
    }
    const parent = dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

async function serve(path: string): Promise<ExitCode> {
  const loaded = loadConfig({ path }, process.env);
  if (!loaded.ok) {
    for (const p of loaded.problems) process.stderr.write(`${p.path}: ${p.message}\n`);
    return EXIT.invalidConfig;
  }
  const configLoadedMs = performance.now();
  const server = await startServer(loaded.config);
  // Where a cold start's time goes (ms since the process started); SERVING follows discovery.
  server.logger.info(
    {
      startupMs: {
        modules: Math.round(modulesLoadedMs),
        config: Math.round(configLoadedMs),
        listening: Math.round(performance.now()),
      },
    },
    'started',
  );
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
      () => process.exit(EXIT.ok),
      (error: unknown) => {
        server.logger.error({ err: error }, 'shutdown failed');
        process.exit(EXIT.failure);
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
  // Serving: the process lives on its listeners; the signal handlers choose the exit code.
  return EXIT.ok;
}

/** Runs the command line `argv` (without node and the script); resolves to the exit code. */
async function main(argv: readonly string[]): Promise<ExitCode> {
  const first = argv[0];
  if (first === '--version' || first === '-V') {
    if (argv.length > 1) return usageError(`${first} takes no arguments`);
    process.stdout.write(`${PROGRAM} ${packageVersion()}\n`);
    return EXIT.ok;
  }
  if (first === '--help' || first === '-h') {
    process.stdout.write(usage);
    return EXIT.ok;
  }
  if (first === 'help') {
    const topic = argv[1];
    const command = topic === undefined ? undefined : commands[topic];
    if (topic !== undefined && command === undefined) {
      return usageError(`unknown command: ${JSON.stringify(topic)}`);
    }
    process.stdout.write(command?.usage ?? usage);
    return EXIT.ok;
  }
  // No command, or options first: `serve`, the default.
  const named = first !== undefined && !first.startsWith('-');
  const name = named ? first : 'serve';
  if (!Object.hasOwn(commands, name)) return usageError(`unknown command: ${JSON.stringify(name)}`);
  const command = commands[name]!;
  let invocation: Invocation;
  try {
    invocation = parseArgs({
      args: named ? argv.slice(1) : [...argv],
      options: command.options,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    return usageError(error instanceof Error ? error.message : String(error), command.usage);
  }
  if (invocation.values['help'] === true) {
    process.stdout.write(command.usage);
    return EXIT.ok;
  }
  if (invocation.positionals.length > command.maxPositionals) {
    const extra = invocation.positionals.slice(command.maxPositionals).join(' ');
    return usageError(`unexpected argument for ${name}: ${extra}`, command.usage);
  }
  return command.run(invocation);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${PROGRAM}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(EXIT.failure);
  },
);
