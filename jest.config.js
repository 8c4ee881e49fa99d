// Tests are TypeScript compiled by tsc into dist/ and run by jest as native ES modules
// (node --experimental-vm-modules), so nothing but tsc ever transforms our code.
export default {
  testEnvironment: 'node',
  // Jest 30's default 'soft' cleanup wraps globals a test file left in setters that recurse
  // forever when something writes them afterwards (jestjs/jest#16044: "Maximum call stack size
  // exceeded" failing a whole suite at random). Each file runs in its own VM context anyway.
  testEnvironmentOptions: { globalsCleanup: 'off' },
  rootDir: 'dist/test',
  testMatch: ['**/*.test.js'],
  transform: {},
  testTimeout: 180_000,
  globalSetup: '<rootDir>/helpers/global-setup.js',
  globalTeardown: '<rootDir>/helpers/global-teardown.js',
};
