/**
 * A blackholed network (fault proxy accepts, forwards nothing): acquires fail within
 * connectTimeoutMs / acquireTimeoutMs, transfers on hung connections are revoked at their
 * deadline, nothing hangs, and `close()` meets its deadline (timeoutMs + one 2 s grace period to
 * reclaim what is left) while leases hang on blackholed sockets. After healing, the pool recovers.
 */
import { blackhole, problems } from './scenarios/scenarios';
import { TARGETS } from './scenarios/targets';

describe.each(TARGETS)('blackhole on $name', (target) => {
  test('nothing hangs, errors are clear, close() meets its deadline, the pool recovers', async () => {
    const report = await blackhole(target);
    expect(problems(report)).toEqual([]);
    const during = report.extra['duringBlackhole'] as { attempted: number; committed: number; byCode: Record<string, number> };
    expect(during.attempted - during.committed).toBeGreaterThan(0);
    for (const code of Object.keys(during.byCode)) {
      expect(code).toMatch(/^(CONNECT_FAILED|ACQUIRE_TIMEOUT|LEASE_TIMEOUT|TX_OUTCOME_UNKNOWN)$/);
    }
    // Every transfer settled within acquireTimeoutMs + its deadline (+ slack): nothing hung.
    expect(report.summary.longestMs).toBeLessThanOrEqual(report.boundMs as number);
    expect(report.extra['closeMs'] as number).toBeLessThanOrEqual(500 + 2_000 + 500);
    expect(report.extra['closeSummary']).toEqual({ released: 0, reclaimed: 2 });
    expect(report.returnedInTransaction).toBe(0);
    expect(report.probedInTransaction).toBe(0);
    expect(report.recoveryMs as number).toBeLessThan(5_000);
  }, 120_000);
});
