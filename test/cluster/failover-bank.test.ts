/**
 * The chaos suite's bank workload (test/chaos/scenarios/bank.ts) through a cluster while the
 * primary dies and a standby is promoted: concurrent transfers, each one `cluster.withTx`, on
 * private replication. Afterwards the new primary is the judge: the sum of balances is unchanged,
 * no transfer is half applied, none the client saw fail is there, and writes resumed on the new
 * primary within a bounded time.
 *
 * PostgreSQL runs with synchronous replication (`synchronous_standby_names = '*'`), so a commit
 * the client saw is on the standby too: no commit is lost. MariaDB's replication here is
 * asynchronous, so commits of the last moment before the crash may be missing on the promoted
 * replica (counted, not failed): the invariant holds either way, because each transfer is
 * replicated whole or not at all.
 */
import { createCluster, type Cluster } from '../../src';
import { pgAdapter } from '../../adapters/pg';
import { mysqlAdapter } from '../../adapters/mysql2';
import { ACCOUNTS, Bank, classify, summarize, type Outcome } from '../chaos/scenarios/bank';
import { mariadb, postgres, type DbTarget } from '../chaos/scenarios/targets';
import { startMariadbReplicaSet, startPgReplicaSet, type Node, type ReplicaSet } from './replication';
import { captureLogger } from '../helpers/unit';

interface Case {
  readonly target: DbTarget;
  readonly start: () => Promise<ReplicaSet>;
  readonly database: string;
  readonly adapter: (node: Node) => Parameters<typeof createCluster>[0]['hosts'][number]['adapter'];
  readonly prepare: (set: ReplicaSet) => Promise<void>;
  readonly promote: (set: ReplicaSet) => Promise<void>;
  readonly synchronous: boolean;
}

const CASES: readonly Case[] = [
  {
    target: postgres,
    start: startPgReplicaSet,
    database: 'postgres',
    adapter: (node) => pgAdapter(node.url),
    async prepare(set) {
      await set.query(set.primary, "ALTER SYSTEM SET synchronous_standby_names = '*'");
      await set.query(set.primary, 'SELECT pg_reload_conf()');
      const deadline = Date.now() + 10_000;
      while ((await set.query(set.primary, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE sync_state = 'sync'"))[0]?.n !== 1) {
        if (Date.now() > deadline) throw new Error('the standby did not become synchronous');
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    promote: async (set) => void (await set.query(set.replica, 'SELECT pg_promote()')),
    synchronous: true,
  },
  {
    target: mariadb,
    start: startMariadbReplicaSet,
    database: 'test',
    adapter: (node) => mysqlAdapter(node.url),
    prepare: async () => undefined,
    async promote(set) {
      await set.query(set.replica, 'STOP SLAVE');
      await set.query(set.replica, 'SET GLOBAL read_only = 0');
    },
    synchronous: false,
  },
];

describe.each(CASES)('$target.name: transfers through a failover', (c) => {
  let set: ReplicaSet;
  let cluster: Cluster<object>;

  beforeAll(async () => {
    set = await c.start();
    await c.prepare(set);
  }, 60_000);

  afterAll(async () => {
    await cluster?.close({ timeoutMs: 2_000 });
    await set?.destroy();
  });

  test('the balance invariant holds on the promoted standby; writes resume there within a bounded time', async () => {
    const endpoint = (node: Node) => ({ host: node.host, port: node.port, user: c.target.name === 'postgres' ? 'postgres' : 'root', database: c.database });
    const onPrimary = new Bank(c.target, endpoint(set.primary), 'cluster_failover');
    await onPrimary.setup();
    await set.caughtUp();
    cluster = createCluster<object>({
      name: `bank_${c.target.name}`,
      hosts: [
        { name: 'a', adapter: c.adapter(set.primary) as never },
        { name: 'b', adapter: c.adapter(set.replica) as never },
      ],
      pool: { max: 4, connectTimeoutMs: 1_000, acquireTimeoutMs: 3_000, leakDetectionMs: 0 },
      logger: captureLogger().logger,
      healthCheckIntervalMs: 100,
      probeTimeoutMs: 1_000,
      probeBackoffMaxMs: 400,
      failoverTimeoutMs: 10_000,
    });
    await cluster.ready();
    const adapter = cluster.pool('a').adapter;

    let op = 1;
    let stop = false;
    let killedAt = 0;
    let firstCommitAfter = 0;
    const outcomes: Outcome[] = [];
    const transfer = async (): Promise<Outcome> => {
      const id = op++;
      const from = 1 + Math.floor(Math.random() * ACCOUNTS);
      const to = 1 + ((from + Math.floor(Math.random() * (ACCOUNTS - 1))) % ACCOUNTS);
      let began = false;
      const startedAt = performance.now();
      try {
        await cluster.withTx(async (conn) => {
          began = true;
          await onPrimary.transfer(conn, id, from, to, 1 + Math.floor(Math.random() * 50), 2);
        });
        if (killedAt > 0 && firstCommitAfter === 0) firstCommitAfter = performance.now();
        return { op: id, kind: 'committed', code: undefined, message: undefined, causeCode: undefined, startedAt, endedAt: performance.now() };
      } catch (err) {
        const { kind, code } = classify(adapter, err, began);
        return { op: id, kind, code, message: String((err as Error).message), causeCode: undefined, startedAt, endedAt: performance.now() };
      }
    };
    const worker = async (): Promise<void> => {
      while (!stop) {
        const outcome = await transfer();
        outcomes.push(outcome);
        if (outcome.kind !== 'committed') await new Promise((r) => setTimeout(r, 10));
      }
    };
    const workers = Array.from({ length: 4 }, worker);

    const until = async (what: string, check: () => boolean, timeoutMs: number): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await until('40 transfers committed', () => outcomes.filter((o) => o.kind === 'committed').length >= 40, 15_000);
    killedAt = performance.now();
    await set.primary.stop('immediate');
    await c.promote(set);
    await until('transfers commit on the new primary', () => firstCommitAfter > 0, 15_000);
    const committedAtResume = outcomes.filter((o) => o.kind === 'committed').length;
    await until('20 more transfers committed', () => outcomes.filter((o) => o.kind === 'committed').length >= committedAtResume + 20, 15_000);
    stop = true;
    await Promise.all(workers);

    const verdict = await new Bank(c.target, endpoint(set.replica), 'cluster_failover').verify(outcomes);
    const summary = summarize(outcomes);
    expect(cluster.primary()).toBe('b');
    expect(summary.unclear).toBe(0);
    expect(verdict).toMatchObject({ invariantHeld: true, halfAppliedAccounts: [], phantomCommits: [] });
    if (c.synchronous) expect(verdict.lostCommits).toEqual([]);
    // Writes resumed on the new primary within a bounded time of the crash (promotion included).
    expect(firstCommitAfter - killedAt).toBeLessThan(10_000);
    // What happened, for the record.
    console.log(
      `${c.target.name} failover: ${summary.committed} committed, ${summary.rolled_back} rolled back, ${summary.not_started} not started, ` +
        `${summary.unknown} unknown (${verdict.unknownCommitted} of them committed), ${verdict.lostCommits.length} commits lost (async replication), ` +
        `writes resumed ${Math.round(firstCommitAfter - killedAt)} ms after the crash; sum ${verdict.sum} of ${verdict.expectedSum}`,
    );
  }, 60_000);
});
