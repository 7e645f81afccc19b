/**
 * 10,000 concurrent `withTx` transfers on `max: 10` with `maxWaiting: 2000`: 2,000 (plus up to
 * `max` that find a free slot) run and commit, the rest fail at once with POOL_QUEUE_FULL; the
 * queue never exceeds maxWaiting, the heap stays bounded and comes back, no unhandled rejection
 * (the jest setup fails the file on one).
 */
import { flood, problems } from './scenarios/scenarios';
import { TARGETS } from './scenarios/targets';

describe.each(TARGETS)('flood on $name', (target) => {
  test('every call commits or fails with POOL_QUEUE_FULL; queue and heap bounded', async () => {
    const report = await flood(target);
    expect(problems(report)).toEqual([]);
    const s = report.summary;
    expect(s.attempted).toBe(10_000);
    expect(s.committed + (s.byCode['POOL_QUEUE_FULL'] ?? 0)).toBe(10_000);
    expect(s.committed).toBeGreaterThanOrEqual(2_000);
    expect(s.committed).toBeLessThanOrEqual(2_010);
    expect(report.extra['peakPending'] as number).toBeLessThanOrEqual(2_000);
    expect(report.returnedInTransaction).toBe(0);
    expect(report.probedInTransaction).toBe(0);
  }, 120_000);
});
