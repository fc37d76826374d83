/**
 * Verdict → CheckResponse as a plain protobufjs message: the model `CheckResponseEncoder` must
 * match byte for byte when the message is encoded with the Check response type of `protos.ts`.
 */
import type { HeaderPair, Verdict } from '../../src/authz/verdict.ts';
import type { CheckResponse, HeaderValueOption, Struct } from '../../src/server/protos.ts';

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

function metadata(app: string | undefined, reason: string): Struct {
  const fields: Record<string, { stringValue: string }> = { reason: { stringValue: reason } };
  if (app !== undefined) fields['app'] = { stringValue: app };
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
        dynamic_metadata: metadata(app, verdict.reason),
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
