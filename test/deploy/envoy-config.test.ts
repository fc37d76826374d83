import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { parse } from 'yaml';

import { parseDuration } from '../../src/config/duration.ts';
import { loadConfig } from '../../src/config/load.ts';
import { configSchema } from '../../src/config/schema.ts';
import { upstreamIncludeDirs } from '../support/upstream-protos.ts';
import { deniedClientHeaders, requestHeadersRead } from './headers-read.ts';
import { checkProtoJson, loadProtoRoot, type ProtoJsonProblem } from './proto-json.ts';
import { repoPath } from './repo-path.ts';

// Bootstrap pulls in listeners, routes, clusters and health checks; the extensions that the
// configs name by `@type` are loaded beside it so every typed_config can be resolved.
const root = loadProtoRoot(upstreamIncludeDirs(), [
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
]);

// Parsed YAML walked by known paths: a wrong path throws and fails the test, which is the point.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

const bootstrap = 'envoy.config.bootstrap.v3.Bootstrap';

function readYaml(relative: string): Doc {
  return parse(readFileSync(repoPath(relative), 'utf8'));
}

function paths(problems: readonly ProtoJsonProblem[]): string[] {
  return problems.map((p) => p.path);
}

function hcm(config: Doc): Doc {
  return config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
}

function extAuthz(config: Doc): Doc {
  return hcm(config).http_filters.find(
    (f: { name: string }) => f.name === 'envoy.filters.http.ext_authz',
  ).typed_config;
}

function cluster(config: Doc, name: string): Doc {
  return config.static_resources.clusters.find((c: { name: string }) => c.name === name);
}

const extAuthzName = 'envoy.filters.http.ext_authz';

/** Every HTTP connection manager of every listener and filter chain. */
function connectionManagers(config: Doc): Doc[] {
  const found: Doc[] = [];
  for (const listener of config.static_resources.listeners)
    for (const chain of listener.filter_chains)
      for (const filter of chain.filters)
        if (filter.name === 'envoy.filters.network.http_connection_manager')
          found.push(filter.typed_config);
  return found;
}

/**
 * What Envoy's edge guidance (best_practices/edge) asks of a connection manager whose routes and
 * ext_authz decide by path, and of the routes: nothing skips the check by a raw prefix.
 */
function hardeningProblems(config: Doc): string[] {
  const problems: string[] = [];
  const managers = connectionManagers(config);
  if (managers.length === 0) problems.push('no http_connection_manager');
  for (const manager of managers) {
    const name = manager.stat_prefix as string;
    if (manager.normalize_path !== true) problems.push(`${name}: normalize_path is not true`);
    if (manager.merge_slashes !== true) problems.push(`${name}: merge_slashes is not true`);
    if (
      !['UNESCAPE_AND_REDIRECT', 'REJECT_REQUEST'].includes(
        manager.path_with_escaped_slashes_action,
      )
    )
      problems.push(`${name}: path_with_escaped_slashes_action keeps %2F and %5C`);
    if (manager.common_http_protocol_options?.headers_with_underscores_action !== 'REJECT_REQUEST')
      problems.push(`${name}: headers with underscores reach the upstream`);
    for (const host of manager.route_config.virtual_hosts) {
      const entries: Doc[] = [host, ...host.routes];
      for (const entry of entries) {
        if (entry.typed_per_filter_config?.[extAuthzName]?.disabled === true)
          problems.push(
            `${name}: ${host.name} ${JSON.stringify(entry.match ?? {})} skips ext_authz`,
          );
      }
    }
  }
  return problems;
}

/** The identity headers the shipped server config may set upstream, per app. */
function identityHeaderNames(): Map<string, string[]> {
  const result = loadConfig(
    { path: repoPath('envoy/authz-config.yaml') },
    {
      SESSION_KEY: 'a-session-key-of-at-least-32-bytes-long',
      GRAFANA_CLIENT_SECRET: 'grafana-secret',
      WIKI_CLIENT_SECRET: 'wiki-secret',
    },
  );
  assert.ok(result.ok);
  return new Map(
    result.config.apps.map((app) => [
      app.name,
      [
        ...Object.keys(app.upstreamHeaders),
        ...(app.passAccessToken ? ['authorization'] : []),
        ...(app.passIdToken ? ['x-id-token'] : []),
      ],
    ]),
  );
}

