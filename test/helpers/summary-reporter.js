// Writes the run's totals to .tmp/test-summary.json so .ci/run can print the plain
// "N passed, N failed" line the CI reads (jest's own summary is not recognised there).
const fs = require('node:fs');
const path = require('node:path');

class SummaryReporter {
  onRunComplete(_contexts, results) {
    const dir = path.join(__dirname, '..', '..', '.tmp');
    fs.mkdirSync(dir, { recursive: true });
    // A suite that could not run (syntax error, failing hook) counts as one failure.
    const failedSuites = results.numRuntimeErrorTestSuites;
    fs.writeFileSync(
      path.join(dir, 'test-summary.json'),
      JSON.stringify({
        passed: results.numPassedTests,
        failed: results.numFailedTests + failedSuites,
        total: results.numTotalTests,
        suitesFailed: results.numFailedTestSuites,
        success: results.success,
      }),
    );
  }
}
module.exports = SummaryReporter;
