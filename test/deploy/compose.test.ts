/**
 * deploy/compose/ without Docker: the compose file against the Compose Specification's JSON
 * schema, the Keycloak realm against the parts of Keycloak's RealmRepresentation it uses, and
 * every name the files share (client id, secret, issuer, URLs, ports, paths) checked to agree,
 * with the server's config passing `check-config`. The Envoy config is checked against Envoy's
 * protos in envoy-config.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { Ajv } from 'ajv';
import { parse } from 'yaml';

import { checkConfigFile } from '../../src/config/check.ts';
import { loadConfig } from '../../src/config/load.ts';
import { repoPath } from './repo-path.ts';

// Parsed YAML and JSON walked by known paths: a wrong path throws and fails the test.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

const folder = 'deploy/compose';
const compose: Doc = parse(readFileSync(repoPath(`${folder}/compose.yaml`), 'utf8'));
const envoy: Doc = parse(readFileSync(repoPath(`${folder}/envoy.yaml`), 'utf8'));
const realm: Doc = JSON.parse(readFileSync(repoPath(`${folder}/realm/demo-realm.json`), 'utf8'));
const configPath = repoPath(`${folder}/authz-config.yaml`);

/** What deploy/compose/.env holds once docs/with-envoy.md's command wrote it. */
const env = {
  SESSION_KEY: 'kX9v2QmZp7Lw4RtYb8NcJ3HsFd6GaUe1OiKl5MnBqVzWxCyTr0EjPoIuAsDfGhJk',
  CLIENT_SECRET: '3f9a1c7e5b2d8f4a6c0e9b7d5f3a1c8e6b4d2f0a9c7e5b3d1f8a6c4e2b0d9f7a',
};

function loadedApp() {
  const loaded = loadConfig({ path: configPath }, env);
  assert.ok(loaded.ok, loaded.ok ? '' : JSON.stringify(loaded.problems));
  const app = loaded.config.apps[0];
  assert.ok(app !== undefined);
  return { config: loaded.config, app };
}

/** `host:port` of a listen address. */
function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** The `--name=value` of a command line, or undefined. */
function option(command: readonly string[], name: string): string | undefined {
  const found = command.find((part) => part.startsWith(`--${name}=`));
  return found?.slice(name.length + 3);
}

/**
 * The parts of Keycloak's RealmRepresentation (and its ClientRepresentation,
 * UserRepresentation, CredentialRepresentation, GroupRepresentation and
 * ProtocolMapperRepresentation) that the realm file uses, field for field as Keycloak names
 * them, each object closed: a misspelt field, which Keycloak's import would ignore, fails here.
 * Reduced: it says nothing of the many fields the file does not use.
 */
const realmSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['realm', 'enabled', 'clients', 'users'],
  properties: {
    realm: { type: 'string', minLength: 1 },
    enabled: { type: 'boolean' },
    displayName: { type: 'string' },
    sslRequired: { enum: ['all', 'external', 'none'] },
    registrationAllowed: { type: 'boolean' },
    loginWithEmailAllowed: { type: 'boolean' },
    groups: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: { name: { type: 'string' } },
      },
    },
    clients: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['clientId', 'secret', 'redirectUris'],
        properties: {
          clientId: { type: 'string' },
          name: { type: 'string' },
          enabled: { type: 'boolean' },
          protocol: { const: 'openid-connect' },
          publicClient: { type: 'boolean' },
          clientAuthenticatorType: { enum: ['client-secret', 'client-secret-jwt', 'client-jwt'] },
          secret: { type: 'string' },
          standardFlowEnabled: { type: 'boolean' },
          implicitFlowEnabled: { type: 'boolean' },
          directAccessGrantsEnabled: { type: 'boolean' },
          serviceAccountsEnabled: { type: 'boolean' },
          rootUrl: { type: 'string' },
          redirectUris: { type: 'array', items: { type: 'string' } },
          webOrigins: { type: 'array', items: { type: 'string' } },
          frontchannelLogout: { type: 'boolean' },
          // Keycloak keeps client attributes as a map of strings.
          attributes: { type: 'object', additionalProperties: { type: 'string' } },
          protocolMappers: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['name', 'protocol', 'protocolMapper', 'config'],
              properties: {
                name: { type: 'string' },
                protocol: { const: 'openid-connect' },
                protocolMapper: { type: 'string' },
                config: { type: 'object', additionalProperties: { type: 'string' } },
              },
            },
          },
        },
      },
    },
    users: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['username', 'enabled', 'credentials'],
        properties: {
          username: { type: 'string', pattern: '^[a-z0-9._-]+$' },
          enabled: { type: 'boolean' },
          email: { type: 'string' },
          emailVerified: { type: 'boolean' },
          firstName: { type: 'string' },
          lastName: { type: 'string' },
          groups: { type: 'array', items: { type: 'string', pattern: '^/' } },
          credentials: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['type', 'value', 'temporary'],
              properties: {
                type: { const: 'password' },
                value: { type: 'string', minLength: 1 },
                temporary: { const: false },
              },
            },
          },
        },
      },
    },
  },
} as const;

