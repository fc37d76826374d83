/** A DPoP client for the benchmarks: one P-256 key, proofs signed with `node:crypto` (fast, sync). */
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { jwkThumbprint } from '../src/authz/dpop-proof.ts';
import { sha256Base64url } from '../src/digest.ts';

export interface DpopSigner {
  /** The key's thumbprint: the `cnf.jkt` of the tokens bound to it. */
  readonly jkt: string;
  /** A proof for `GET htu` with `token`'s `ath`, `iat` now and a `jti` never used before. */
  proof(htu: string, token: string): string;
}

export function benchDpopClient(): DpopSigner {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const header = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk });
  let counter = 0;
  return {
    jkt: jwkThumbprint(jwk)!,
    proof: (htu, token) => {
      counter += 1;
      const payload = b64({
        htm: 'GET',
        htu,
        iat: Math.floor(Date.now() / 1000),
        jti: `bench-${counter}-${randomUUID()}`,
        ath: sha256Base64url(token),
      });
      const signature = sign('sha256', Buffer.from(`${header}.${payload}`), {
        key: privateKey,
        dsaEncoding: 'ieee-p1363',
      });
      return `${header}.${payload}.${signature.toString('base64url')}`;
    },
  };
}
