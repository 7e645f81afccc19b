// Jest runs TypeScript through swc (type-checking is `tsc --noEmit`, a separate step of `npm test`).
// Projects split the suites so database suites can be run alone; DB suites share a server, so
// they are kept to a few workers by the top-level maxWorkers.
const swc = ['@swc/jest', {
  jsc: { parser: { syntax: 'typescript' }, target: 'es2022', externalHelpers: true },
  module: { type: 'commonjs' },
  sourceMaps: 'inline',
}];

const base = {
  transform: { '^.+\\.ts$': swc },
  // jest's node environment + unhandled rejections after a file finished fail the run (see the file).
  testEnvironment: '<rootDir>/test/helpers/environment.js',
  moduleFileExtensions: ['ts', 'js', 'json'],
  setupFilesAfterEnv: ['<rootDir>/test/helpers/jest-setup.ts'],
};

/** @type {import('jest').Config} */
module.exports = {
  maxWorkers: 2,
  globalSetup: '<rootDir>/test/helpers/global-setup.js',
  reporters: ['default', '<rootDir>/test/helpers/summary-reporter.js'],
  testTimeout: 30_000,
  projects: ['unit', 'pg', 'mysql', 'pglite', 'cluster', 'chaos', 'dashboard', 'package'].map((name) => ({
    ...base,
    displayName: name,
    testMatch: [`<rootDir>/test/${name}/**/*.test.ts`],
  })),
};
