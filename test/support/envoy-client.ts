/** The Envoy-like ext_authz caller, shared with the demo's gateway: see `dev/envoy-client.ts`. */
export * from '../../dev/envoy-client.ts';
