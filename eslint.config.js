// @ts-check
import { readFileSync } from 'node:fs';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layers of `src/`, lowest first: a file may import from its own layer and the layers below,
 * never from one above (`test/layers.test.ts` checks the same on the whole import graph, and
 * that no folder imports another in a cycle). Root files are the catalogue-like leaves.
 */
export const layers = [
  [
    'errors.ts',
    'clock.ts',
    'is-record.ts',
    'header-value.ts',
    'expiring-lru.ts',
    'stamped-lru.ts',
    'deadline-queue.ts',
    'expiry.ts',
    'digest.ts',
    'host-port.ts',
    'loopback-host.ts',
  ],
  ['observability'],
  ['config'],
  ['resilience'],
  ['store'],
  ['session'],
  ['oidc'],
  ['policy'],
  ['authz'],
  ['server'],
  ['main.ts', 'cli.ts'],
];

/** Restrictions some layers add to the layer rule. */
const extraRestrictions = {
  // The decision pipeline knows nothing of transports or stores.
  authz: {
    paths: ['ioredis', '@grpc/grpc-js', '@grpc/proto-loader'],
    patterns: ['**/store/redis*'],
  },
  // The request policy reads requests: it knows nothing of sessions, providers, stores or transports.
  policy: {
    paths: ['ioredis', '@grpc/grpc-js', '@grpc/proto-loader'],
    patterns: ['**/store/**', '**/session/**', '**/oidc/**'],
  },
};

/** Packages the product must not import: they are not installed in production. */
const devOnly = Object.keys(
  JSON.parse(readFileSync(new URL('package.json', import.meta.url), 'utf8')).devDependencies,
);

/** Import patterns that name `entry` (a folder or a root file) from a file at `depth` 0 or 1. */
function patternsFor(entry, depth) {
  const prefix = depth === 0 ? './' : '../';
  return entry.endsWith('.ts') ? [prefix + entry] : [`${prefix}${entry}/**`];
}

/** One config block per entry of every layer: what it may not import. */
function layerRules() {
  return layers.flatMap((layer, index) => {
    const above = layers.slice(index + 1).flat();
    return layer.map((entry) => {
      const depth = entry.endsWith('.ts') ? 0 : 1;
      const extra = extraRestrictions[entry] ?? { paths: [], patterns: [] };
      return {
        files: [depth === 0 ? `src/${entry}` : `src/${entry}/**/*.ts`],
        rules: {
          'no-restricted-imports': [
            'error',
            {
              paths: [...devOnly, ...extra.paths].map((name) => ({
                name,
                message: 'not a production dependency, or not this layer’s concern',
              })),
              patterns: [
                {
                  group: above.flatMap((higher) => patternsFor(higher, depth)),
                  message: `${entry} imports only from its own layer and those below (eslint.config.js)`,
                },
                {
                  group: devOnly.map((name) => `${name}/*`),
                  message: 'not a production dependency',
                },
                { group: extra.patterns, message: 'not this layer’s concern' },
              ].filter((pattern) => pattern.group.length > 0),
            },
          ],
        },
      };
    });
  });
}

export default tseslint.config(
  { ignores: ['dist/', 'dist-*/', 'node_modules/', 'artifacts/', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // A new verdict kind, deny reason or config value must be handled wherever one is switched on.
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
    },
  },
  ...layerRules(),
  {
    // Each failure is raised as the class of its code, defined once in the catalogue.
    files: ['src/**/*.ts'],
    ignores: ['src/errors.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'ClassDeclaration[superClass.name="AuthzError"]',
          message: 'catalogue errors are defined in src/errors.ts, one class per code',
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'faults/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
