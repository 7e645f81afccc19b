/**
 * Transfers through a failover (test/cluster/failover-scenario.ts): the primary crashes under
 * load, the standby is promoted; afterwards the promoted standby is the judge. The sum of balances
 * is unchanged, no transfer is half applied, none the client saw fail is there, no commit is lost
 * with PostgreSQL's synchronous replication, and writes resumed within a bounded time.
 */
import { failoverProblems, runFailover } from './failover-scenario';

test.each(['postgres', 'mariadb'] as const)('%s: the balance invariant holds on the promoted standby; writes resume there within a bounded time', async (database) => {
  const report = await runFailover(database);
  expect(failoverProblems(report)).toEqual([]);
  expect(report.verdict).toMatchObject({ invariantHeld: true, halfAppliedAccounts: [], phantomCommits: [] });
  if (report.synchronous) expect(report.verdict.lostCommits).toEqual([]);
  expect(report.summary.committed).toBeGreaterThanOrEqual(60);
  expect(report.primaryAfter).toBe('b');
}, 90_000);
