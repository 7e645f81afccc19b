// Jest test environment: jest's node environment, plus unhandled rejections that fire AFTER a test
// file finished fail the run. Inside a file jest-circus already fails the test a rejection belongs
// to, but once a file is torn down, a late rejection in a worker is printed and ignored (checked:
// exit code 0, "0 failed"). This runs in the worker's real realm, so `process` is the real one
// (a test file only sees jest's copy, whose listeners never fire).
//
// While a file runs, jest-circus swaps this listener out for its own and puts it back at the end,
// so the listener below only sees rejections that happen between files. They are reported by
// failing the file being torn down (after a short grace period) or, if they come later, the next
// file that this worker sets up.
const { TestEnvironment } = require('jest-environment-node');
const { inspect } = require('node:util');

const GRACE_MS = 20;
const late = [];
let installed = false;

function install() {
  if (installed) return;
  installed = true;
  process.on('unhandledRejection', (reason) => {
    late.push(reason);
  });
}

function failOnLateRejections(when) {
  if (late.length === 0) return;
  const reasons = late.splice(0);
  const error = new Error(
    `${reasons.length} unhandled rejection(s) ${when} (the stack shows where each came from):\n` + reasons.map((r) => inspect(r, { depth: 3 })).join('\n---\n'),
  );
  error.stack = error.message;
  throw error;
}

class LeasepoolTestEnvironment extends TestEnvironment {
  async setup() {
    install();
    await super.setup();
    failOnLateRejections('fired after an earlier test file of this worker had finished');
  }

  async teardown() {
    await new Promise((resolve) => setTimeout(resolve, GRACE_MS));
    await super.teardown();
    failOnLateRejections('fired after the tests of a file had finished');
  }
}

module.exports = LeasepoolTestEnvironment;
