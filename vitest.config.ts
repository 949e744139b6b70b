import { defineConfig } from 'vitest/config'

// Three projects so that a developer can run the fast pure tests alone:
// unit (pure code, no sockets), integration (one service on real sockets, port 0),
// e2e (the whole system, real clients, external programs from Debian).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts', 'simulators/*/test/unit/**/*.test.ts', 'test/unit/**/*.test.ts'],
          // Pure, but some simulate a plant for minutes of event time (1–2 s alone): beside the
          // other projects on a busy CI machine, vitest's default 5 s was too short.
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: [
            'services/*/test/**/*.test.ts',
            'packages/*/test-integration/**/*.test.ts',
            'simulators/*/test-integration/**/*.test.ts',
          ],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
})
