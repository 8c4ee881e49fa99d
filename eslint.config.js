// Lint: TypeScript's recommended rules, promises that nobody awaits, import cycles, and the
// fences of the floor plan (DESIGN.md "Rules that keep it sound") as rules:
// - workflows/ imports values only from @temporalio/workflow and workflows/ (types from
//   anywhere), and no Node built-ins: workflow code must replay deterministically;
// - engine/ never imports @temporalio/*: the engine knows nothing of Temporal;
// - nothing outside client/ imports client/ (the tests may: they test it).
import js from '@eslint/js';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import { importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test/fixtures/**', 'bench/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Plain scripts run by node (bin/, scripts/, this file).
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' } },
  },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
      'import-x/no-cycle': 'error',
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            {
              target: ['./engine', './activities', './workflows', './worker'],
              from: './client',
              message: 'client/ is the CLI: nothing but the CLI (and its tests) imports it.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^(?!@temporalio/workflow$|\\./)',
              allowTypeImports: true,
              message: 'workflow code imports values only from @temporalio/workflow and workflows/ (use `import type` for the rest): it must replay deterministically.',
            },
          ],
        },
      ],
      'import-x/no-nodejs-modules': 'error',
    },
  },
  {
    files: ['engine/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [{ group: ['@temporalio/*'], message: 'engine/ is Temporal-free: activities/ wrap it for Temporal.' }] }],
    },
  },
);
