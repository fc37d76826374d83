/**
 * Verdict → CheckResponse as a plain protobufjs message: the model `CheckResponseEncoder` must
 * match byte for byte when the message is encoded with the Check response type of `protos.ts`.
 */
import type { HeaderPair, Verdict } from '../../src/authz/verdict.ts';

/** `google.protobuf.Struct` with string values, as protobufjs takes it (camelCase inside Value). */
export interface Struct {
  readonly fields?: Readonly<Record<string, { readonly stringValue?: string }>>;
}

/** `envoy.config.core.v3.HeaderValueOption`; `append` is a `google.protobuf.BoolValue`. */
export interface HeaderValueOption {
  readonly header: { readonly key: string; readonly value: string };
  readonly append?: { readonly value: boolean };
}

/** `envoy.service.auth.v3.CheckResponse` with the fields the server sets. */
export interface CheckResponse {
  readonly status?: { readonly code?: number; readonly message?: string };
  readonly ok_response?: {
    readonly headers?: readonly HeaderValueOption[];
    readonly headers_to_remove?: readonly string[];
    readonly response_headers_to_add?: readonly HeaderValueOption[];
  };
  readonly denied_response?: {
    readonly status?: { readonly code: number };
    readonly headers?: readonly HeaderValueOption[];
    readonly body?: string;
  };
  readonly dynamic_metadata?: Struct;
}

const overwrite = Object.freeze({ value: false });
const addLine = Object.freeze({ value: true });

/**
 * Request headers overwrite (`append: false`); response headers each add a line
 * (`append: true`, so several `set-cookie` survive); deny headers use `append: false` because
 * Envoy <= 1.36 drops `append: true` entries from a local reply. `append` is always explicit:
 * its default changed meaning across Envoy versions.
 */
function options(
  headers: readonly HeaderPair[],
  append: { readonly value: boolean },
): HeaderValueOption[] {
  return headers.map(([key, value]) => ({ header: { key, value }, append }));
}

function metadata(
  app: string | undefined,
  reason: string,
  own: readonly (readonly [string, string])[] = [],
): Struct {
  const fields: Record<string, { stringValue: string }> = { reason: { stringValue: reason } };
  if (app !== undefined) fields['app'] = { stringValue: app };
  for (const [key, value] of own) fields[key] = { stringValue: value };
  return { fields };
}

export function toCheckResponse(verdict: Verdict, app: string | undefined): CheckResponse {
  switch (verdict.kind) {
    case 'allow':
      return {
        status: { code: 0 },
        ok_response: {
          headers: options(verdict.upstreamHeaders, overwrite),
          headers_to_remove: verdict.removeHeaders,
          response_headers_to_add: options(verdict.responseHeaders, addLine),
        },
        dynamic_metadata: metadata(app, verdict.reason, verdict.metadata),
      };
    case 'local_reply':
      return {
        status: { code: verdict.code, message: verdict.reason },
        denied_response: {
          status: { code: verdict.status },
          headers: options(verdict.headers, overwrite),
          body: verdict.body,
        },
        dynamic_metadata: metadata(app, verdict.reason),
      };
  }
}
