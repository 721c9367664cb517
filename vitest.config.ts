import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A throw-away PostgreSQL server for test/pg-lock.test.ts (see test/pg/server.mjs).
    globalSetup: ['test/pg/global-setup.ts'],
    // Tests spawn real processes; two cores are shared, so keep the pool small and the waits generous.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'] },
  },
})
