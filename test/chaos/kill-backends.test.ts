/**
 * Backends killed at random (`pg_terminate_backend` / `KILL <thread>`) while 8 workers run bank
 * transfers on a pool of 6: every transfer commits or fails with a clear error, none is half
 * applied, and no connection goes back to the pool inside a transaction.
 */
import { killBackends, problems } from './scenarios/scenarios';
import { TARGETS } from './scenarios/targets';

describe.each(TARGETS)('kill backends on $name', (target) => {
  test('transfers stay whole; connections come back clean; the pool recovers after the last kill', async () => {
    const report = await killBackends(target);
    expect(problems(report)).toEqual([]);
    expect(report.verdict.invariantHeld).toBe(true);
    expect(report.returnedInTransaction).toBe(0);
    expect(report.probedInTransaction).toBe(0);
    // Kills hit transactions in flight: some rolled back, the rest committed.
    expect(report.summary.rolled_back + report.summary.unknown).toBeGreaterThan(0);
    expect(report.summary.committed).toBeGreaterThan(50);
    expect(report.recoveryMs).toBeDefined();
    expect(report.recoveryMs as number).toBeLessThan(5_000);
  }, 60_000);
});
