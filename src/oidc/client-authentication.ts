/** Client authentication at the token and revocation endpoints: secret (basic/post), private_key_jwt, none. */
import { createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { importPKCS8 } from 'jose';
import { ClientSecretBasic, ClientSecretPost, None, PrivateKeyJwt } from 'openid-client';
import type { ClientAuth } from 'openid-client';
import type { ConfigProblem } from '../errors.ts';

/** How this client proves itself to the provider. */
export type ClientAuthMethod =
  'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none';

export interface ClientAuthOptions {
  readonly clientAuth: ClientAuthMethod;
  readonly clientSecret?: string | undefined;
  /** For `private_key_jwt`: a PKCS#8 / PKCS#1 / SEC1 PEM, or a private JWK as JSON. */
  readonly privateKey?: string | undefined;
  /**
   * `client_secret_basic` credentials: `form` (RFC 6749 §2.3.1: form-encoded, then Base64) or
   * `raw` (Base64 of `id:secret` as they are). Default `form`.
   */
  readonly basicAuthEncoding?: 'form' | 'raw' | undefined;
}

/**
 * `client_secret_basic` without the form-encoding RFC 6749 §2.3.1 asks for: some providers
 * compare the decoded value with the raw secret, so `a-b` sent as `a%2Db` is refused.
 */
function rawClientSecretBasic(secret: string): ClientAuth {
  return (_as, client, _body, headers) => {
    const credentials = Buffer.from(`${client.client_id}:${secret}`, 'utf8').toString('base64');
    headers.set('authorization', `Basic ${credentials}`);
  };
}

/**
 * `application/x-www-form-urlencoded` as RFC 6749 §2.3.1 applies it to the Basic credentials
 * (and as `openid-client` does): every character but letters and digits is escaped.
 */
function formEncoded(value: string): string {
  return encodeURIComponent(value)
    .replace(/[-_.!~*'()]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

/**
 * For `client_secret_basic` with a client id or secret that the RFC's form-encoding changes:
 * what to tell the operator when the provider refuses the client's credentials, since some
 * providers compare the raw value (issue 15). Names neither value. `undefined` otherwise.
 */
export function basicEncodingHint(options: {
  readonly clientAuth: ClientAuthMethod;
  readonly clientId: string;
  readonly clientSecret?: string | undefined;
}): string | undefined {
  if (options.clientAuth !== 'client_secret_basic' || options.clientSecret === undefined) {
    return undefined;
  }
  const secretChanges = formEncoded(options.clientSecret) !== options.clientSecret;
  const idChanges = formEncoded(options.clientId) !== options.clientId;
  if (!secretChanges && !idChanges) return undefined;
  const which =
    secretChanges && idChanges
      ? 'client id and secret'
      : secretChanges
        ? 'client secret'
        : 'client id';
  return `the ${which} has characters that client_secret_basic form-encodes (RFC 6749 §2.3.1), and some providers compare the raw value: try oidc.basicAuthEncoding: raw (or oidc.clientAuth: client_secret_post, or a secret of letters and digits only)`;
}

/** A validated client-authentication setting; {@link load} imports the key (async). */
export interface PreparedClientAuth {
  load(): Promise<ClientAuth>;
}

interface ParsedKey {
  readonly keyObject: KeyObject;
  readonly alg: string;
  readonly kid: string | undefined;
}

function algorithmFor(key: KeyObject, jwkAlg: unknown): string | undefined {
  if (typeof jwkAlg === 'string') return jwkAlg;
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'RS256';
    case 'rsa-pss':
      return 'PS256';
    case 'ed25519':
      return 'EdDSA';
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return 'ES256';
      if (curve === 'secp384r1') return 'ES384';
      if (curve === 'secp521r1') return 'ES512';
      return undefined;
    }
    default:
      return undefined;
  }
}

function parsePrivateKey(text: string): ParsedKey | string {
  const trimmed = text.trim();
  try {
    if (trimmed.startsWith('{')) {
      const jwk = JSON.parse(trimmed) as Record<string, unknown>;
      const keyObject = createPrivateKey({ key: jwk, format: 'jwk' });
      const alg = algorithmFor(keyObject, jwk['alg']);
      if (alg === undefined) return 'unsupported key type';
      return { keyObject, alg, kid: typeof jwk['kid'] === 'string' ? jwk['kid'] : undefined };
    }
    const keyObject = createPrivateKey(trimmed);
    const alg = algorithmFor(keyObject, undefined);
    if (alg === undefined) return 'unsupported key type';
    return { keyObject, alg, kid: undefined };
  } catch {
    // The parser's message could quote key material; say only what kind of problem it is.
    return 'not a private key in PEM or JWK form';
  }
}

/**
 * Checks the client-authentication options and returns the problems (paths relative to the
 * app's `oidc` block) or a prepared method.
 */
export function prepareClientAuth(
  options: ClientAuthOptions,
): { problems: ConfigProblem[] } | { prepared: PreparedClientAuth } {
  const problems: ConfigProblem[] = [];
  const { clientAuth: method } = options;
  const secret = options.clientSecret;
  if (
    (method === 'client_secret_basic' || method === 'client_secret_post') &&
    (secret === undefined || secret === '')
  ) {
    problems.push({ path: 'oidc.clientSecret', message: `required for ${method}` });
  }
  let parsed: ParsedKey | undefined;
  if (method === 'private_key_jwt') {
    if (options.privateKey === undefined || options.privateKey === '') {
      problems.push({ path: 'oidc.privateKey', message: 'required for private_key_jwt' });
    } else {
      const result = parsePrivateKey(options.privateKey);
      if (typeof result === 'string') problems.push({ path: 'oidc.privateKey', message: result });
      else parsed = result;
    }
  }
  if (problems.length > 0) return { problems };

  const load = async (): Promise<ClientAuth> => {
    switch (method) {
      case 'client_secret_basic':
        return options.basicAuthEncoding === 'raw'
          ? rawClientSecretBasic(secret ?? '')
          : ClientSecretBasic(secret);
      case 'client_secret_post':
        return ClientSecretPost(secret);
      case 'none':
        return None();
      case 'private_key_jwt': {
        const key = parsed as ParsedKey;
        const pkcs8 = key.keyObject.export({ type: 'pkcs8', format: 'pem' }).toString();
        const cryptoKey = await importPKCS8(pkcs8, key.alg);
        return PrivateKeyJwt(key.kid === undefined ? cryptoKey : { key: cryptoKey, kid: key.kid });
      }
    }
  };
  return { prepared: { load } };
}
