import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['eslint.config.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // @kubernetes/client-node's models are classes used as plain JSON shapes;
      // manifests are built as object literals on purpose (they are serialized, never called).
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      // Tests and harness poll with `for (;;)` loops that end by return or throw.
      'no-constant-condition': ['error', { checkLoops: 'allExceptWhileTrue' }],
    },
  },
  {
    // The operator process fits 64 MiB + 20 KiB per TaskApi only without these
    // (see src/kube/client.ts, prometheus.ts, src/controller/settings.ts); their types are fine.
    // Dependencies point one way (DESIGN.md): service -> api <- controller -> kube.
    files: ['src/controller/**/*.ts', 'src/kube/**/*.ts', 'src/api/resource.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            ...['@kubernetes/client-node', 'zod', 'prom-client', 'yaml'].map((name) => ({
              name,
              allowTypeImports: true,
              message: 'The operator process does not load this package (memory budget); import its types only.',
            })),
            {
              name: 'node:http',
              allowTypeImports: true,
              message: "An ESM import of node:http loads Node's bundled undici (14 MiB); use src/kube/node-http.ts.",
            },
          ],
          patterns: [{ group: ['**/service/**'], message: 'The operator never imports the task service.' }],
        },
      ],
    },
  },
  {
    files: ['src/kube/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/api/**', '**/controller/**', '**/service/**'],
              message:
                'src/kube is plumbing that knows nothing of TaskApis: it imports no project code outside src/kube.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/service/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/controller/**', '**/kube/**'],
              message: 'The task service shares only src/api with the operator (the contract: src/api/contract.ts).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/api/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/controller/**', '**/kube/**', '**/service/**'],
              message: 'src/api depends on nothing else in src/.',
            },
          ],
        },
      ],
    },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
