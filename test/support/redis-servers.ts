/** Real redis-server, Cluster and Sentinel processes for tests: free ports, own dirs, always killed. */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The Debian package that ships each binary, named in the error when it is missing. */
const PACKAGE_OF: Record<string, string> = {
  'redis-server': 'redis-server',
  'redis-sentinel': 'redis-sentinel',
  'redis-cli': 'redis-tools',
  openssl: 'openssl',
};

function missingBinary(binary: string): Error {
  const pkg = PACKAGE_OF[binary] ?? binary;
  return new Error(
    `${binary} is not installed; these tests need real Redis processes: apt-get install -y ${pkg}` +
      (pkg === 'redis-server' || pkg === 'redis-tools' ? ' redis-sentinel' : ''),
  );
}

/**
 * Where {@link freePort} picks: below Linux's ephemeral range (32768-60999 by default), from
 * which the kernel hands out local ports to outgoing connections and to port-0 listeners. A port
 * taken from that range and released for a child process can be given to a connection that
 * another test file, running at the same time, opens before the child binds it.
 */
const pickedPorts = { from: 20_000, to: 32_000 };

/** A port nobody listens on right now, for a child process to bind. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = pickedPorts.from + randomInt(pickedPorts.to - pickedPorts.from);
    if (await canListen(port)) return port;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Runs `redis-cli -p <port> <args>` and returns its output (trimmed). */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
      timeout: 10_000,
    });
    return stdout.trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw missingBinary('redis-cli');
    throw error;
  }
}

/** Polls `check` every 50 ms until it is true; fails naming `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // Not up yet; try again.
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** One running (or killed, restartable) Redis-family process. */
export interface RedisProcess {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `127.0.0.1:<port>` */
  readonly address: string;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Its own working directory (dump files, nodes.conf, sentinel.conf). */
  readonly dir: string;
  /**
   * Sends `signal` (default SIGKILL) and waits for the process to exit; `SIGSTOP` and `SIGCONT`
   * only freeze and thaw it (a hung server: connections open, no replies).
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Starts it again on the same port, with the same arguments and directory, plus `extraArgs`
   * for this start only (e.g. `['--replicaof', host, port]` for a master coming back demoted).
   */
  restart(extraArgs?: readonly string[]): Promise<void>;
  /** Kills it if running and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

interface ProcessSpec {
  readonly binary: 'redis-server' | 'redis-sentinel';
  readonly args: readonly string[];
  readonly port: number;
  readonly dir: string;
  readonly readyLine: RegExp;
}

/** Starts the process and resolves when its log shows `readyLine`; rejects with the log tail. */
function spawnUntilReady(spec: ProcessSpec): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(spec.binary, spec.args, {
      cwd: spec.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    let ready = false;
    const onData = (chunk: Buffer): void => {
      if (ready) return;
      log = (log + chunk.toString('utf8')).slice(-4_000);
      if (spec.readyLine.test(log)) {
        ready = true;
        resolve(child);
      }
    };
    // Keep draining after readiness, or a chatty child would block on a full pipe.
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (error: NodeJS.ErrnoException) => {
      reject(error.code === 'ENOENT' ? missingBinary(spec.binary) : error);
    });
    child.once('exit', (code, signal) => {
      if (!ready) {
        reject(
          new Error(
            `${spec.binary} on port ${spec.port} exited (${String(code ?? signal)}) before ready:\n${log}`,
          ),
        );
      }
    });
  });
}

async function launch(spec: ProcessSpec): Promise<RedisProcess> {
  let child: ChildProcess | undefined = await spawnUntilReady(spec);
  // A safety net for a test that dies without reaching its cleanup: never leave a server behind.
  const killOnExit = (): void => {
    child?.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  async function kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') {
      // Freezes or thaws the server: connections stay open and commands go unanswered.
      child?.kill(signal);
      return;
    }
    const current = child;
    child = undefined;
    if (current === undefined || current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise((resolve) => current.once('exit', resolve));
    current.kill('SIGCONT');
    current.kill(signal);
    await exited;
  }

  return {
    host: '127.0.0.1',
    port: spec.port,
    address: `127.0.0.1:${spec.port}`,
    url: `redis://127.0.0.1:${spec.port}`,
    dir: spec.dir,
    kill,
    async restart(extraArgs = []) {
      await kill('SIGKILL');
      child = await spawnUntilReady({ ...spec, args: [...spec.args, ...extraArgs] });
    },
    async stop() {
      await kill('SIGKILL');
      process.off('exit', killOnExit);
      await rm(spec.dir, { recursive: true, force: true });
    },
  };
}