/** Envoy's StringMatcher as used in the ext_authz header lists (exact and prefix here). */
function matchesAny(list: { patterns: Doc[] }, name: string): boolean {
  return list.patterns.some(
    (p) =>
      (p.exact !== undefined && p.exact === name) ||
      (p.prefix !== undefined && name.startsWith(p.prefix)),
  );
}

describe('envoy/envoy.yaml (gRPC mode)', () => {
  const config = readYaml('envoy/envoy.yaml');

  it('parses as an Envoy Bootstrap with every typed_config resolved', () => {
    assert.deepEqual(checkProtoJson(root, bootstrap, config), []);
  });

  it('checks over gRPC with a 5s timeout, failing closed', () => {
    const filter = extAuthz(config);
    assert.equal(filter.grpc_service.envoy_grpc.cluster_name, 'envoy-oidc-authz');
    assert.equal(filter.grpc_service.timeout, '5s');
    assert.equal(filter.failure_mode_allow, false);
    assert.equal(filter.transport_api_version, 'V3');
    const names = hcm(config).http_filters.map((f: { name: string }) => f.name);
    assert.deepEqual(names.slice(-1), ['envoy.filters.http.router'], 'router must be last');
  });

  it('is hardened as Envoy advises: normalised paths, no underscores, no unchecked route', () => {
    assert.deepEqual(hardeningProblems(config), []);
  });

  it('chooses the app per route and sends the back-channel logout body', () => {
    const hosts = hcm(config).route_config.virtual_hosts;
    const perRoute = (entry: Doc) =>
      entry.typed_per_filter_config?.['envoy.filters.http.ext_authz'];
    const apps = new Set<string>();
    let withBody = 0;
    for (const host of hosts) {
      const hostApp = perRoute(host)?.check_settings?.context_extensions?.app;
      if (hostApp !== undefined) apps.add(hostApp);
      for (const route of host.routes) {
        const settings = perRoute(route);
        if (settings?.check_settings?.with_request_body !== undefined) withBody++;
        const app = settings?.check_settings?.context_extensions?.app;
        if (app !== undefined) apps.add(app);
      }
    }
    assert.deepEqual([...apps].sort(), ['grafana', 'wiki']);
    assert.equal(withBody, 1);
  });

  it('talks HTTP/2 to the server and health-checks it over gRPC', () => {
    const authz = cluster(config, 'envoy-oidc-authz');
    const options =
      authz.typed_extension_protocol_options[
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions'
      ];
    assert.ok(options.explicit_http_config.http2_protocol_options);
    assert.equal(
      authz.health_checks[0].grpc_health_check.service_name,
      'envoy.service.auth.v3.Authorization',
    );
  });
});

describe('envoy/envoy-http.yaml (HTTP mode)', () => {
  const config = readYaml('envoy/envoy-http.yaml');

  it('parses as an Envoy Bootstrap with every typed_config resolved', () => {
    assert.deepEqual(checkProtoJson(root, bootstrap, config), []);
  });

  it('sends the cookie to the check and lets identity, cookies and redirects through', () => {
    const filter = extAuthz(config);
    assert.equal(filter.http_service.server_uri.timeout, '5s');
    assert.equal(filter.failure_mode_allow, false);
    const exact = (list: { patterns: { exact?: string; prefix?: string }[] }) =>
      list.patterns.map((p) => p.exact ?? `${p.prefix}*`);
    assert.ok(exact(filter.allowed_headers).includes('cookie'));
    const response = filter.http_service.authorization_response;
    assert.ok(exact(response.allowed_upstream_headers).includes('x-auth-request-*'));
    assert.deepEqual(exact(response.allowed_client_headers_on_success), [
      'set-cookie',
      'dpop-nonce',
    ]);
    for (const name of deniedClientHeaders) {
      assert.ok(exact(response.allowed_client_headers).includes(name), name);
    }
  });

  it('is hardened as Envoy advises: normalised paths, no underscores, no unchecked route', () => {
    assert.deepEqual(hardeningProblems(config), []);
  });

  it('sends the check every request header the server reads', () => {
    const filter = extAuthz(config);
    const read = requestHeadersRead();
    assert.ok(read.includes('sec-fetch-site') && read.includes('origin'), read.join(', '));
    for (const name of read)
      assert.ok(matchesAny(filter.allowed_headers, name), `sent to the check: ${name}`);
  });

  // HTTP mode shows the server only the listed request headers and takes back only the listed
  // response headers (ENVOY.md §4): every identity header an app may set must be in both lists,
  // so a forged copy is seen (and named in x-envoy-auth-headers-to-remove) and a real one lands.
  for (const [app, names] of identityHeaderNames()) {
    it(`lists every identity header of app ${app} both ways (${names.join(', ')})`, () => {
      const filter = extAuthz(config);
      const response = filter.http_service.authorization_response;
      for (const name of names) {
        assert.ok(matchesAny(response.allowed_upstream_headers, name), `upstream: ${name}`);
        assert.ok(matchesAny(filter.allowed_headers, name), `sent to the check: ${name}`);
      }
    });
  }
});

