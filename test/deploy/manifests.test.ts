import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { parse, parseAllDocuments } from 'yaml';

import { checkConfigFile } from '../../src/config/check.ts';
import { configSchema, DEFAULT_UPSTREAM_HEADERS } from '../../src/config/schema.ts';
import {
  GENERATE_SECRET_COMMAND,
  issuedSecretProblem,
  sessionSecretProblem,
} from '../../src/config/secret-strength.ts';
import { upstreamIncludeDirs } from '../support/upstream-protos.ts';
import { deniedClientHeaders, requestHeadersRead } from './headers-read.ts';
import { crdProblems, loadCrdValidator } from './crd-schema.ts';
import { checkProtoJson, loadProtoRoot } from './proto-json.ts';
import { repoPath } from './repo-path.ts';
import { customPolicyChecks, virtualServiceRoute, type GatewayRequest } from './istio-match.ts';
import { checkManifests, kindOf, type NamedDocument } from './typed-manifest.ts';

// Parsed YAML walked by known paths: a wrong path throws and fails the test, which is the point.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

function readDocuments(folder: string): NamedDocument[] {
  const documents: NamedDocument[] = [];
  for (const file of readdirSync(repoPath(folder)).sort()) {
    if (!file.endsWith('.yaml')) continue;
    const parsed = parseAllDocuments(readFileSync(repoPath(`${folder}/${file}`), 'utf8'));
    parsed.forEach((document, index) => {
      assert.deepEqual(document.errors, [], `${folder}/${file}#${index}`);
      documents.push({
        name: `${folder}/${file}#${index}`,
        document: document.toJS() as Record<string, unknown>,
      });
    });
  }
  return documents;
}

const istio = readDocuments('istio');

function find(kind: string, name?: string): Doc {
  const found = istio.find(
    ({ document }) =>
      kindOf(document).endsWith(` ${kind}`) &&
      (name === undefined || (document['metadata'] as { name?: string }).name === name),
  );
  assert.ok(found, `${kind} ${name ?? ''} in istio/`);
  return found.document;
}

const meshRoot = loadProtoRoot(
  [repoPath('test/deploy/schemas'), ...upstreamIncludeDirs()],
  ['istio-mesh-config.proto'],
);

/** envoy-oidc-authz's part of the mesh config, merged into the operator's own (docs/istio.md). */
const meshFragment: Doc = parse(
  readFileSync(repoPath('istio/mesh-config/extension-providers.yaml'), 'utf8'),
);

function meshProblems(mesh: Doc): string[] {
  return checkProtoJson(meshRoot, 'istio.mesh.v1alpha1.MeshConfig', mesh).map(
    (p) => `${p.path}: ${p.message}`,
  );
}

/** Istio's header list matching: `abc` exact, `abc*` prefix, `*abc` suffix (case-insensitive). */
function istioMatches(list: readonly string[], name: string): boolean {
  return list.some((entry) => {
    const pattern = entry.toLowerCase();
    if (pattern.endsWith('*')) return name.startsWith(pattern.slice(0, -1));
    if (pattern.startsWith('*')) return name.endsWith(pattern.slice(1));
    return name === pattern;
  });
}

/**
 * Every identity header an app of the shipped examples may set: the defaults, each
 * `upstreamHeaders` template of the ConfigMap and of envoy/authz-config.yaml (Grafana's
 * `x-auth-request-role`), the ID token and the access token.
 */
function shippedIdentityHeaders(configText: string): string[] {
  const names = new Set(Object.keys(DEFAULT_UPSTREAM_HEADERS));
  names.add('x-id-token');
  names.add('authorization');
  const envoyConfig: Doc = parse(readFileSync(repoPath('envoy/authz-config.yaml'), 'utf8'));
  const istioConfig: Doc = parse(configText);
  for (const app of [...envoyConfig.apps, ...istioConfig.apps])
    for (const name of Object.keys(app.upstreamHeaders ?? {})) names.add(name.toLowerCase());
  assert.ok(names.has('x-auth-request-role'));
  return [...names];
}

/** Where the Deployment mounts the Secret. */
function mountOfSecrets(): string {
  const deployment = find('Deployment', 'envoy-oidc-authz');
  return deployment.spec.template.spec.containers[0].volumeMounts.find(
    (m: { name: string }) => m.name === 'secrets',
  ).mountPath;
}