describe('deploy/compose/compose.yaml', () => {
  it('is valid against the Compose Specification schema', () => {
    const schema = JSON.parse(
      readFileSync(repoPath('test/fixtures/compose/compose-spec.json'), 'utf8'),
    ) as Record<string, unknown>;
    // Draft-07 under its https address, which Ajv knows as http; the keywords are draft-07's.
    delete schema['$schema'];
    const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
    const validate = ajv.compile(schema);
    assert.equal(validate(compose), true, JSON.stringify(validate.errors, null, 2));

    // And the schema does catch a mistake: a misspelt service key.
    const broken = structuredClone(compose);
    broken.services.envoy.port = broken.services.envoy.ports;
    assert.equal(validate(broken), false, 'a misspelt key is refused');
  });

  it('runs the official Envoy image, this repository built from its Dockerfile, Redis, Keycloak and an echo server', () => {
    const services = compose.services;
    assert.deepEqual(Object.keys(services).sort(), [
      'echo',
      'envoy',
      'envoy-oidc-authz',
      'keycloak',
      'redis',
    ]);
    assert.match(services.envoy.image, /^envoyproxy\/envoy:v1\.3\d[.-]/);
    assert.match(services.keycloak.image, /^quay\.io\/keycloak\/keycloak:2\d/);
    assert.equal(services['envoy-oidc-authz'].build.context, '../..');
    assert.ok(existsSync(repoPath(services['envoy-oidc-authz'].build.dockerfile)));
    // Every file or folder mounted exists beside compose.yaml.
    for (const [name, service] of Object.entries<Doc>(services)) {
      for (const volume of service.volumes ?? []) {
        const source = (volume as string).split(':')[0] ?? '';
        assert.ok(existsSync(repoPath(`${folder}/${source.slice(2)}`)), `${name}: ${source}`);
      }
    }
    // One network namespace: Envoy's.
    for (const name of ['envoy-oidc-authz', 'redis', 'keycloak', 'echo']) {
      assert.equal(services[name].network_mode, 'service:envoy', name);
      assert.equal(services[name].ports, undefined, `${name} publishes through envoy`);
    }
  });

  it('publishes only the app and Keycloak, on the host loopback, at the ports the URLs name', () => {
    const { app } = loadedApp();
    const issuerPort = new URL(app.oidc.issuer).port;
    const appPort = new URL(app.oidc.postLogoutRedirectUri ?? '').port;
    assert.deepEqual(compose.services.envoy.ports, [
      `127.0.0.1:${appPort}:${envoy.static_resources.listeners[0].address.socket_address.port_value}`,
      `127.0.0.1:${issuerPort}:${issuerPort}`,
    ]);
  });

  it('takes every secret from .env, refusing to start without it, and commits none', () => {
    const text = readFileSync(repoPath(`${folder}/compose.yaml`), 'utf8');
    for (const name of Object.keys(env)) {
      assert.match(text, new RegExp(`\\$\\{${name}:\\?`), `${name} is required`);
    }
    assert.equal(
      compose.services['envoy-oidc-authz'].environment.CLIENT_SECRET,
      compose.services.keycloak.environment.CLIENT_SECRET,
      'the server and the realm import read the same client secret',
    );
    assert.equal(existsSync(repoPath(`${folder}/.env`)), false, 'no .env in the repository');
  });
});