describe('the hardening check', () => {
  const clean = readYaml('envoy/envoy.yaml');

  for (const [what, breakIt] of [
    ['normalize_path off', (m: Doc) => delete m.normalize_path],
    ['merge_slashes off', (m: Doc) => (m.merge_slashes = false)],
    ['escaped slashes kept', (m: Doc) => (m.path_with_escaped_slashes_action = 'KEEP_UNCHANGED')],
    ['underscores allowed', (m: Doc) => delete m.common_http_protocol_options],
    [
      'a /public/ route without the check',
      (m: Doc) =>
        m.route_config.virtual_hosts[0].routes.unshift({
          match: { prefix: '/public/' },
          route: { cluster: 'grafana' },
          typed_per_filter_config: { [extAuthzName]: { disabled: true } },
        }),
    ],
  ] as const) {
    it(`fails on ${what}`, () => {
      const broken = structuredClone(clean);
      breakIt(hcm(broken));
      assert.equal(hardeningProblems(broken).length, 1, hardeningProblems(broken).join('\n'));
    });
  }
});

describe('the strict proto-JSON check', () => {
  const clean = readYaml('envoy/envoy.yaml');

  it('fails on a misspelt field name', () => {
    const broken = structuredClone(clean);
    const authz = cluster(broken, 'envoy-oidc-authz');
    authz.conect_timeout = authz.connect_timeout;
    delete authz.connect_timeout;
    assert.deepEqual(paths(checkProtoJson(root, bootstrap, broken)), [
      'static_resources.clusters[0].conect_timeout',
    ]);
  });

  it('fails on a misspelt field inside a typed_config', () => {
    const broken = structuredClone(clean);
    const filter = extAuthz(broken);
    filter.failure_mode_alow = false;
    delete filter.failure_mode_allow;
    const problems = checkProtoJson(root, bootstrap, broken);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.path, /http_filters\[0\]\.typed_config\.failure_mode_alow$/);
    assert.match(problems[0]!.message, /unknown field in .*ExtAuthz/);
  });

  it('fails on an unknown @type', () => {
    const broken = structuredClone(clean);
    extAuthz(broken)['@type'] =
      'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuth';
    const problems = checkProtoJson(root, bootstrap, broken);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.message, /unknown message type .*ExtAuth$/);
  });

  it('fails on wrong JSON types: a bad duration, a string port, an unknown enum name', () => {
    const broken = structuredClone(clean);
    extAuthz(broken).grpc_service.timeout = '5 seconds';
    const authz = cluster(broken, 'envoy-oidc-authz');
    authz.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value =
      'grpc';
    authz.lb_policy = 'ROUND_ROBINN';
    const problems = paths(checkProtoJson(root, bootstrap, broken));
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.ok(problems.some((p) => p.endsWith('grpc_service.timeout')));
    assert.ok(problems.some((p) => p.endsWith('socket_address.port_value')));
    assert.ok(problems.some((p) => p.endsWith('clusters[0].lb_policy')));
  });

  it('fails on two members of one oneof', () => {
    const broken = structuredClone(clean);
    extAuthz(broken).http_service = {
      server_uri: { uri: 'http://x', cluster: 'x', timeout: '1s' },
    };
    const problems = checkProtoJson(root, bootstrap, broken);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.message, /oneof services already set by grpc_service/);
  });

  it('accepts the lowerCamelCase names Envoy also accepts', () => {
    const camel = structuredClone(clean);
    const authz = cluster(camel, 'envoy-oidc-authz');
    authz.connectTimeout = authz.connect_timeout;
    delete authz.connect_timeout;
    assert.deepEqual(checkProtoJson(root, bootstrap, camel), []);
  });
});

