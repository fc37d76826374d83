/** TLS and mTLS on the gRPC and HTTP listeners, checked with clients we did not write: gRPC C-core (python3-grpcio) and curl. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { startTestProvider, type TestProvider } from '../../dev/test-provider.ts';
import { repoPath } from '../deploy/repo-path.ts';
import { EnvoyClient } from '../support/envoy-client.ts';
import { spawnServer, type ServerProcess } from '../support/server-process.ts';
import { makeCa, makeLeaf, type CertFiles } from '../support/test-certs.ts';
import { testSessionSecret } from '../support/test-server.ts';
import { loadUpstreamProtos } from '../support/upstream-protos.ts';

const PYTHON = '/usr/bin/python3';
const clientScript = repoPath('test/fixtures/grpc/tls_client.py');
const protos = loadUpstreamProtos();
const HEALTH_CHECK = '/grpc.health.v1.Health/Check';
/** `HealthCheckResponse{status: SERVING}`. */
const SERVING = '0801';

function run(file: string, args: readonly string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 20_000 }, (error, stdout) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout: stdout.trim() });
    });
  });
}

/** One unary call from gRPC C-core; `error <CODE>` or the response's hex. */
async function pythonCall(
  port: number,
  ca: string,
  method: string,
  requestHex: string,
  client?: CertFiles,
): Promise<string> {
  if (!existsSync(PYTHON)) throw new Error('python3 is missing: apt-get install -y python3-grpcio');
  const args = [clientScript, `127.0.0.1:${port}`, ca, method, requestHex];
  if (client !== undefined) args.push(client.cert, client.key);
  const { stdout } = await run(PYTHON, args);
  if (stdout.includes('No module named')) {
    throw new Error("python3's grpc module is missing: apt-get install -y python3-grpcio");
  }
  return stdout;
}

/** curl's answer status for a navigation to the app through the HTTP listener ('000': none). */
async function curlStatus(port: number, ca: string, client?: CertFiles): Promise<string> {
  const args = ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', ca];
  if (client !== undefined) args.push('--cert', client.cert, '--key', client.key);
  args.push('-H', 'host: web.example.com', '-H', 'accept: text/html');
  args.push(`https://127.0.0.1:${port}/page`);
  const { stdout } = await run('curl', args);
  return stdout;
}

/** A Check for a navigation to the app, serialized as Envoy sends it. */
function checkRequestHex(): string {
  const envoy = new EnvoyClient({ target: '127.0.0.1:1', protos });
  const method = protos.AuthorizationClient.service['Check']!;
  const request = envoy.buildCheckRequest({
    method: 'GET',
    path: '/page',
    authority: 'web.example.com',
    scheme: 'https',
    protocol: 'HTTP/2',
    lines: [['accept', 'text/html']],
  } as never);
  envoy.close();
  return method.requestSerialize(request).toString('hex');
}

/** The SHA-256 fingerprint of the certificate the listener presents now. */
function presentedFingerprint(
  port: number,
  ca: readonly string[],
  alpn: 'h2' | 'http/1.1' = 'h2',
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: [...ca], ALPNProtocols: [alpn] }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

