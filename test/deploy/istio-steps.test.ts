/**
 * The steps docs/istio.md gives for an existing mesh: the providers merged into the mesh config
 * the operator already has (the `istio` ConfigMap, or their own IstioOperator) keep everything
 * else; nothing shipped reinstalls Istio or replaces its mesh config; and the back-channel
 * logout route reaches the server's HTTP listener at the path the server config names.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { parse, parseAllDocuments, stringify } from 'yaml';

import { upstreamIncludeDirs } from '../support/upstream-protos.ts';
import { checkProtoJson, loadProtoRoot } from './proto-json.ts';
import { repoPath } from './repo-path.ts';
import { istioDocument } from './istio-documents.ts';
import { checkManifests } from './typed-manifest.ts';

// Parsed YAML walked by known paths: a wrong path throws and fails the test.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

const fragment: Doc = parse(
  readFileSync(repoPath('istio/mesh-config/extension-providers.yaml'), 'utf8'),
);

const meshRoot = loadProtoRoot(
  [repoPath('test/deploy/schemas'), ...upstreamIncludeDirs()],
  ['istio-mesh-config.proto'],
);

/**
 * The merge docs/istio.md describes, done by hand in a real mesh: our providers appended to the
 * ones already there (one of the same name replaced), `pathNormalization` set; nothing else
 * touched.
 */
function mergeIntoMesh(existing: Doc): Doc {
  const ours = new Set((fragment.extensionProviders as Doc[]).map((p) => p.name));
  return {
    ...existing,
    pathNormalization: fragment.pathNormalization,
    extensionProviders: [
      ...((existing.extensionProviders as Doc[] | undefined) ?? []).filter(
        (p) => !ours.has(p.name),
      ),
      ...fragment.extensionProviders,
    ],
  };
}

/** A mesh config as istiod's Helm chart writes it, with a tracing provider already set up. */
const existingMesh = {
  accessLogFile: '/dev/stdout',
  defaultConfig: {
    discoveryAddress: 'istiod.istio-system.svc:15012',
    holdApplicationUntilProxyStarts: true,
  },
  enablePrometheusMerge: true,
  rootNamespace: 'istio-system',
  trustDomain: 'cluster.local',
  defaultProviders: { tracing: ['otel'] },
  extensionProviders: [
    {
      name: 'otel',
      opentelemetry: { service: 'otel-collector.observability.svc.cluster.local', port: 4317 },
    },
  ],
};

