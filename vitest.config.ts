import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const dist = fileURLToPath(new URL('./dist/esm/', import.meta.url))

export default defineConfig({
  // Tests import ../src/*.js for their types, but run the built package (npm test builds it
  // first): what users get, including the CommonJS shim that loads tmp and proper-lockfile lazily.
  resolve: { alias: [{ find: /^(?:\.\.\/)+src\/(.*)$/, replacement: `${dist}$1` }] },
  test: {
    // Type tests (test/**/*.test-d.ts) are checked by `npm run typecheck` (tsc), which npm test runs first.
    include: ['test/**/*.test.ts'],
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    // A throw-away PostgreSQL server for test/pg-lock.test.ts (see test/pg/server.mjs).
    // Fails the run if a keeper process outlives the suite (test/keeper-global-setup.ts).
    globalSetup: ['test/pg/global-setup.ts', 'test/keeper-global-setup.ts'],
    // Tests spawn real processes; two cores are shared, so the waits are generous.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
