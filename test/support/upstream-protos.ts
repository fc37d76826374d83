/** Envoy's upstream ext_authz protos, shared with the demo's gateway: see `src/dev/upstream-protos.ts`. */
export * from '../../src/dev/upstream-protos.ts';