describe('registering the providers on an existing mesh', () => {
  it('ships the providers as a mesh config fragment, not an object that reinstalls or replaces', () => {
    // Not an IstioOperator (`istioctl install -f` with it alone reinstalls with the default
    // profile) and not the `istio` ConfigMap (applying it replaces the whole mesh config).
    assert.equal(fragment.apiVersion, undefined);
    assert.equal(fragment.kind, undefined);
    for (const file of readdirSync(repoPath('istio')).filter((f) => f.endsWith('.yaml'))) {
      for (const document of parseAllDocuments(readFileSync(repoPath(`istio/${file}`), 'utf8'))) {
        const object = document.toJS();
        assert.notEqual(object.kind, 'IstioOperator', file);
        assert.ok(
          !(object.kind === 'ConfigMap' && object.metadata.namespace === 'istio-system'),
          `${file} would replace Istio's own ConfigMap`,
        );
      }
    }
  });

  it('merged into the istio ConfigMap, keeps every setting and provider already there', () => {
    const configMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'istio', namespace: 'istio-system' },
      data: { mesh: stringify(existingMesh), meshNetworks: 'networks: {}\n' },
    };
    const merged = structuredClone(configMap);
    merged.data.mesh = stringify(mergeIntoMesh(parse(configMap.data.mesh)));
    assert.deepEqual(checkManifests([{ name: 'istio', document: merged }]), new Map());
    const mesh: Doc = parse(merged.data.mesh);
    for (const [key, value] of Object.entries(existingMesh)) {
      if (key !== 'extensionProviders') assert.deepEqual(mesh[key], value, key);
    }
    assert.deepEqual(
      (mesh.extensionProviders as Doc[]).map((p) => p.name),
      ['otel', 'envoy-oidc-authz-grpc', 'envoy-oidc-authz-http'],
    );
    assert.equal(merged.data.meshNetworks, configMap.data.meshNetworks);
    // Our part of it is still valid MeshConfig (the reduced proto declares only that part).
    const ours = {
      pathNormalization: mesh.pathNormalization,
      extensionProviders: (mesh.extensionProviders as Doc[]).filter((p) => p.name !== 'otel'),
    };
    assert.deepEqual(checkProtoJson(meshRoot, 'istio.mesh.v1alpha1.MeshConfig', ours), []);
  });

  it('merged into your own IstioOperator, keeps its profile, components and values', () => {
    const operator = {
      apiVersion: 'install.istio.io/v1alpha1',
      kind: 'IstioOperator',
      metadata: { name: 'main', namespace: 'istio-system' },
      spec: {
        profile: 'default',
        revision: '1-24',
        meshConfig: existingMesh,
        components: { ingressGateways: [{ name: 'istio-ingressgateway', enabled: true }] },
        values: { global: { proxy: { resources: { requests: { cpu: '50m' } } } } },
      },
    };
    const merged = structuredClone(operator);
    merged.spec.meshConfig = mergeIntoMesh(operator.spec.meshConfig);
    assert.deepEqual(checkManifests([{ name: 'operator', document: merged }]), new Map());
    for (const key of ['profile', 'revision', 'components', 'values'] as const) {
      assert.deepEqual(merged.spec[key], operator.spec[key], key);
    }
    assert.equal(merged.spec.meshConfig.extensionProviders.length, 3);
  });

  it('docs/istio.md installs nothing with istioctl and applies only Kubernetes objects that exist', () => {
    const text = readFileSync(repoPath('docs/istio.md'), 'utf8');
    assert.doesNotMatch(text, /istioctl install -f istio\//);
    const applied = [...text.matchAll(/-f (istio\/[\w./-]+\.yaml)/g)].map((m) => m[1] ?? '');
    assert.ok(applied.includes('istio/authorization-policy.yaml'));
    for (const file of applied) {
      assert.ok(!file.startsWith('istio/mesh-config/'), `${file} is merged, never applied`);
      const document = istioDocument(file.slice('istio/'.length));
      assert.equal(typeof document.kind, 'string', file);
    }
  });
});

describe('the back-channel logout route', () => {
  const route: Doc = istioDocument('backchannel-logout-route.yaml');
  const policy: Doc = istioDocument('authorization-policy.yaml');
  const service: Doc = istioDocument('service.yaml');
  const deployment: Doc = istioDocument('deployment.yaml');
  const config: Doc = parse(istioDocument('configmap.yaml').data['config.yaml'] as string);
  const app: Doc = config.apps.find((a: Doc) => a.name === 'grafana');

  it("sends the provider's POST at the server config's path to the server's HTTP listener", () => {
    const first = route.spec.http[0];
    assert.deepEqual(first.match, [
      { uri: { exact: app.oidc.backchannelLogoutPath }, method: { exact: 'POST' } },
    ]);
    const destination = first.route[0].destination;
    assert.equal(
      destination.host,
      `${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`,
    );
    // Service port → its targetPort (a container port name) → the container port → listen.http.
    const servicePort = (service.spec.ports as Doc[]).find(
      (p) => p.port === destination.port.number,
    );
    const containerPort = (deployment.spec.template.spec.containers[0].ports as Doc[]).find(
      (p) => p.name === servicePort.targetPort,
    );
    assert.equal(
      String(containerPort.containerPort),
      (config.listen.http as string).split(':').at(-1),
      'the HTTP listener, which reads the body',
    );
    assert.equal(servicePort.appProtocol, 'http');
    assert.equal(first.rewrite, undefined, 'the path and Host reach the server as sent');
  });

  it('is for the hosts the policy checks and the app matches', () => {
    assert.deepEqual(route.spec.hosts, app.match.hosts);
    for (const rule of policy.spec.rules) {
      assert.deepEqual(
        rule.to[0].operation.hosts.filter((h: string) => !h.endsWith(':*')),
        app.match.hosts,
      );
    }
    const excluded = policy.spec.rules.flatMap((r: Doc) => r.to[0].operation.notPaths ?? []);
    assert.deepEqual(excluded, [app.oidc.backchannelLogoutPath]);
  });
});