/** The Secret's keys as the files the Deployment mounts. */
function secretFiles(): Map<string, string> {
  const secret = find('Secret', 'envoy-oidc-authz');
  const mount = mountOfSecrets();
  return new Map(
    Object.entries(secret.stringData as Record<string, string>).map(([key, value]) => [
      `${mount}/${key}`,
      value,
    ]),
  );
}

describe('istio/ manifests', () => {
  it('covers every kind the deployment needs', () => {
    const kinds = new Set(istio.map(({ document }) => String(document['kind'])));
    for (const kind of [
      'AuthorizationPolicy',
      'VirtualService',
      'Deployment',
      'Service',
      'ConfigMap',
      'Secret',
      'PodDisruptionBudget',
      'HorizontalPodAutoscaler',
      'StatefulSet',
    ]) {
      assert.ok(kinds.has(kind), kind);
    }
  });

  it('validate against the published Kubernetes and Istio models, unknown fields refused', () => {
    assert.deepEqual(Object.fromEntries(checkManifests(istio)), {});
  });

  it('register gRPC and HTTP ext_authz providers that parse as Istio MeshConfig', () => {
    // Only what the server needs: merged into an existing mesh config, nothing else changes.
    assert.deepEqual(Object.keys(meshFragment).sort(), ['extensionProviders', 'pathNormalization']);
    assert.deepEqual(meshProblems(meshFragment), []);
    const providers = meshFragment.extensionProviders;
    const grpc = providers.find((p: Doc) => p.envoyExtAuthzGrpc).envoyExtAuthzGrpc;
    assert.equal(grpc.port, 9001);
    assert.equal(grpc.timeout, '5s');
    assert.equal(grpc.failOpen, false);
    const http = providers.find((p: Doc) => p.envoyExtAuthzHttp).envoyExtAuthzHttp;
    assert.equal(http.port, 9002);
    assert.ok(http.includeRequestHeadersInCheck.includes('cookie'));
    const read = requestHeadersRead();
    // A scan of src/ that finds nothing would pass the loop below: it must find these two.
    assert.ok(read.includes('sec-fetch-site') && read.includes('origin'), read.join(', '));
    for (const name of read)
      assert.ok(istioMatches(http.includeRequestHeadersInCheck, name), `to the check: ${name}`);
    assert.ok(istioMatches(http.headersToUpstreamOnAllow, 'x-auth-request-user'));
    assert.ok(http.headersToUpstreamOnAllow.includes('cookie'), 'session cookie stripped upstream');
    assert.deepEqual(http.headersToDownstreamOnAllow, ['set-cookie', 'dpop-nonce']);
    for (const name of deniedClientHeaders) {
      assert.ok(http.headersToDownstreamOnDeny.includes(name), name);
    }
    const policy = find('AuthorizationPolicy');
    assert.equal(policy.spec.action, 'CUSTOM');
    assert.ok(providers.some((p: Doc) => p.name === policy.spec.provider.name));
  });

  it('normalise paths mesh-wide the strictest way Istio offers', () => {
    // Istio's advice for path-based policy: %2F/%5C decoded, dot segments resolved, `//` merged,
    // so the path the check sees is the path the workload gets.
    assert.equal(meshFragment.pathNormalization?.normalization, 'DECODE_AND_MERGE_SLASHES');
  });

  it('check every request for the host but the back-channel logout POST, which goes to the server', () => {
    // CUSTOM runs only for requests its rules match; `notPaths: [/public/*]` let
    // `/public/../admin` through unchecked and unscrubbed. Public paths are the server's. The
    // one request left out is routed to the server itself, never to the workload.
    const policy = find('AuthorizationPolicy');
    const route = find('VirtualService');
    const logoutPath = '/oauth2/backchannel-logout';
    const toServer = (r: GatewayRequest) =>
      virtualServiceRoute(route, r)?.route[0].destination.host ===
      'envoy-oidc-authz.auth.svc.cluster.local';
    const requests: GatewayRequest[] = [];
    for (const host of ['grafana.example.com', 'Grafana.Example.com:443'])
      for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS'])
        for (const path of [
          '/',
          '/admin',
          '/public/x',
          logoutPath,
          `${logoutPath}/`,
          `${logoutPath}x`,
          '/OAUTH2/backchannel-logout',
          '/oauth2/backchannel-logout-not',
        ])
          requests.push({ host, method, path });
    for (const request of requests) {
      const checked = customPolicyChecks(policy, request);
      const skipped = request.method === 'POST' && request.path === logoutPath;
      assert.equal(checked, !skipped, JSON.stringify(request));
      if (!checked)
        assert.ok(
          toServer(request),
          `unchecked, so routed to the server: ${JSON.stringify(request)}`,
        );
      else
        assert.equal(
          toServer(request),
          false,
          `checked, so routed to the app: ${JSON.stringify(request)}`,
        );
    }
    // Exact paths only: a wildcard would leave a prefix of the app unchecked.
    for (const rule of policy.spec.rules)
      for (const to of rule.to ?? [])
        for (const path of [...(to.operation.notPaths ?? []), ...(to.operation.paths ?? [])])
          assert.ok(!path.includes('*'), path);
  });

  it('list every identity header both ways in the HTTP provider', () => {
    const http = meshFragment.extensionProviders.find(
      (p: Doc) => p.envoyExtAuthzHttp,
    ).envoyExtAuthzHttp;
    const names = shippedIdentityHeaders(find('ConfigMap', 'envoy-oidc-authz').data['config.yaml']);
    for (const name of names) {
      assert.ok(istioMatches(http.headersToUpstreamOnAllow, name), `to the upstream: ${name}`);
      // Sent to the check so the server sees a forged copy and has Envoy remove it.
      if (name !== 'authorization')
        assert.ok(istioMatches(http.includeRequestHeadersInCheck, name), `to the check: ${name}`);
    }
  });

  it('run the server non-root on a read-only root filesystem with requests and both probes', () => {
    const pod = find('Deployment', 'envoy-oidc-authz').spec.template.spec;
    const container = pod.containers[0];
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 1000);
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
    assert.ok(container.resources.requests.cpu && container.resources.requests.memory);
    assert.equal(container.livenessProbe.grpc.port, 9001);
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    const config = container.volumeMounts.find((m: Doc) => m.name === 'config').mountPath;
    assert.deepEqual(container.args, ['serve', '--config', `${config}/config.yaml`]);
    const service = find('Service', 'envoy-oidc-authz');
    assert.deepEqual(
      service.spec.ports.map((p: Doc) => p.port),
      [9001, 9002, 9090],
    );
    assert.equal(find('HorizontalPodAutoscaler').spec.scaleTargetRef.name, 'envoy-oidc-authz');
    assert.ok(find('PodDisruptionBudget').spec.minAvailable >= 1);
  });

  it('time a rolling restart: out of the endpoints within drainDelay, killed only after drainTimeout', () => {
    // The server keeps serving for drainDelay after SIGTERM while /readyz answers 503, then stops
    // accepting and drains for drainTimeout; Kubernetes kills it terminationGracePeriodSeconds
    // after SIGTERM. Values absent from the ConfigMap are the schema's defaults.
    const text = find('ConfigMap', 'envoy-oidc-authz').data['config.yaml'] as string;
    const { drainDelay, drainTimeout } = configSchema.shape.shutdown.parse(
      (parse(text) as { shutdown?: unknown }).shutdown,
    );
    const pod = find('Deployment', 'envoy-oidc-authz').spec.template.spec;
    const container = pod.containers[0];
    assert.ok(
      pod.terminationGracePeriodSeconds * 1000 > drainDelay + drainTimeout,
      `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds}s > drainDelay ${drainDelay} ms + drainTimeout ${drainTimeout} ms`,
    );
    const probe = container.readinessProbe;
    const notReadyWithinMs =
      (probe.periodSeconds * (probe.failureThreshold ?? 3) + (probe.timeoutSeconds ?? 1)) * 1000;
    assert.ok(
      notReadyWithinMs < drainDelay,
      `readiness sees draining within ${notReadyWithinMs} ms, inside drainDelay ${drainDelay} ms`,
    );
    // The server's own delay does what a `preStop: sleep` would, without a shell in the image.
    assert.equal(container.lifecycle?.preStop, undefined);
  });

  it('embed a server config that check-config refuses only for the placeholders of the Secret', () => {
    const configMap = find('ConfigMap', 'envoy-oidc-authz');
    const mount = mountOfSecrets();
    const configPath = '/etc/envoy-oidc-authz/config/config.yaml';
    // Each value the shipped Secret holds, where the config reads it, and what fixes it.
    const refusals = new Map<string, { path: string; message: RegExp; honest: string }>([
      [
        'session-keys',
        {
          path: 'defaults.session.secrets[0]',
          message: /^is a placeholder, not a secret \(it contains "replace"\): generate one with/,
          honest: `${randomBytes(48).toString('base64')}\n`,
        },
      ],
      [
        'grafana-client-secret',
        {
          path: 'apps[0].oidc.clientSecret',
          message:
            /^is a placeholder, not the client secret \(it contains "replace"\): put the client secret the OpenID Provider issued/,
          honest: 'Gq7vY2mTz9KpL4wXc8Rb\n',
        },
      ],
      [
        'redis-password',
        {
          path: 'store.redis.password',
          message:
            /^is a placeholder, not the Redis password \(it contains "replace"\): put the password Redis is configured with/,
          honest: 's3cr3t-dev\n',
        },
      ],
    ]);
    const check = (files: Map<string, string>) => {
      files.set(configPath, configMap.data['config.yaml']);
      return checkConfigFile(
        configPath,
        {},
        {
          readFile: (path: string): string => {
            const text = files.get(path);
            if (text === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
            return text;
          },
        },
      );
    };
    const problemsOf = (output: string) =>
      new Map(
        output
          .split('\n')
          .map((line) => [line.split(': ')[0]!, line.slice(line.indexOf(': ') + 2)]),
      );

    assert.deepEqual(
      [...secretFiles().keys()].sort(),
      [...refusals.keys()].map((key) => `${mount}/${key}`).sort(),
      'every value of the shipped Secret is accounted for',
    );
    const shipped = check(secretFiles());
    assert.equal(shipped.ok, false, 'the shipped Secret must not start a server');
    const found = problemsOf(shipped.output);
    assert.deepEqual(
      [...found.keys()].sort(),
      [...refusals.values()].map((r) => r.path).sort(),
      shipped.output,
    );
    for (const [key, refusal] of refusals) {
      assert.match(found.get(refusal.path)!, refusal.message, key);
      assert.ok(!shipped.output.includes(secretFiles().get(`${mount}/${key}`)!.trim()), key);
    }
    assert.ok(found.get('defaults.session.secrets[0]')!.endsWith(`\`${GENERATE_SECRET_COMMAND}\``));

    // Each placeholder alone, the others replaced, is still refused on its own.
    for (const [key, refusal] of refusals) {
      const files = secretFiles();
      for (const [other, { honest }] of refusals) {
        if (other !== key) files.set(`${mount}/${other}`, honest);
      }
      const alone = check(files);
      assert.equal(alone.ok, false, key);
      assert.deepEqual([...problemsOf(alone.output).keys()], [refusal.path], alone.output);
    }

    // With every value replaced, the rest of the example is a valid configuration.
    const files = secretFiles();
    for (const [key, { honest }] of refusals) files.set(`${mount}/${key}`, honest);
    const replaced = check(files);
    assert.equal(replaced.output, 'config OK: 1 app');
    assert.ok(replaced.ok);
  });
});

