// Fail the test run on unhandled rejections: a pool that leaks a rejected promise is a bug.
const onUnhandled = (reason: unknown): void => {
  // eslint-disable-next-line no-console
  console.error('Unhandled rejection in test:', reason);
  process.exitCode = 1;
  throw reason;
};
process.on('unhandledRejection', onUnhandled);
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});
