import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      '.serverless/',
      '.serverless-replication/',
      '.serverless.aside/',
      '.esbuild/',
      'dist/',
      'coverage/',
      '**/*.js',
      '**/*.cjs',
      '**/*.mjs',
    ],
  },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['@aws-sdk/*'], message: 'Only lib/aws (and tests) import the AWS SDK.' }] },
      ],
    },
  },
  {
    // `import { z } from 'zod'` makes esbuild keep zod's whole namespace, every locale included (+360 KB per Lambda).
    files: ['**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "ImportDeclaration[source.value=/^zod/] > ImportSpecifier[imported.name='z']",
          message: "Write `import * as z from 'zod'`: the named `z` import bundles all of zod's locales.",
        },
      ],
    },
  },
  {
    // The twin seeds instance-store bundles into its S3 (s3rver) as a client would, through the S3 API.
    files: ['lib/aws/**', 'test/**', 'local/twin/s3.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // Small named steps: a function in lib/ or a handler longer than this is split (STYLE.md).
    files: ['lib/**/*.ts', 'functions/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }] },
  },
  {
    // One home per workflow: adapters never call back up into the orchestration that uses them.
    files: ['lib/aws/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/workflows/*', '../*.ts'],
              message: 'lib/aws holds adapters only: it never imports workflows.',
            },
          ],
        },
      ],
    },
  },
  {
    // The pure core: no SDK, no adapters, no workflows.
    files: ['lib/domain/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/aws/*', '**/workflows/*', '../*.ts'],
              allowTypeImports: true,
              message: 'lib/domain is pure: it imports only lib/domain.',
            },
          ],
        },
      ],
    },
  },
  {
    // The twin is a leaf: an emulator of AWS that knows ami-dr only by its types.
    files: ['local/twin/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/lib/**', '**/runtime/**', '**/functions/**'],
              allowTypeImports: true,
              message: 'The twin imports nothing of ami-dr but types.',
            },
          ],
        },
      ],
    },
  },
);
