/**
 * The server restarts mid-load. Each database runs as a private server made for this test (see
 * scenarios/private-server.ts): the shared servers other test files use are never touched, and the
 * private one is destroyed in `finally` even when the test fails.
 * The pool recovers with no restart of the app; errors during the outage are coded
 * (CONNECT_FAILED / ACQUIRE_TIMEOUT / the driver's fatal errors) and bounded in time.
 */
import { problems, serverRestart } from './scenarios/scenarios';
import { TARGETS } from './scenarios/targets';

describe.each(TARGETS)('server restart on $name', (target) => {
  test('the pool recovers by itself; outage errors are clear and bounded; transfers stay whole', async () => {
    const report = await serverRestart(target);
    expect(problems(report)).toEqual([]);
    const during = report.extra['duringOutage'] as { attempted: number; committed: number; byCode: Record<string, number> };
    // The outage was felt, and only as coded errors.
    expect(during.attempted - during.committed).toBeGreaterThan(0);
    for (const code of Object.keys(during.byCode)) {
      expect(code).toMatch(/^(CONNECT_FAILED|ACQUIRE_TIMEOUT|TX_OUTCOME_UNKNOWN|driver:.+)$/);
    }
    expect(report.summary.unclear).toBe(0);
    expect(report.returnedInTransaction).toBe(0);
    expect(report.probedInTransaction).toBe(0);
    expect(report.recoveryMs).toBeDefined();
    // Backoff between failed connects is at most 2 s; then one connect.
    expect(report.recoveryMs as number).toBeLessThan(4_000);
  }, 120_000);
});
