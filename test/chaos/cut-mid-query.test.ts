/**
 * One connection at a time is cut (fault proxy) right after a COMMIT or an UPDATE reaches the
 * server, before its reply: a cut UPDATE rolls the transfer back (the driver's fatal error); a cut
 * COMMIT is TX_OUTCOME_UNKNOWN, never retried (each transfer logs its op id once: a rerun would
 * collide) and never reported as failed; the database shows which of those committed. Nothing is
 * half applied and no connection goes back to the pool inside a transaction.
 */
import { cutMidQuery, problems } from './scenarios/scenarios';
import { TARGETS } from './scenarios/targets';

describe.each(TARGETS)('cut mid-query on $name', (target) => {
  test('a cut UPDATE rolls back, a cut COMMIT is an unknown outcome; transfers stay whole', async () => {
    const report = await cutMidQuery(target);
    expect(problems(report)).toEqual([]);
    const cuts = report.extra['cuts'] as { COMMIT: number; UPDATE: number };
    expect(cuts.COMMIT).toBeGreaterThan(0);
    expect(cuts.UPDATE).toBeGreaterThan(0);
    // Cuts on COMMIT surface as unknown outcomes, not as failures or retries.
    expect(report.summary.unknown).toBeGreaterThan(0);
    expect(report.summary.rolled_back).toBeGreaterThan(0);
    expect(report.returnedInTransaction).toBe(0);
    expect(report.probedInTransaction).toBe(0);
    expect(report.recoveryMs as number).toBeLessThan(5_000);
  }, 60_000);
});
