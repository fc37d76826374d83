/** Envoy's upstream ext_authz protos, shared with the demo's gateway: see `dev/upstream-protos.ts`. */
export * from '../../dev/upstream-protos.ts';
