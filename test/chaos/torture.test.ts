/**
 * Issue 17's torture test: seeded, replayable randomized misbehaviour of withTx bodies on real
 * PostgreSQL and MariaDB (see scenarios/torture.ts). By default 20 seeds per database, each a 1.2 s load window (about 1.5-2 s with setup and checks);
 * `TORTURE_SEEDS`, `TORTURE_MS` change that, `SEED=n` replays one seed. A failing seed is printed
 * with what broke, so `SEED=n` reproduces it.
 */
import { describeFailures, torture, tortureSeeds } from './scenarios/torture';
import { TARGETS } from './scenarios/targets';

const { seeds, durationMs } = tortureSeeds();
// Each seed: its duration, plus setup, drain (leaked leases reclaimed) and checks.
// The series stops starting seeds once its budget (TORTURE_BUDGET_MS, default 44 s) is spent; the last
// seed, close and the checks then need a few seconds more.
const budgetMs = Number(process.env.TORTURE_BUDGET_MS ?? 44_000) + durationMs + 15_000;

describe.each(TARGETS)('torture on $name', (target) => {
  test(`${seeds.length} seeds of ${durationMs} ms: all or nothing, whatever the body does`, async () => {
    const summary = await torture(target, { seeds, durationMs });
    const failures = describeFailures(summary);
    if (failures.length > 0) process.stderr.write(`torture on ${target.name}: failing seeds ${summary.failingSeeds.join(', ')}\n${failures.join('\n')}\n`);
    expect(failures).toEqual([]);
    // The load really ran: things committed, things rolled back.
    const committed = summary.runs.reduce((n, r) => n + r.committed, 0);
    const rolledBack = summary.runs.reduce((n, r) => n + r.rolledBack, 0);
    expect(committed).toBeGreaterThan(0);
    expect(rolledBack).toBeGreaterThan(0);
  }, budgetMs);
});
