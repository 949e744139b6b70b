// Prints `N passed, N failed` from vitest's JSON report: CI reads this line, not vitest's own
// summary. Exits non-zero when any test failed or was skipped, or the report is missing.
import { readFileSync } from 'node:fs'

const file = process.argv[2] ?? '.ci-out/vitest.json'
let report
try {
  report = JSON.parse(readFileSync(file, 'utf8'))
} catch (error) {
  console.log(`no test report at ${file}: ${error.message}`)
  console.log('0 passed, 1 failed')
  process.exit(1)
}
const passed = report.numPassedTests ?? 0
let failed = report.numFailedTests ?? 0
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0)
for (const suite of report.testResults ?? []) {
  // A file that fails before any test runs (an import error, a failing hook) counts once.
  if (suite.status === 'failed' && !(suite.assertionResults ?? []).some((test) => test.status === 'failed')) {
    failed++
    console.log(`suite failed: ${suite.name}: ${(suite.message ?? '').split('\n')[0]}`)
  }
}
console.log(
  skipped > 0 ? `${passed} passed, ${failed} failed, ${skipped} skipped` : `${passed} passed, ${failed} failed`,
)
process.exit(failed > 0 || skipped > 0 || passed === 0 ? 1 : 0)
