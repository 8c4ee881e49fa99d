// Tests are TypeScript compiled by tsc into dist/ and run by jest as native ES modules
// (node --experimental-vm-modules), so nothing but tsc ever transforms our code.
export default {
  testEnvironment: 'node',
  rootDir: 'dist/test',
  testMatch: ['**/*.test.js'],
  transform: {},
  testTimeout: 180_000,
  globalSetup: '<rootDir>/helpers/global-setup.js',
  globalTeardown: '<rootDir>/helpers/global-teardown.js',
};
