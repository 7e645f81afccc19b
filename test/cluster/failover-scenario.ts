/**
 * The failover scenario: the chaos suite's bank workload (test/chaos/scenarios/bank.ts) through a
 * cluster on private replication while the primary dies and the standby is promoted. Used by
 * test/cluster/failover-bank.test.ts and by the chaos report (bench/chaos-report.ts).
 *
 * PostgreSQL runs with synchronous replication (`synchronous_standby_names = '*'`): a commit the
 * client saw is on the standby too. MariaDB's replication here is asynchronous: commits of the last
 * moment before the crash may be missing on the promoted replica (counted as lost). Either way the
 * invariant holds, because a transfer is replicated whole or not at all.
 */
import { createCluster, type Adapter, type Cluster } from '../../src';
import { pgAdapter } from '../../adapters/pg';
import { mysqlAdapter } from '../../adapters/mysql2';
import { ACCOUNTS, Bank, classify, summarize, type Outcome, type Summary, type Verdict } from '../chaos/scenarios/bank';
import { mariadb, postgres, type DbTarget } from '../chaos/scenarios/targets';
import { startMariadbReplicaSet, startPgReplicaSet, type Node, type ReplicaSet } from './replication';

export interface FailoverReport {
  readonly scenario: 'failover';
  readonly database: 'postgres' | 'mariadb';
  readonly synchronous: boolean;
  readonly summary: Summary;
  readonly verdict: Verdict;
  /** From the crash of the primary to the first transfer committed on the promoted standby. */
  readonly resumedMs: number;
  /** The host the cluster names primary at the end ('b': the promoted standby). */
  readonly primaryAfter: string | undefined;
}

