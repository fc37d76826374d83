/** The Envoy-like ext_authz caller, shared with the demo's gateway: see `src/dev/envoy-client.ts`. */
export * from '../../src/dev/envoy-client.ts';