describe('health checks of the shipped Envoy configs', () => {
  // A replica reports NOT_SERVING on SIGTERM and keeps serving for shutdown.drainDelay: Envoy
  // must have taken it out of rotation by then, or checks go to a closed listener.
  const { drainDelay } = configSchema.shape.shutdown.parse(
    (readYaml('envoy/authz-config.yaml') as { shutdown?: unknown }).shutdown,
  );
  const ms = (value: string): number => {
    const parsed = parseDuration(value);
    assert.ok(parsed !== undefined, value);
    return parsed;
  };
  for (const [file, name] of [
    ['envoy/envoy.yaml', 'envoy-oidc-authz'],
    ['envoy/envoy-http.yaml', 'envoy-oidc-authz-http'],
  ] as const) {
    it(`${file}: a draining replica is out of rotation within drainDelay`, () => {
      const check = cluster(readYaml(file), name).health_checks[0];
      const seenWithin = ms(check.interval) * check.unhealthy_threshold + ms(check.timeout);
      assert.ok(
        seenWithin < drainDelay,
        `interval × unhealthy_threshold + timeout = ${seenWithin} ms, inside drainDelay ${drainDelay} ms`,
      );
    });
  }
});

describe('the ext_authz timeouts of the shipped Envoy configs', () => {
  // The server answers every Check within request.budget; Envoy must wait at least that long,
  // or it fails Checks the server was about to answer (503 from status_on_error).
  const { budget } = configSchema.shape.request.parse(
    (readYaml('envoy/authz-config.yaml') as { request?: unknown }).request,
  );
  const ms = (value: string): number => {
    const parsed = parseDuration(value);
    assert.ok(parsed !== undefined, value);
    return parsed;
  };
  it('envoy/envoy.yaml and envoy/envoy-http.yaml wait longer than request.budget', () => {
    const grpc = extAuthz(readYaml('envoy/envoy.yaml')).grpc_service.timeout as string;
    const http = extAuthz(readYaml('envoy/envoy-http.yaml')).http_service.server_uri
      .timeout as string;
    for (const timeout of [grpc, http]) {
      assert.ok(ms(timeout) > budget, `Envoy's ${timeout} is above request.budget ${budget} ms`);
    }
  });
});

describe('deploy/compose/envoy.yaml (the compose setup)', () => {
  const config = readYaml('deploy/compose/envoy.yaml');
  const serverConfig = readYaml('deploy/compose/authz-config.yaml');
  const server = {
    request: configSchema.shape.request.parse(serverConfig.request),
    shutdown: configSchema.shape.shutdown.parse(serverConfig.shutdown),
  };
  const ms = (value: string): number => {
    const parsed = parseDuration(value);
    assert.ok(parsed !== undefined, value);
    return parsed;
  };

  it('parses as an Envoy Bootstrap with every typed_config resolved', () => {
    assert.deepEqual(checkProtoJson(root, bootstrap, config), []);
  });

  it('is hardened as envoy/envoy.yaml is, checks over gRPC and fails closed', () => {
    assert.deepEqual(hardeningProblems(config), []);
    const filter = extAuthz(config);
    assert.equal(filter.grpc_service.envoy_grpc.cluster_name, 'envoy-oidc-authz');
    assert.equal(filter.failure_mode_allow, false);
    assert.ok(ms(filter.grpc_service.timeout) > server.request.budget, 'above request.budget');
    const check = cluster(config, 'envoy-oidc-authz').health_checks[0];
    assert.equal(check.grpc_health_check.service_name, 'envoy.service.auth.v3.Authorization');
    assert.ok(
      ms(check.interval) * check.unhealthy_threshold + ms(check.timeout) <
        server.shutdown.drainDelay,
    );
  });
});