/** TLS files for a TLS-only server. */
export interface RedisTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  /** Require a client certificate signed by `caFile` (mTLS). Default true. */
  readonly authClients?: boolean;
}

/** Options of {@link startRedis}. */
export interface StartRedisOptions {
  /** Default: a free port. */
  readonly port?: number;
  /** Extra `redis-server` arguments, e.g. `['--requirepass', 'x']`. */
  readonly args?: readonly string[];
  /** Keep an append-only file in the server's dir so a restart keeps acknowledged writes. */
  readonly persistence?: boolean;
  /** Serve TLS only (the plain port is off), on `port`. */
  readonly tls?: RedisTlsFiles;
}

/**
 * Starts a real `redis-server` on 127.0.0.1 in its own temp dir: no snapshots and no AOF
 * unless `persistence` is asked for, never the machine's shared 6379.
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisProcess> {
  const port = options.port ?? (await freePort());
  const dir = await mkdtemp(join(tmpdir(), 'redis-test-'));
  // With persistence every write is fsynced before the reply, so "acknowledged" means on disk.
  const persistence =
    options.persistence === true
      ? ['--appendonly', 'yes', '--appendfsync', 'always']
      : ['--appendonly', 'no'];
  const listen =
    options.tls === undefined
      ? ['--port', String(port)]
      : [
          '--port',
          '0',
          '--tls-port',
          String(port),
          '--tls-cert-file',
          options.tls.certFile,
          '--tls-key-file',
          options.tls.keyFile,
          '--tls-ca-cert-file',
          options.tls.caFile,
          '--tls-auth-clients',
          options.tls.authClients === false ? 'no' : 'yes',
        ];
  const args = [
    ...listen,
    '--bind',
    '127.0.0.1',
    '--protected-mode',
    'no',
    '--dir',
    dir,
    '--save',
    '',
    ...persistence,
    '--logfile',
    '',
    ...(options.args ?? []),
  ];
  try {
    return await launch({
      binary: 'redis-server',
      args,
      port,
      dir,
      readyLine: /Ready to accept connections/,
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** A running Redis Cluster of masters only. */
export interface RedisClusterSet {
  readonly nodes: readonly RedisProcess[];
  /** Seed addresses, `127.0.0.1:<port>`. */
  readonly addresses: readonly string[];
  /** How long `redis-cli --cluster create` plus convergence to `cluster_state:ok` took, ms. */
  readonly createdInMs: number;
  stop(): Promise<void>;
}

/**
 * Starts `masters` cluster-enabled servers (each with its own bus port), joins them with
 * `redis-cli --cluster create`, and waits until every node reports `cluster_state:ok`.
 */