describe('deploy/compose/authz-config.yaml', () => {
  it('passes check-config with the secrets .env gives', () => {
    assert.deepEqual(checkConfigFile(configPath, env), { ok: true, output: 'config OK: 1 app' });
  });

  it('listens where Envoy sends checks, and Envoy sends the back-channel logout body there', () => {
    const { config, app } = loadedApp();
    const clusters: Doc[] = envoy.static_resources.clusters;
    const authz = clusters.find((c) => c.name === 'envoy-oidc-authz');
    const address = authz.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address;
    assert.equal(address.socket_address.port_value, portOf(config.listen.grpc));
    const host =
      envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config
        .virtual_hosts[0];
    const withBody = host.routes.find(
      (r: Doc) =>
        r.typed_per_filter_config?.['envoy.filters.http.ext_authz']?.check_settings
          ?.with_request_body !== undefined,
    );
    assert.equal(withBody.match.path, app.oidc.backchannelLogoutPath);
    const echo = clusters.find((c) => c.name === 'echo');
    assert.equal(
      `--port=${echo.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value}`,
      compose.services.echo.command[0],
    );
    assert.equal(config.store.type, 'redis');
    assert.ok(
      compose.services.redis.command.includes(String(new URL(config.store.redis?.url ?? '').port)),
    );
  });
});

describe('deploy/compose/realm/demo-realm.json', () => {
  it("has the shape of Keycloak's realm import (the parts it uses)", () => {
    const ajv = new Ajv({ allErrors: true, strict: true });
    const validate = ajv.compile(realmSchema);
    assert.equal(validate(realm), true, JSON.stringify(validate.errors, null, 2));
    const misspelt = structuredClone(realm);
    misspelt.clients[0].redirectUri = misspelt.clients[0].redirectUris;
    assert.equal(validate(misspelt), false, 'a misspelt field is refused');
  });

  it('is the realm, client, secret and URLs the server config and Keycloak command name', () => {
    const { app } = loadedApp();
    const issuer = new URL(app.oidc.issuer);
    assert.equal(issuer.pathname, `/realms/${realm.realm}`);
    const command: string[] = compose.services.keycloak.command;
    assert.ok(command.includes('--import-realm'));
    assert.equal(option(command, 'hostname'), issuer.origin, 'Keycloak names the issuer');
    assert.equal(option(command, 'http-port'), issuer.port);
    assert.ok(
      compose.services.keycloak.volumes.includes('./realm:/opt/keycloak/data/import:ro'),
      'imported from the folder Keycloak reads at --import-realm',
    );

    const clients: Doc[] = realm.clients;
    const client = clients.find((c) => c.clientId === app.oidc.clientId);
    assert.ok(client, `client ${app.oidc.clientId}`);
    assert.equal(client.publicClient, false);
    assert.equal(client.standardFlowEnabled, true);
    assert.equal(client.secret, '${CLIENT_SECRET}', 'read from the environment at import');
    assert.equal(app.oidc.clientSecret, env.CLIENT_SECRET, 'the same variable in the server');

    const origin = new URL(app.oidc.postLogoutRedirectUri ?? '').origin;
    assert.deepEqual(client.redirectUris, [`${origin}${app.oidc.callbackPath}`]);
    assert.equal(client.attributes['post.logout.redirect.uris'], app.oidc.postLogoutRedirectUri);
    assert.equal(
      client.attributes['backchannel.logout.url'],
      `${origin}${app.oidc.backchannelLogoutPath}`,
    );
    assert.equal(client.attributes['backchannel.logout.session.required'], 'true');
    assert.equal(client.attributes['pkce.code.challenge.method'], 'S256');
  });

  it('has users who can sign in, in the groups the server config asks for', () => {
    const { app } = loadedApp();
    const groups = new Set((realm.groups as Doc[]).map((g) => `/${g.name}`));
    for (const user of realm.users as Doc[]) {
      assert.equal(user.enabled, true, user.username);
      assert.equal(user.emailVerified, true, user.username);
      for (const group of user.groups) assert.ok(groups.has(group), `${user.username}: ${group}`);
    }
    const required = app.authorization.paths.flatMap((p) => p.requireGroups);
    for (const group of required) {
      assert.ok(
        (realm.users as Doc[]).some((u) => u.groups.includes(`/${group}`)),
        `someone is in ${group}`,
      );
      assert.ok(
        (realm.users as Doc[]).some((u) => !u.groups.includes(`/${group}`)),
        `someone is not in ${group}, to see the 403`,
      );
    }
    const mapper = (realm.clients[0].protocolMappers as Doc[]).find(
      (m) => m.protocolMapper === 'oidc-group-membership-mapper',
    );
    assert.equal(mapper.config['claim.name'], app.authorization.groupsClaim);
    assert.equal(mapper.config['full.path'], 'false', 'group names without a leading /');
  });
});
