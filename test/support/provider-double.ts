/**
 * A small OpenID Provider that departs from the standard the way a named provider does, for
 * the quirks `oidc-provider` cannot show: a `{tenantid}` issuer template, no end-session
 * endpoint, a token endpoint comparing the raw client secret. Every answer is scriptable.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWTPayload } from 'jose';

export interface ProviderDoubleOptions {
  /** Path of the issuer under the origin, e.g. `/organizations/v2.0`; default ``. */
  readonly issuerPath?: string;
  /** The `issuer` the discovery document names; default the issuer itself. `{origin}` is replaced. */
  readonly announcedIssuer?: string;
  /** Discovery members to add (or, as `undefined`, to leave out). */
  readonly metadata?: Readonly<Record<string, unknown>>;
  /** The client the token endpoint accepts with Basic credentials compared raw (no form-decoding). */
  readonly rawBasicClient?: { readonly id: string; readonly secret: string };
}

export interface ProviderDouble {
  /** The issuer to configure: origin + `issuerPath`. */
  readonly issuer: string;
  readonly origin: string;
  /** Claims of the next ID token (the token endpoint adds `aud`, `iat`, `exp`, and `nonce` as set). */
  nextIdToken: JWTPayload;
  /** Token requests answered, and the `authorization` headers they carried. */
  readonly tokenRequests: string[];
  sign(payload: JWTPayload): Promise<string>;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

export async function startProviderDouble(
  options: ProviderDoubleOptions = {},
): Promise<ProviderDouble> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'double-1', alg: 'RS256', use: 'sig' };
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuerPath = options.issuerPath ?? '';
  const issuer = `${origin}${issuerPath}`;
  const sign = (payload: JWTPayload, key: CryptoKey = privateKey) =>
    new SignJWT({ iat: Math.floor(Date.now() / 1000), ...payload })
      .setProtectedHeader({ alg: 'RS256', kid: 'double-1' })
      .sign(key);
  const double: ProviderDouble = {
    issuer,
    origin,
    nextIdToken: {},
    tokenRequests: [],
    sign: (payload) => sign(payload),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const discovery: Record<string, unknown> = {
    issuer: (options.announcedIssuer ?? issuer).replace('{origin}', origin),
    authorization_endpoint: `${origin}/authorize`,
    token_endpoint: `${origin}/token`,
    jwks_uri: `${origin}/keys`,
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic'],
    ...options.metadata,
  };
  for (const [name, value] of Object.entries(discovery)) {
    if (value === undefined) delete discovery[name];
  }
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const path = new URL(req.url ?? '/', origin).pathname;
      if (path === `${issuerPath}/.well-known/openid-configuration`)
        return json(res, 200, discovery);
      if (path === '/keys') return json(res, 200, { keys: [jwk] });
      if (path === '/token' && req.method === 'POST') {
        const body = new URLSearchParams(await readBody(req));
        const authorization = req.headers.authorization ?? '';
        double.tokenRequests.push(authorization);
        const raw = options.rawBasicClient;
        if (raw !== undefined) {
          const decoded = Buffer.from(authorization.replace(/^Basic /, ''), 'base64').toString();
          if (decoded !== `${raw.id}:${raw.secret}`) {
            return json(res, 401, { error: 'invalid_client' });
          }
        }
        const now = Math.floor(Date.now() / 1000);
        const idToken = await sign({ exp: now + 600, ...double.nextIdToken });
        return json(res, 200, {
          access_token: `at-${body.get('grant_type') ?? ''}`,
          token_type: 'Bearer',
          expires_in: 300,
          refresh_token: 'rt-1',
          id_token: idToken,
        });
      }
      res.writeHead(404);
      res.end();
    })();
  });
  return double;
}