describe('envoy/authz-config.yaml', () => {
  it('is a valid server configuration for both Envoy variants', () => {
    const result = loadConfig(
      { path: repoPath('envoy/authz-config.yaml') },
      {
        SESSION_KEY: 'a-session-key-of-at-least-32-bytes-long',
        GRAFANA_CLIENT_SECRET: 'grafana-secret',
        WIKI_CLIENT_SECRET: 'wiki-secret',
      },
    );
    assert.ok(
      result.ok,
      result.ok ? '' : result.problems.map((p) => `${p.path}: ${p.message}`).join('\n'),
    );
    assert.deepEqual(
      result.config.apps.map((app) => app.name),
      ['grafana', 'wiki'],
      'the apps named in context_extensions',
    );
    const grafana = result.config.apps[0]!;
    assert.equal(grafana.oidc.backchannelLogoutPath, '/oauth2/backchannel-logout');
    assert.deepEqual(grafana.publicPaths, [{ prefix: '/public/' }]);
  });
});

/** The fenced YAML block after `<!-- marker -->` in a docs page, parsed. */
function docsExample(page: string, marker: string): Doc {
  const text = readFileSync(repoPath(page), 'utf8');
  const at = text.indexOf(`<!-- ${marker} -->`);
  assert.ok(at >= 0, `${page} has the ${marker} example`);
  const block = /```yaml\n([\s\S]*?)```/.exec(text.slice(at));
  assert.ok(block, `${marker} is followed by a yaml block`);
  return parse(block[1]!);
}

/** Every `metadata` matcher under `node`, wherever RBAC nests it (and_ids, or_ids, not_id). */
function metadataMatchers(node: unknown): { filter: string; path: { key: string }[] }[] {
  if (typeof node !== 'object' || node === null) return [];
  const here = (node as { metadata?: unknown }).metadata;
  const found = Object.values(node).flatMap(metadataMatchers);
  return typeof here === 'object' && here !== null && 'filter' in here
    ? [here as { filter: string; path: { key: string }[] }, ...found]
    : found;
}

describe('the RBAC example of docs/upstream-identity.md', () => {
  const manager = docsExample('docs/upstream-identity.md', 'rbac-example-envoy');
  const server = docsExample('docs/upstream-identity.md', 'rbac-example-server');

  it('parses as an Envoy HttpConnectionManager with every typed_config resolved', () => {
    const { '@type': type, ...rest } = manager as Record<string, unknown>;
    assert.equal(
      type,
      'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    );
    assert.deepEqual(
      checkProtoJson(
        root,
        'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
        rest,
      ),
      [],
    );
  });

  it('is hardened like the shipped configs', () => {
    const config = {
      static_resources: {
        listeners: [
          {
            filter_chains: [
              {
                filters: [
                  { name: 'envoy.filters.network.http_connection_manager', typed_config: manager },
                ],
              },
            ],
          },
        ],
      },
    };
    assert.deepEqual(hardeningProblems(config), []);
  });

  it('runs RBAC after ext_authz and before the router', () => {
    const names = (manager.http_filters as { name: string }[]).map((f) => f.name);
    assert.deepEqual(names, [
      'envoy.filters.http.ext_authz',
      'envoy.filters.http.rbac',
      'envoy.filters.http.router',
    ]);
  });

  it('reads only metadata keys the server config of the example sets', () => {
    const result = loadConfig(
      { text: JSON.stringify(server), format: 'json' },
      {
        SESSION_KEY: 'a-session-key-of-at-least-32-bytes-long',
        GRAFANA_CLIENT_SECRET: 'grafana-secret',
      },
    );
    assert.ok(result.ok, JSON.stringify(!result.ok && result.problems));
    const keys = new Set(['reason', 'app', ...Object.keys(result.config.apps[0]!.dynamicMetadata)]);
    const matchers = metadataMatchers(manager.http_filters);
    assert.ok(matchers.length >= 3);
    for (const matcher of matchers) {
      assert.equal(matcher.filter, 'envoy.filters.http.ext_authz');
      assert.equal(matcher.path.length, 1);
      assert.ok(keys.has(matcher.path[0]!.key), `the server sets ${matcher.path[0]!.key}`);
    }
  });
});
