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
    // (see src/controller/kube.ts, prometheus.ts, settings.ts); their types are fine.
    files: ['src/controller/**/*.ts', 'src/api/resource.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        ...['@kubernetes/client-node', 'zod', 'prom-client', 'yaml'].map((name) => ({
          name,
          allowTypeImports: true,
          message: 'The operator process does not load this package (memory budget); import its types only.',
        })),
        {
          name: 'node:http',
          allowTypeImports: true,
          message: "An ESM import of node:http loads Node's bundled undici (14 MiB); use ./node-http.ts.",
        },
      ],
    },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
