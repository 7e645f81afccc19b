/**
 * MariaDB/MySQL scenarios (mysql2): `mysql-select` (SELECT 1 at 1, 16, 64 callers over max 10) and
 * `mysql-tx` (START TRANSACTION; UPDATE one random row of 1 000; COMMIT at 16 callers).
 *
 * Peer settings: the mysql2 pool hands out its most recently released connection (LIFO:
 * `_freeConnections.push()` on release, `.pop()` on getConnection) and has no option to rotate;
 * leasepool rotates (generic-pool's default `fifo: true`, see src/pool.ts) — at 1 caller the
 * rotation measured up to 1.4x faster with mysql2 on this machine (see shared/notes/baselines.md),
 * so the c=1 ratio leans in leasepool's favour. The mysql2 pool keeps its defaults otherwise
 * (`maxIdle` = `connectionLimit`, 60 s idle timeout). The leasepool variants use the defaults
 * (leak detection on) unless named `-noleak`.
 */
import { createConnection, createPool as createMysqlPool, type Pool as MysqlPool } from 'mysql2/promise';
import { redact } from '../../src/redact';
import { runThroughput, type Budget, type VariantDef } from '../lib/harness';
import type { Check, Scenario, Service } from '../lib/scenario';
import { leasepool, mysqlAdapterModule } from '../lib/subject';

const MYSQL_URL = process.env['MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/test';
const MAX = 10;
const ACCOUNTS = 1_000;
const TABLE = 'lp_bench_accounts';
const UPDATE = `UPDATE ${TABLE} SET balance = balance + 1 WHERE id = ?`;
const randomId = (): number => 1 + Math.floor(Math.random() * ACCOUNTS);

export const mysqlService: Service = {
  name: 'MariaDB/MySQL',
  target: redact(MYSQL_URL),
  async probe() {
    const conn = await createConnection({ uri: MYSQL_URL, connectTimeout: 2_000 });
    try {
      await conn.query('SELECT 1');
    } finally {
      await conn.end().catch(() => undefined);
    }
  },
};

const leasepoolPool = (leakDetectionMs?: number) =>
  leasepool().createPool(mysqlAdapterModule().mysqlAdapter(MYSQL_URL), leakDetectionMs === undefined ? { max: MAX } : { max: MAX, leakDetectionMs });
const mysqlPool = (): MysqlPool => createMysqlPool({ uri: MYSQL_URL, connectionLimit: MAX });

export const mysqlSelect: Scenario = {
  name: 'mysql-select',
  title: `SELECT 1 on MariaDB/MySQL, max ${MAX}, 1/16/64 callers`,
  service: mysqlService,
  async run(options) {
    const concurrencies = [1, 16, 64] as const;
    const budgets: Budget[] = concurrencies.map((at) => ({
      variant: 'leasepool',
      baseline: 'mysql2 getConnection',
      at,
      metric: 'throughput',
      limit: 0.95,
    }));
    budgets.push({ variant: 'leasepool', baseline: 'leasepool-noleak', at: 16, metric: 'throughput', limit: 0.95, note: 'leak detection costs ≤ 5%' });
    const variants: VariantDef[] = [
      {
        name: 'leasepool',
        open() {
          const pool = leasepoolPool();
          return { op: () => pool.withLease((conn) => conn.query('SELECT 1')), close: async () => void (await pool.close()) };
        },
      },
      {
        name: 'leasepool-noleak',
        at: [16],
        open() {
          const pool = leasepoolPool(0);
          return { op: () => pool.withLease((conn) => conn.query('SELECT 1')), close: async () => void (await pool.close()) };
        },
      },
      {
        name: 'mysql2 getConnection',
        open() {
          const pool = mysqlPool();
          return {
            async op() {
              const conn = await pool.getConnection();
              try {
                await conn.query('SELECT 1');
              } finally {
                conn.release();
              }
            },
            close: () => pool.end(),
          };
        },
      },
      {
        name: 'mysql2 pool.query',
        open() {
          const pool = mysqlPool();
          return { op: () => pool.query('SELECT 1'), close: () => pool.end() };
        },
      },
    ];
    const out = await runThroughput({
      concurrencies,
      variants,
      baseline: 'mysql2 getConnection',
      ratioMetric: 'throughput',
      durationMs: 800 * options.timeScale,
      warmupMs: 400 * options.timeScale,
      checkEvery: 1,
      reps: options.reps,
      progress: true,
      budgets,
    });
    return { tables: out.tables, budgets: out.budgets, checks: [], results: out.results };
  },
};

export const mysqlTx: Scenario = {
  name: 'mysql-tx',
  title: `START TRANSACTION; UPDATE 1 random row of ${fmt(ACCOUNTS)}; COMMIT on MariaDB/MySQL, max ${MAX}, 16 callers`,
  service: mysqlService,
  async run(options) {
    const admin = await createConnection({ uri: MYSQL_URL });
    try {
      await admin.query(`DROP TABLE IF EXISTS ${TABLE}`);
      await admin.query(`CREATE TABLE ${TABLE} (id INT PRIMARY KEY, balance BIGINT NOT NULL DEFAULT 0) ENGINE=InnoDB`);
      await admin.query(`INSERT INTO ${TABLE} (id) VALUES ${Array.from({ length: ACCOUNTS }, (_, i) => `(${i + 1})`).join(',')}`);
      let commits = 0;
      const out = await runThroughput({
        concurrencies: [16],
        baseline: 'mysql2 tx',
        ratioMetric: 'throughput',
        durationMs: 1_000 * options.timeScale,
        warmupMs: 500 * options.timeScale,
        checkEvery: 1,
        reps: options.reps,
        progress: true,
        budgets: [{ variant: 'leasepool withTx', baseline: 'mysql2 tx', at: 16, metric: 'throughput', limit: 0.95 }],
        variants: [
          {
            name: 'leasepool withTx',
            open() {
              const pool = leasepoolPool();
              return {
                async op() {
                  await pool.withTx((conn) => conn.query(UPDATE, [randomId()]));
                  commits++;
                },
                close: async () => void (await pool.close()),
              };
            },
          },
          {
            name: 'mysql2 tx',
            open() {
              const pool = mysqlPool();
              return {
                async op() {
                  const conn = await pool.getConnection();
                  try {
                    await conn.beginTransaction();
                    await conn.query(UPDATE, [randomId()]);
                    await conn.commit();
                  } catch (err) {
                    await conn.rollback().catch(() => undefined);
                    throw err;
                  } finally {
                    conn.release();
                  }
                  commits++;
                },
                close: () => pool.end(),
              };
            },
          },
        ],
      });
      const [rows] = await admin.query(`SELECT CAST(COALESCE(SUM(balance), 0) AS CHAR) AS total FROM ${TABLE}`);
      const total = Number((rows as { total: string }[])[0]?.total);
      const checks: Check[] = [{ label: 'every commit landed once', ok: total === commits, detail: `SUM(balance) ${fmt(total)}, commits counted ${fmt(commits)}` }];
      return { tables: out.tables, budgets: out.budgets, checks, results: out.results };
    } finally {
      await admin.query(`DROP TABLE IF EXISTS ${TABLE}`).catch(() => undefined);
      await admin.end();
    }
  },
};

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}
