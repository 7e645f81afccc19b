/**
 * Latency spikes (fault proxy, 150 ms per chunk each way) against a 400 ms lease deadline
 * (`leaseTimeoutMs`): transfers that overrun are revoked, their transaction rolled back, and each
 * is counted in `leasepool_recoveries_total{kind="deadline"}` (a deadline, not a leak). Balances stay whole; the pool
 * returns to normal when the spike ends.
 */
import { latencySpikes, problems } from './scenarios/scenarios';
import { TARGETS } from './scenarios/targets';

describe.each(TARGETS)('latency spikes on $name', (target) => {
  test('over-long leases are revoked, rolled back and counted; transfers stay whole', async () => {
    const report = await latencySpikes(target);
    expect(problems(report)).toEqual([]);
    const timeouts = report.extra['leaseTimeouts'] as number;
    expect(timeouts).toBeGreaterThan(0);
    expect(report.extra['deadlineMetric']).toBe(timeouts);
    // Only deadlines failed transfers: LEASE_TIMEOUT, or TX_OUTCOME_UNKNOWN when it hit during COMMIT.
    expect(Object.keys(report.summary.byCode).every((c) => c === 'LEASE_TIMEOUT' || c === 'TX_OUTCOME_UNKNOWN')).toBe(true);
    expect(report.returnedInTransaction).toBe(0);
    expect(report.probedInTransaction).toBe(0);
    expect(report.recoveryMs as number).toBeLessThan(5_000);
  }, 120_000);
});