export async function startRedisCluster(
  masters = 3,
  options: {
    /**
     * TLS only, the cluster bus too. The bus always asks for a client certificate (Redis's
     * cluster bus is mutual TLS), so nodes present `clientCertFile` to each other.
     */
    readonly tls?: Omit<RedisTlsFiles, 'authClients'> & {
      readonly clientCertFile: string;
      readonly clientKeyFile: string;
    };
  } = {},
): Promise<RedisClusterSet> {
  const nodes: RedisProcess[] = [];
  // With TLS, the cluster bus too, and nodes announce their TLS ports.
  const tls = options.tls === undefined ? undefined : { ...options.tls, authClients: false };
  const cliTls = tls === undefined ? [] : ['--tls', '--cacert', tls.caFile];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) {
      // The bus port defaults to port + 10000, which may be taken or out of range: pick one.
      const busPort = await freePort();
      nodes.push(
        await startRedis({
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-port',
            String(busPort),
            '--cluster-node-timeout',
            '2000',
            ...(tls === undefined
              ? []
              : [
                  '--tls-cluster',
                  'yes',
                  '--tls-client-cert-file',
                  tls.clientCertFile,
                  '--tls-client-key-file',
                  tls.clientKeyFile,
                ]),
          ],
          ...(tls === undefined ? {} : { tls }),
        }),
      );
    }
    const started = Date.now();
    const addresses = nodes.map((node) => node.address);
    try {
      await run('redis-cli', [...cliTls, '--cluster', 'create', ...addresses, '--cluster-yes'], {
        timeout: 30_000,
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw missingBinary('redis-cli');
      throw error;
    }
    await waitFor('cluster_state:ok on every node', async () => {
      const infos = await Promise.all(
        nodes.map((node) => redisCli(node.port, ...cliTls, 'cluster', 'info')),
      );
      return infos.every(
        (info) =>
          info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${masters}`),
      );
    });
    return { nodes, addresses, createdInMs: Date.now() - started, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A master, its replicas and three sentinels watching them. */
export interface SentinelSet {
  readonly name: string;
  readonly master: RedisProcess;
  /** The first replica. */
  readonly replica: RedisProcess;
  /** Every replica, `replica` first. */
  readonly replicas: readonly RedisProcess[];
  readonly sentinels: readonly RedisProcess[];
  /** Sentinel addresses, `127.0.0.1:<port>`. */
  readonly sentinelAddresses: readonly string[];
  /** The master address the sentinels currently agree on (asks the first live one). */
  currentMaster(): Promise<string>;
  stop(): Promise<void>;
}

/** Options of {@link startSentinelSet}. */
export interface SentinelSetOptions {
  /** Master name. Default `eoa-test`. */
  readonly name?: string;
  /** `down-after-milliseconds`: silence before a sentinel calls the master down. Default 1,000. */
  readonly downAfterMs?: number;
  /** `failover-timeout`, ms. Default 3,000. */
  readonly failoverTimeoutMs?: number;
  /** How many replicas of the master. Default 1. */
  readonly replicas?: number;
  /**
   * `requirepass` of every sentinel (the Bitnami chart's default): clients must authenticate, and
   * the sentinels use it with each other. Default none.
   */
  readonly sentinelPassword?: string;
  /**
   * Every process (master, replicas, sentinels) speaks TLS only, replication and the sentinels'
   * own links included. Client certificates are not asked for. Default: plain text.
   */
  readonly tls?: Omit<RedisTlsFiles, 'authClients'>;
}

/**
 * Starts a master, its replicas (one unless asked), and three `redis-sentinel`s (quorum 2) with
 * short timeouts, and waits until the replicas are in sync and every sentinel knows them and
 * the others, so a failover can happen as soon as the master is killed.
 */
export async function startSentinelSet(options: SentinelSetOptions = {}): Promise<SentinelSet> {
  const name = options.name ?? 'eoa-test';
  const processes: RedisProcess[] = [];
  const auth =
    options.sentinelPassword === undefined
      ? []
      : ['-a', options.sentinelPassword, '--no-auth-warning'];
  const tls = options.tls === undefined ? undefined : { ...options.tls, authClients: false };
  const cliTls = tls === undefined ? [] : ['--tls', '--cacert', tls.caFile];
  const sentinelCli = (port: number, ...args: string[]) =>
    redisCli(port, ...cliTls, ...auth, ...args);
  const tlsReplication = tls === undefined ? [] : ['--tls-replication', 'yes'];
  const stop = async (): Promise<void> => {
    await Promise.all(processes.map((p) => p.stop()));
  };
  try {
    // Without the default 5 s diskless-sync delay the replica is in sync at once.
    const master = await startRedis({
      args: ['--repl-diskless-sync-delay', '0', ...tlsReplication],
      ...(tls === undefined ? {} : { tls }),
    });
    processes.push(master);
    const replicas: RedisProcess[] = [];
    for (let i = 0; i < (options.replicas ?? 1); i++) {
      const replica = await startRedis({
        // It serves replicas of its own once promoted.
        args: [
          '--replicaof',
          '127.0.0.1',
          String(master.port),
          '--repl-diskless-sync-delay',
          '0',
          ...tlsReplication,
        ],
        ...(tls === undefined ? {} : { tls }),
      });
      processes.push(replica);
      replicas.push(replica);
      await waitFor('the replica to sync', async () =>
        (await redisCli(replica.port, ...cliTls, 'info', 'replication')).includes(
          'master_link_status:up',
        ),
      );
    }
    const replica = replicas[0]!;
    const sentinels: RedisProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const dir = await mkdtemp(join(tmpdir(), 'redis-sentinel-test-'));
      const conf = join(dir, 'sentinel.conf');
      await writeFile(
        conf,
        [
          ...(tls === undefined
            ? [`port ${port}`]
            : [
                'port 0',
                `tls-port ${port}`,
                `tls-cert-file ${tls.certFile}`,
                `tls-key-file ${tls.keyFile}`,
                `tls-ca-cert-file ${tls.caFile}`,
                'tls-auth-clients no',
                'tls-replication yes',
              ]),
          'bind 127.0.0.1',
          'protected-mode no',
          `dir ${dir}`,
          'logfile ""',
          `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1_000}`,
          `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 3_000}`,
          `sentinel parallel-syncs ${name} 1`,
          ...(options.sentinelPassword === undefined
            ? []
            : [`requirepass "${options.sentinelPassword}"`]),
          '',
        ].join('\n'),
      );
      try {
        const sentinel = await launch({
          binary: 'redis-sentinel',
          args: [conf],
          port,
          dir,
          readyLine: /\+monitor master/,
        });
        sentinels.push(sentinel);
        processes.push(sentinel);
      } catch (error) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
    // Sentinels find each other through hello messages on the master, every 2 s.
    const numSlaves = new RegExp(`num-slaves\\s+${replicas.length}\\b`);
    await waitFor('every sentinel to know the replicas and both other sentinels', async () => {
      const views = await Promise.all(
        sentinels.map((s) => sentinelCli(s.port, 'sentinel', 'master', name)),
      );
      return views.every((view) => numSlaves.test(view) && /num-other-sentinels\s+2\b/.test(view));
    });
    return {
      name,
      master,
      replica,
      replicas,
      sentinels,
      sentinelAddresses: sentinels.map((s) => s.address),
      async currentMaster() {
        for (const sentinel of sentinels) {
          try {
            const reply = await sentinelCli(
              sentinel.port,
              'sentinel',
              'get-master-addr-by-name',
              name,
            );
            const [host, port] = reply.split('\n');
            if (host !== undefined && port !== undefined) return `${host}:${port}`;
          } catch {
            // That sentinel is gone; ask the next.
          }
        }
        throw new Error('no sentinel answered');
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Certificates for TLS tests: a CA, a server cert for 127.0.0.1/localhost, a client cert. */
export interface TestCertificates {
  readonly dir: string;
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** A CA that signed nothing here: trusting only it must fail verification. */
  readonly otherCaFile: string;
  remove(): Promise<void>;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir, timeout: 20_000 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw missingBinary('openssl');
    throw error;
  }
}

/** Makes throwaway P-256 certificates with `openssl`, valid for one day. */
export async function createTestCertificates(): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-tls-test-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) {
    await openssl(
      dir,
      'req',
      '-x509',
      ...ec,
      '-keyout',
      `${ca}.key`,
      '-out',
      `${ca}.crt`,
      '-days',
      '1',
      '-subj',
      `/CN=${ca}`,
    );
  }
  const leaves = [
    ['server', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'],
    ['client', 'extendedKeyUsage=clientAuth\n'],
  ] as const;
  for (const [leaf, extensions] of leaves) {
    await writeFile(join(dir, `${leaf}.ext`), extensions);
    await openssl(
      dir,
      'req',
      ...ec,
      '-keyout',
      `${leaf}.key`,
      '-out',
      `${leaf}.csr`,
      '-subj',
      `/CN=${leaf}`,
    );
    await openssl(
      dir,
      'x509',
      '-req',
      '-in',
      `${leaf}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      `${leaf}.ext`,
      '-out',
      `${leaf}.crt`,
    );
  }
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    serverCertFile: join(dir, 'server.crt'),
    serverKeyFile: join(dir, 'server.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
    otherCaFile: join(dir, 'other-ca.crt'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
