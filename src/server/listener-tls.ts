/** TLS (and mTLS) for the gRPC and HTTP listeners, from `listen.tls`. */
import type { TlsOptions } from 'node:tls';
import type { Config } from '../config/schema.ts';

/** `listen.tls` as loaded: PEM text, files already read. */
export type ListenTls = NonNullable<Config['listen']['tls']>;

/**
 * The server options of a listener with `tls`: its certificate and key, and with `clientCa`
 * a client certificate that must chain to it (a handshake without one fails).
 */
export function listenerTlsOptions(tls: ListenTls): TlsOptions {
  return {
    cert: tls.cert,
    key: tls.key,
    minVersion: 'TLSv1.2',
    ...(tls.clientCa === undefined
      ? {}
      : { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }),
  };
}

/** The part of {@link listenerTlsOptions} a running listener can swap: certificate, key, CA. */
export function listenerSecureContext(tls: ListenTls): TlsOptions {
  return {
    cert: tls.cert,
    key: tls.key,
    ...(tls.clientCa === undefined ? {} : { ca: tls.clientCa }),
  };
}

/**
 * Why `next` cannot be applied to listeners started with `current` without a restart (TLS or
 * client certificates turned on or off), or undefined when it can.
 */
export function tlsChangeNeedsRestart(
  current: ListenTls | undefined,
  next: ListenTls | undefined,
): string | undefined {
  if ((current === undefined) !== (next === undefined)) return 'listen.tls turned on or off';
  if ((current?.clientCa === undefined) !== (next?.clientCa === undefined)) {
    return 'listen.tls.clientCa turned on or off';
  }
  return undefined;
}