interface Kind {
  readonly target: DbTarget;
  readonly start: () => Promise<ReplicaSet>;
  readonly database: string;
  readonly user: string;
  readonly adapter: (node: Node) => Adapter<object>;
  readonly prepare: (set: ReplicaSet) => Promise<void>;
  readonly promote: (set: ReplicaSet) => Promise<void>;
  readonly synchronous: boolean;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const KINDS: Record<'postgres' | 'mariadb', Kind> = {
  postgres: {
    target: postgres,
    start: startPgReplicaSet,
    database: 'postgres',
    user: 'postgres',
    adapter: (node) => pgAdapter(node.url) as unknown as Adapter<object>,
    async prepare(set) {
      await set.query(set.primary, "ALTER SYSTEM SET synchronous_standby_names = '*'");
      await set.query(set.primary, 'SELECT pg_reload_conf()');
      await until(
        'the standby is synchronous',
        async () => (await set.query(set.primary, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE sync_state = 'sync'"))[0]?.n === 1,
        10_000,
      );
    },
    promote: async (set) => void (await set.query(set.replica, 'SELECT pg_promote()')),
    synchronous: true,
  },
  mariadb: {
    target: mariadb,
    start: startMariadbReplicaSet,
    database: 'test',
    user: 'root',
    adapter: (node) => mysqlAdapter(node.url) as unknown as Adapter<object>,
    prepare: async () => undefined,
    async promote(set) {
      await set.query(set.replica, 'STOP SLAVE');
      await set.query(set.replica, 'SET GLOBAL read_only = 0');
    },
    synchronous: false,
  },
};

/**
 * Start a private primary + standby, run transfers from 4 workers through a cluster, crash the
 * primary after 40 commits, promote the standby, run until 20 more commit there, and judge on the
 * new primary. Everything it started is torn down before it resolves.
 */
export async function runFailover(database: 'postgres' | 'mariadb', logger = { warn: () => undefined, error: () => undefined }): Promise<FailoverReport> {
  const kind = KINDS[database];
  const set = await kind.start();
  let cluster: Cluster<object> | undefined;
  try {
    await kind.prepare(set);
    const endpoint = (node: Node) => ({ host: node.host, port: node.port, user: kind.user, database: kind.database });
    const bank = new Bank(kind.target, endpoint(set.primary), 'cluster_failover');
    await bank.setup();
    await set.caughtUp();
    const c = createCluster<object>({
      name: `failover_${database}`,
      hosts: [
        { name: 'a', adapter: kind.adapter(set.primary) },
        { name: 'b', adapter: kind.adapter(set.replica) },
      ],
      pool: { max: 4, connectTimeoutMs: 1_000, acquireTimeoutMs: 3_000, leakDetectionMs: 0 },
      logger,
      healthCheckIntervalMs: 100,
      probeTimeoutMs: 1_000,
      probeBackoffMaxMs: 400,
      failoverTimeoutMs: 10_000,
    });
    cluster = c;
    await c.ready();
    const adapter = c.pool('a').adapter;

    let op = 1;
    let stop = false;
    let killedAt = 0;
    let resumedAt = 0;
    const outcomes: Outcome[] = [];
    const transfer = async (): Promise<Outcome> => {
      const id = op++;
      const from = 1 + Math.floor(Math.random() * ACCOUNTS);
      const to = 1 + ((from + Math.floor(Math.random() * (ACCOUNTS - 1))) % ACCOUNTS);
      let began = false;
      const startedAt = performance.now();
      try {
        await c.withTx(async (conn) => {
          began = true;
          await bank.transfer(conn, id, from, to, 1 + Math.floor(Math.random() * 50), 2);
        });
        if (killedAt > 0 && resumedAt === 0) resumedAt = performance.now();
        return { op: id, kind: 'committed', code: undefined, message: undefined, causeCode: undefined, startedAt, endedAt: performance.now() };
      } catch (err) {
        const { kind: k, code } = classify(adapter, err, began);
        return { op: id, kind: k, code, message: String((err as Error).message), causeCode: undefined, startedAt, endedAt: performance.now() };
      }
    };
    const committed = (): number => outcomes.filter((o) => o.kind === 'committed').length;
    const worker = async (): Promise<void> => {
      while (!stop) {
        const outcome = await transfer();
        outcomes.push(outcome);
        // A failed transfer waits a little before the next (no spinning while there is no primary).
        if (outcome.kind !== 'committed') await new Promise((r) => setTimeout(r, 10));
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    try {
      await until('40 transfers committed', () => committed() >= 40, 15_000);
      killedAt = performance.now();
      await set.primary.stop('immediate');
      await kind.promote(set);
      await until('transfers commit on the new primary', () => resumedAt > 0, 15_000);
      const atResume = committed();
      await until('20 more transfers committed', () => committed() >= atResume + 20, 15_000);
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    const verdict = await new Bank(kind.target, endpoint(set.replica), 'cluster_failover').verify(outcomes);
    return {
      scenario: 'failover',
      database,
      synchronous: kind.synchronous,
      summary: summarize(outcomes),
      verdict,
      resumedMs: resumedAt - killedAt,
      primaryAfter: c.primary(),
    };
  } finally {
    await cluster?.close({ timeoutMs: 2_000 });
    await set.destroy();
  }
}

/** What a failover report breaks of the promises (empty: none). */
export function failoverProblems(r: FailoverReport): string[] {
  const out: string[] = [];
  if (!r.verdict.invariantHeld) out.push(`balance invariant broken: sum ${r.verdict.sum} of ${r.verdict.expectedSum}, half applied ${r.verdict.halfAppliedAccounts.join(', ')}`);
  if (r.verdict.phantomCommits.length > 0) out.push(`transfers seen failing are in the database: ${r.verdict.phantomCommits.join(', ')}`);
  if (r.synchronous && r.verdict.lostCommits.length > 0) out.push(`commits lost despite synchronous replication: ${r.verdict.lostCommits.join(', ')}`);
  if (r.summary.unclear > 0) out.push(`${r.summary.unclear} unclear errors: ${r.summary.unclearSamples.join('; ')}`);
  if (r.primaryAfter !== 'b') out.push(`the cluster's primary is ${String(r.primaryAfter)}, not the promoted standby`);
  if (!(r.resumedMs < 10_000)) out.push(`writes resumed only ${Math.round(r.resumedMs)} ms after the crash`);
  return out;
}
