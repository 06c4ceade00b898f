import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{filter,agent,coord,wire,native,test}/**/*.test.ts'],
    exclude: ['dist/**', 'node_modules/**'],
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