describe('listen.tls', () => {
  let provider: TestProvider;
  let dir: string;
  let serverCa: CertFiles;
  let server: CertFiles;
  let clientCa: CertFiles;
  let client: CertFiles;
  let stranger: CertFiles;

  before(async () => {
    provider = await startTestProvider({ clients: [] });
    dir = mkdtempSync(join(tmpdir(), 'eoa-tls-'));
    serverCa = makeCa(dir, 'server-ca');
    server = makeLeaf(dir, 'server', serverCa, 'server');
    clientCa = makeCa(dir, 'client-ca');
    client = makeLeaf(dir, 'envoy', clientCa, 'client');
    const otherCa = makeCa(dir, 'other-ca');
    stranger = makeLeaf(dir, 'stranger', otherCa, 'client');
  });
  after(async () => {
    await provider.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const document = (tls: Record<string, string>) => ({
    log: { level: 'info' },
    listen: { tls },
    apps: [
      {
        name: 'web',
        match: { hosts: ['web.example.com'] },
        oidc: { issuer: provider.issuer, clientId: 'web', clientSecret: 's' },
        session: { secrets: [testSessionSecret] },
      },
    ],
  });

  async function withServer(
    tls: Record<string, string>,
    body: (proc: ServerProcess) => Promise<void>,
  ): Promise<void> {
    const proc = await spawnServer(document(tls));
    try {
      await body(proc);
    } finally {
      await proc.stop('SIGKILL');
    }
  }

  it('TLS: gRPC C-core gets health and Check answers, grpc-js with TLS too, curl an HTTPS answer; plain text is refused', async () => {
    await withServer({ certFile: server.cert, keyFile: server.key }, async (proc) => {
      assert.equal(await pythonCall(proc.ports.grpc, serverCa.cert, HEALTH_CHECK, ''), SERVING);
      const answer = await pythonCall(
        proc.ports.grpc,
        serverCa.cert,
        protos.AuthorizationClient.service['Check']!.path,
        checkRequestHex(),
      );
      assert.match(answer, /^[0-9a-f]+$/, `a CheckResponse, not ${answer}`);

      const tlsEnvoy = new EnvoyClient({
        target: proc.grpcTarget,
        protos,
        timeoutMs: 5_000,
        credentials: grpc.credentials.createSsl(readFileSync(serverCa.cert)),
      });
      const outcome = await tlsEnvoy.check({
        url: 'https://web.example.com/page',
        headers: [['accept', 'text/html']],
      });
      tlsEnvoy.close();
      assert.equal(outcome.kind, 'deny', 'a login redirect');
      assert.ok(outcome.kind === 'deny' && outcome.status === 302);

      assert.equal(await curlStatus(proc.ports.http, serverCa.cert), '302');

      const plain = new EnvoyClient({ target: proc.grpcTarget, protos, timeoutMs: 2_000 });
      const refused = await plain.check({ url: 'https://web.example.com/page' });
      plain.close();
      assert.equal(refused.kind, 'error', 'a plain-text client gets no answer');
    });
  });

  it('mTLS: a client certificate from clientCa is served; none, or one from another CA, is refused', async () => {
    await withServer(
      { certFile: server.cert, keyFile: server.key, clientCaFile: clientCa.cert },
      async (proc) => {
        const grpcPort = proc.ports.grpc;
        assert.equal(await pythonCall(grpcPort, serverCa.cert, HEALTH_CHECK, '', client), SERVING);
        assert.equal(
          await pythonCall(grpcPort, serverCa.cert, HEALTH_CHECK, ''),
          'error UNAVAILABLE',
        );
        assert.equal(
          await pythonCall(grpcPort, serverCa.cert, HEALTH_CHECK, '', stranger),
          'error UNAVAILABLE',
        );
        assert.equal(await curlStatus(proc.ports.http, serverCa.cert, client), '302');
        assert.equal(await curlStatus(proc.ports.http, serverCa.cert), '000');
        assert.equal(await curlStatus(proc.ports.http, serverCa.cert, stranger), '000');
      },
    );
  });

  it('serves a rotated certificate file on the next handshake, without a restart or a signal', async () => {
    const live = { cert: join(dir, 'live.pem'), key: join(dir, 'live.key') };
    copyFileSync(server.cert, live.cert);
    copyFileSync(server.key, live.key);
    const nextCa = makeCa(dir, 'next-ca');
    const next = makeLeaf(dir, 'next', nextCa, 'server');
    await withServer({ certFile: live.cert, keyFile: live.key }, async (proc) => {
      const cas = [readFileSync(serverCa.cert, 'utf8'), readFileSync(nextCa.cert, 'utf8')];
      const before = await presentedFingerprint(proc.ports.grpc, cas);
      copyFileSync(next.key, live.key);
      copyFileSync(next.cert, live.cert);
      const deadline = Date.now() + 15_000;
      let now = before;
      while (now === before && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        now = await presentedFingerprint(proc.ports.grpc, cas);
      }
      assert.notEqual(now, before, 'the new certificate is presented');
      assert.equal(await presentedFingerprint(proc.ports.http, cas, 'http/1.1'), now);
      assert.equal(await pythonCall(proc.ports.grpc, nextCa.cert, HEALTH_CHECK, ''), SERVING);
      assert.match(proc.output(), /listener certificate reloaded/);
    });
  });
});
