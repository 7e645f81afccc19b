// Unhandled rejections fail the run; nothing needs installing here. Checked with throwaway tests
// on jest 30.5 / Node 20:
// - Inside a test file, jest-circus swaps the REAL process's 'unhandledRejection' listeners for
//   its own from run start to teardown, and fails the test the rejection belongs to (found through
//   the async context, even when the rejection fires during a later test).
// - After a file's teardown Node's default mode (`throw`) kills the worker or the in-band run:
//   jest exits non-zero.
// A `process.on('unhandledRejection', …)` here would be dead code: the `process` a test file sees
// is jest's copy of the real one (jest-util createProcessObject), its own EventEmitter, which
// never receives the real process's events. (The handler that used to sit here never ran.)
export {};
