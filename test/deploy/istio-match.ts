/**
 * How the ingress gateway decides two things about one request, as Istio documents them: does
 * an `action: CUSTOM` AuthorizationPolicy send it to the check, and which VirtualService route
 * takes it. Both see the path after the mesh's path normalisation, without the query.
 */

// Parsed YAML walked by known paths.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

/** One request at the gateway: host, method and normalised path. */
export interface GatewayRequest {
  readonly host: string;
  readonly method: string;
  readonly path: string;
}

/** Istio's string match in policies: `*` any, `abc*` prefix, `*abc` suffix, else exact. */
function istioStringMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  return value === pattern;
}

function anyMatch(patterns: readonly string[] | undefined, value: string): boolean {
  return patterns === undefined || patterns.some((p) => istioStringMatch(p, value));
}

function noneMatch(patterns: readonly string[] | undefined, value: string): boolean {
  return patterns === undefined || !patterns.some((p) => istioStringMatch(p, value));
}

/** One `operation`: every field that is set must hold (hosts are case-insensitive). */
function operationMatches(operation: Doc, request: GatewayRequest): boolean {
  const host = request.host.toLowerCase();
  const lower = (list: string[] | undefined) => list?.map((h) => h.toLowerCase());
  return (
    anyMatch(lower(operation.hosts), host) &&
    noneMatch(lower(operation.notHosts), host) &&
    anyMatch(operation.paths, request.path) &&
    noneMatch(operation.notPaths, request.path) &&
    anyMatch(operation.methods, request.method) &&
    noneMatch(operation.notMethods, request.method)
  );
}

/**
 * Whether a CUSTOM policy sends the request to its provider: some rule matches, a rule matching
 * when any of its `to` operations does (only `to` is used in the shipped policy).
 */
export function customPolicyChecks(policy: Doc, request: GatewayRequest): boolean {
  const rules: Doc[] = policy.spec.rules ?? [];
  for (const rule of rules) {
    if (rule.from !== undefined || rule.when !== undefined) {
      throw new Error('only `to` is modelled');
    }
    const to: Doc[] = rule.to ?? [];
    if (to.some((entry) => operationMatches(entry.operation, request))) return true;
  }
  return false;
}

/** A VirtualService `StringMatch`: `exact`, `prefix` or `regex` (whole value). */
function stringMatch(match: Doc, value: string): boolean {
  if (match.exact !== undefined) return value === match.exact;
  if (match.prefix !== undefined) return value.startsWith(match.prefix as string);
  if (match.regex !== undefined) return new RegExp(`^(?:${match.regex as string})$`).test(value);
  return true;
}

/** The first `http` route of the VirtualService that takes the request (undefined when none does). */
export function virtualServiceRoute(service: Doc, request: GatewayRequest): Doc {
  const routes: Doc[] = service.spec.http ?? [];
  return routes.find((route) => {
    const matches: Doc[] = route.match ?? [];
    if (matches.length === 0) return true;
    return matches.some(
      (match) =>
        (match.uri === undefined || stringMatch(match.uri, request.path)) &&
        (match.method === undefined || stringMatch(match.method, request.method)),
    );
  });
}