describe('shipped keys', () => {
  const shipped = ['istio', 'deploy/contour', 'deploy/gloo', 'envoy'].flatMap(readDocuments);

  it('every session key, client secret and Redis password a shipped Secret holds is refused', () => {
    const counts = { session: 0, client: 0, redis: 0 };
    for (const { name, document } of shipped) {
      if (document['kind'] !== 'Secret') continue;
      const data = {
        ...(document['stringData'] as Record<string, string> | undefined),
        ...Object.fromEntries(
          Object.entries((document['data'] as Record<string, string> | undefined) ?? {}).map(
            ([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')],
          ),
        ),
      };
      for (const [key, value] of Object.entries(data)) {
        if (/session/i.test(key)) {
          for (const line of value.split('\n').filter((l) => l.trim() !== '')) {
            counts.session += 1;
            const problem = sessionSecretProblem(line.trim());
            assert.ok(problem !== undefined, `${name} ${key}: a usable key is shipped`);
            assert.match(problem, /placeholder/, `${name} ${key}`);
          }
        } else if (/client.?secret|password/i.test(key)) {
          const kind = /password/i.test(key) ? 'Redis password' : 'client secret';
          counts[kind === 'Redis password' ? 'redis' : 'client'] += 1;
          // Read as a `…File` is: trailing newlines removed.
          const problem = issuedSecretProblem(value.replace(/\n+$/, ''), kind);
          assert.ok(problem !== undefined, `${name} ${key}: a value that looks real is shipped`);
          assert.match(problem, /placeholder/, `${name} ${key}`);
        }
      }
    }
    for (const [kind, count] of Object.entries(counts)) {
      assert.ok(count >= 1, `the Istio Secret ships a ${kind} placeholder`);
    }
  });

  it('every shipped server config takes its session keys from a file or the environment', () => {
    const configs = shipped.flatMap(({ name, document }) => {
      if (document['kind'] === 'ConfigMap') {
        const data = document['data'] as Record<string, string>;
        return Object.entries(data)
          .filter(([key]) => key.endsWith('.yaml'))
          .map(([key, text]) => ({ name: `${name} ${key}`, config: parse(text) }));
      }
      return 'apps' in document ? [{ name, config: document as Doc }] : [];
    });
    assert.ok(configs.length >= 2, configs.map((c) => c.name).join(', '));
    for (const { name, config } of configs) {
      for (const session of [config.defaults?.session, ...config.apps.map((a: Doc) => a.session)]) {
        for (const secret of (session?.secrets ?? []) as string[]) {
          assert.match(secret, /^\$\{[A-Z0-9_]+\}$/, `${name}: an inline session key`);
        }
      }
    }
  });
});

describe('Contour and Gloo examples', () => {
  const contour = readDocuments('deploy/contour');
  const gloo = readDocuments('deploy/gloo');
  const validators = {
    'projectcontour.io/v1alpha1 ExtensionService': loadCrdValidator('contour-extension-service'),
    'projectcontour.io/v1 HTTPProxy': loadCrdValidator('contour-http-proxy'),
    'gloo.solo.io/v1 Settings': loadCrdValidator('gloo-settings'),
    'gateway.solo.io/v1 VirtualService': loadCrdValidator('gloo-virtual-service'),
    'gateway.solo.io/v1 Gateway': loadCrdValidator('gloo-gateway'),
  } as const;

  function problems(document: Record<string, unknown>): string[] {
    const validate = validators[kindOf(document) as keyof typeof validators];
    assert.ok(validate, `a schema for ${kindOf(document)}`);
    return crdProblems(validate, document);
  }

  it('validate against their CRDs, unknown fields refused', () => {
    assert.equal(contour.length + gloo.length, 5);
    for (const { name, document } of [...contour, ...gloo]) {
      assert.deepEqual(problems(document), [], name);
    }
  });

  it('choose the app through the route context', () => {
    const proxy: Doc = contour.find((d) => d.document['kind'] === 'HTTPProxy')!.document;
    assert.equal(proxy.spec.virtualhost.authorization.authPolicy.context.app, 'grafana');
    assert.equal(proxy.spec.virtualhost.authorization.failOpen, false);
    const service: Doc = gloo.find((d) => d.document['kind'] === 'VirtualService')!.document;
    assert.equal(
      service.spec.virtualHost.options.extauth.customAuth.contextExtensions.app,
      'grafana',
    );
  });

  it('turn the check off on no route', () => {
    // A route without the check matched on the raw path: `/public/../admin` went unchecked.
    const proxy: Doc = contour.find((d) => d.document['kind'] === 'HTTPProxy')!.document;
    assert.equal(proxy.spec.virtualhost.authorization.authPolicy.disabled, undefined);
    for (const route of proxy.spec.routes) assert.equal(route.authPolicy?.disabled, undefined);
    const service: Doc = gloo.find((d) => d.document['kind'] === 'VirtualService')!.document;
    for (const route of service.spec.virtualHost.routes)
      assert.equal(route.options?.extauth?.disable, undefined);
  });

  it("set Gloo's gateway as Envoy advises: normalised paths, no underscores", () => {
    const gateway: Doc = gloo.find((d) => d.document['kind'] === 'Gateway')?.document;
    assert.ok(gateway, 'a Gateway in deploy/gloo');
    const settings = gateway.spec.httpGateway.options.httpConnectionManagerSettings;
    assert.equal(settings.normalizePath, true);
    assert.equal(settings.mergeSlashes, true);
    assert.ok(
      ['UNESCAPE_AND_REDIRECT', 'REJECT_REQUEST'].includes(settings.pathWithEscapedSlashesAction),
    );
    assert.equal(settings.headersWithUnderscoresAction, 'REJECT_REQUEST');
  });

  it('fail on a misspelt field in each kind', () => {
    for (const { name, document } of [...contour, ...gloo]) {
      const broken: Doc = structuredClone(document);
      broken.spec.timeoutPolicie = {};
      assert.ok(
        problems(broken).some((p) => p.includes('timeoutPolicie')),
        `${name} accepted a misspelt spec field`,
      );
    }
    const proxy: Doc = structuredClone(
      contour.find((d) => d.document['kind'] === 'HTTPProxy')!.document,
    );
    proxy.spec.virtualhost.authorization.failOpn = false;
    assert.deepEqual(problems(proxy), [
      '/spec/virtualhost/authorization: must NOT have additional properties (failOpn)',
    ]);
  });
});

describe('misspelt fields in the Kubernetes and Istio manifests', () => {
  it('a misspelt container field fails the Deployment', () => {
    const deployment: Doc = structuredClone(find('Deployment', 'envoy-oidc-authz'));
    const security = deployment.spec.template.spec.containers[0].securityContext;
    security.readOnlyRootFilesytem = true;
    delete security.readOnlyRootFilesystem;
    const found = checkManifests([{ name: 'broken', document: deployment }]).get('broken') ?? [];
    assert.equal(found.length, 1, found.join('\n'));
    assert.match(found[0]!, /readOnlyRootFilesytem/);
  });

  it('a wrong value type fails the Service', () => {
    const service: Doc = structuredClone(find('Service', 'envoy-oidc-authz'));
    service.spec.ports[0].port = 'grpc';
    const found = checkManifests([{ name: 'broken', document: service }]).get('broken') ?? [];
    assert.ok(found.length >= 1);
    assert.ok(
      found.some((p) => /port/.test(p)),
      found.join('\n'),
    );
  });

  it('a misspelt AuthorizationPolicy field fails', () => {
    const policy: Doc = structuredClone(find('AuthorizationPolicy'));
    policy.spec.provder = policy.spec.provider;
    delete policy.spec.provider;
    const found = checkManifests([{ name: 'broken', document: policy }]).get('broken') ?? [];
    assert.ok(
      found.some((p) => /provder/.test(p)),
      found.join('\n'),
    );
  });

  it('a misspelt extension provider field fails the mesh config', () => {
    const mesh: Doc = structuredClone(meshFragment);
    const http = mesh.extensionProviders[1].envoyExtAuthzHttp;
    http.headersToUpstreamOnAlow = http.headersToUpstreamOnAllow;
    delete http.headersToUpstreamOnAllow;
    assert.deepEqual(meshProblems(mesh), [
      'extensionProviders[1].envoyExtAuthzHttp.headersToUpstreamOnAlow: unknown field in istio.mesh.v1alpha1.MeshConfig.ExtensionProvider.EnvoyExternalAuthorizationHttpProvider',
    ]);
  });

  it('a Secret key the config needs but the Secret lacks fails check-config', () => {
    const configMap = find('ConfigMap', 'envoy-oidc-authz');
    const files = secretFiles();
    files.delete('/etc/envoy-oidc-authz/secrets/session-keys');
    files.set('/config.yaml', configMap.data['config.yaml']);
    const result = checkConfigFile(
      '/config.yaml',
      {},
      {
        readFile: (path) => {
          const text = files.get(path);
          if (text === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
          return text;
        },
      },
    );
    assert.equal(result.ok, false);
    assert.match(result.output, /secretsFile/);
  });
});
